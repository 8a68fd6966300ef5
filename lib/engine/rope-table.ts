/**
 * RoPE inverse frequencies from a family's rope parameters (lib/arch/read-rope-parameters.ts reads them from
 * config.json), computed the way transformers does (modeling_rope_utils): in fp32, one rounding per torch operation,
 * so the engine's angles match HF's to the last bit or so. Supported rope types: default, linear, llama3, yarn.
 */
import type { RopeParameters } from "../arch/read-rope-parameters.js";
import { AbliterateError, ErrorCodes } from "../errors.js";

export type { RopeParameters };

const f32 = Math.fround;

export interface RopeTable {
  invFreq: Float32Array;
  attentionScaling: number;
  rotaryDim: number;
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}

function requiredNumber(scaling: Record<string, unknown>, key: string, ropeType: string, file: string): number {
  const value = scaling[key];
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new AbliterateError(ErrorCodes.CONFIG_INVALID, `rope type ${ropeType} needs a numeric ${key}`, { file });
  }
  return value;
}

/** base ** (arange(0, dim, 2) / dim) in fp32, as torch evaluates it. */
function basePowers(base: number, dim: number): Float32Array {
  const powers = new Float32Array(dim / 2);
  for (let i = 0; i < dim / 2; i += 1) powers[i] = f32(Math.pow(f32(base), f32((2 * i) / dim)));
  return powers;
}

export interface RopeTableParams {
  parameters: RopeParameters;
  headDim: number;
  maxPositionEmbeddings: number;
  file: string;
}

export function computeRopeTable(params: RopeTableParams): RopeTable {
  const { parameters, headDim, maxPositionEmbeddings, file } = params;
  const { ropeType, theta, scaling } = parameters;
  const rotaryDim = Math.floor(headDim * parameters.partialRotaryFactor);
  if (rotaryDim <= 0 || rotaryDim % 2 !== 0 || rotaryDim > headDim) {
    throw new AbliterateError(ErrorCodes.CONFIG_INVALID, `rotary dimension ${rotaryDim} does not fit head_dim ${headDim}`, { file });
  }
  const half = rotaryDim / 2;
  const powers = basePowers(theta, rotaryDim);
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i += 1) invFreq[i] = f32(1 / powers[i]);

  switch (ropeType) {
    case "default":
      return { invFreq, attentionScaling: 1, rotaryDim };
    case "linear": {
      const factor = requiredNumber(scaling, "factor", ropeType, file);
      for (let i = 0; i < half; i += 1) invFreq[i] = f32(invFreq[i] / f32(factor));
      return { invFreq, attentionScaling: 1, rotaryDim };
    }
    case "llama3": {
      const factor = requiredNumber(scaling, "factor", ropeType, file);
      const low = requiredNumber(scaling, "low_freq_factor", ropeType, file);
      const high = requiredNumber(scaling, "high_freq_factor", ropeType, file);
      const oldContext = numberOr(scaling.original_max_position_embeddings, maxPositionEmbeddings);
      const lowFreqWavelen = oldContext / low;
      const highFreqWavelen = oldContext / high;
      const result = new Float32Array(half);
      for (let i = 0; i < half; i += 1) {
        const wavelen = f32(f32(2 * Math.PI) / invFreq[i]);
        const llama = wavelen > lowFreqWavelen ? f32(invFreq[i] / f32(factor)) : invFreq[i];
        const smooth = f32(f32(f32(f32(oldContext) / wavelen) - f32(low)) / f32(high - low));
        const smoothed = f32(f32(f32(f32(1 - smooth) * llama) / f32(factor)) + f32(smooth * llama));
        const medium = !(wavelen < highFreqWavelen) && !(wavelen > lowFreqWavelen);
        result[i] = medium ? smoothed : llama;
      }
      return { invFreq: result, attentionScaling: 1, rotaryDim };
    }
    case "yarn": {
      const original = numberOr(scaling.original_max_position_embeddings, maxPositionEmbeddings);
      const factor = numberOr(scaling.factor, maxPositionEmbeddings / original);
      const mscale = typeof scaling.mscale === "number" ? scaling.mscale : undefined;
      const mscaleAllDim = typeof scaling.mscale_all_dim === "number" ? scaling.mscale_all_dim : undefined;
      const getMscale = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
      let attentionFactor = typeof scaling.attention_factor === "number" ? scaling.attention_factor : undefined;
      if (attentionFactor === undefined) {
        attentionFactor = mscale && mscaleAllDim ? getMscale(factor, mscale) / getMscale(factor, mscaleAllDim) : getMscale(factor);
      }
      const betaFast = numberOr(scaling.beta_fast, 0) || 32;
      const betaSlow = numberOr(scaling.beta_slow, 0) || 1;
      const truncate = scaling.truncate === undefined ? true : Boolean(scaling.truncate);
      const correctionDim = (rotations: number) =>
        (rotaryDim * Math.log(original / (rotations * 2 * Math.PI))) / (2 * Math.log(theta));
      let low = correctionDim(betaFast);
      let high = correctionDim(betaSlow);
      if (truncate) {
        low = Math.floor(low);
        high = Math.ceil(high);
      }
      low = Math.max(low, 0);
      high = Math.min(high, rotaryDim - 1);
      if (low === high) high += 0.001;
      const result = new Float32Array(half);
      for (let i = 0; i < half; i += 1) {
        const extrapolation = f32(1 / powers[i]);
        const interpolation = f32(1 / f32(f32(factor) * powers[i]));
        const ramp = Math.min(1, Math.max(0, f32(f32(i - f32(low)) / f32(high - low))));
        const extrapolationFactor = f32(1 - ramp);
        result[i] = f32(f32(interpolation * f32(1 - extrapolationFactor)) + f32(extrapolation * extrapolationFactor));
      }
      return { invFreq: result, attentionScaling: f32(attentionFactor), rotaryDim };
    }
    default:
      throw new AbliterateError(ErrorCodes.CONFIG_INVALID, `rope type "${ropeType}" is not supported by the forward engine`, { file });
  }
}
