/**
 * Candidate directions: mean(positive) − mean(negative) of the residual stream at the post-instruction positions,
 * for every layer index 0..L (index i enters decoder layer i, index L leaves the last layer), accumulated in fp64.
 * Prompts run in batches so memory stays bounded whatever the prompt count.
 */
import type { ContrastMeans } from "../direction-files/write-direction-candidates.js";
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { ForwardModel } from "../engine/load-forward-model.js";
import type { ForwardMode } from "../engine/memory-budget.js";
import { runForward, type ForwardAblation, type ForwardCompute } from "../engine/run-forward.js";

export interface ForwardSettings {
  mode?: ForwardMode | "auto";
  maxMemoryBytes?: number;
  threads?: number;
  /** Arithmetic of the projections (runForward's `compute`; "fp32" when absent). */
  compute?: ForwardCompute;
  /** Share the keys and values of prompts' common first tokens (runForward's `reusePrefix`; default true). */
  reusePrefix?: boolean;
  /** Keep the layers a pass reads for the next passes (runForward's `keepWeights`; default false). */
  keepWeights?: boolean;
}

/** The forward settings out of a params object that extends them, to pass on to the next pass. */
export function forwardSettingsOf(params: ForwardSettings): ForwardSettings {
  return {
    mode: params.mode,
    maxMemoryBytes: params.maxMemoryBytes,
    threads: params.threads,
    compute: params.compute,
    reusePrefix: params.reusePrefix,
    keepWeights: params.keepWeights,
  };
}

export interface MeanActivationsParams extends ForwardSettings {
  model: ForwardModel;
  prompts: number[][];
  /** How many trailing tokens of each prompt count as post-instruction positions (default 1: the last). */
  positions?: number;
  batchSize?: number;
  /** Run with these directions ablated from every residual write (the subspace discovery's later steps). */
  ablation?: ForwardAblation;
  /** A weight per prompt (default 1 each): the mean becomes Σ wᵢ xᵢ / Σ wᵢ. */
  weights?: readonly number[];
  /** Called after each batch with the prompts done so far. */
  onProgress?: (done: number, total: number) => void;
}

/** fp64 mean of the residual stream at the chosen positions: L + 1 rows of hidden_size. */
export async function meanActivations(params: MeanActivationsParams): Promise<{ mean: Float64Array[]; rows: number }> {
  const { model, prompts } = params;
  const { numLayers, hiddenSize: d } = model.spec;
  const positions = params.positions ?? 1;
  if (!Number.isInteger(positions) || positions < 1) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `positions must be a whole number ≥ 1; got ${positions}`);
  const sums = Array.from({ length: numLayers + 1 }, () => new Float64Array(d));
  const batchSize = params.batchSize ?? 32;
  let rows = 0;
  let weightSum = 0;
  for (let start = 0; start < prompts.length; start += batchSize) {
    const batch = prompts.slice(start, start + batchSize);
    const output = await runForward({
      model,
      prompts: batch,
      positions: positions === 1 ? "last" : { last: positions },
      ablation: params.ablation,
      ...forwardSettingsOf(params),
    });
    const captured = output.hidden.length / ((numLayers + 1) * d);
    for (let row = 0; row < captured; row += 1) {
      const weight = params.weights ? params.weights[start + output.capturedPrompt[row]] : 1;
      weightSum += weight;
      if (weight === 0) continue;
      for (let layer = 0; layer <= numLayers; layer += 1) {
        const base = (row * (numLayers + 1) + layer) * d;
        const sum = sums[layer];
        for (let i = 0; i < d; i += 1) sum[i] += weight * output.hidden[base + i];
      }
    }
    rows += captured;
    params.onProgress?.(Math.min(start + batchSize, prompts.length), prompts.length);
  }
  if (rows === 0) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "no activations were captured (no prompts)");
  if (!(weightSum > 0)) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "every prompt has weight 0: there is nothing to average");
  return { mean: sums.map((sum) => sum.map((v) => v / weightSum)), rows };
}

export type { ContrastMeans };

export function differenceOfMeans(positiveMean: Float64Array[], negativeMean: Float64Array[]): Float64Array[] {
  return positiveMean.map((row, layer) => row.map((v, i) => v - negativeMean[layer][i]));
}

export async function contrastMeans(params: Omit<MeanActivationsParams, "prompts" | "onProgress" | "weights"> & {
  positive: number[][];
  negative: number[][];
  /** Weights of the positive prompts (the negative ones all count once). */
  positiveWeights?: readonly number[];
  onProgress?: (done: number, total: number) => void;
}): Promise<ContrastMeans> {
  const total = params.positive.length + params.negative.length;
  const positive = await meanActivations({ ...params, prompts: params.positive, weights: params.positiveWeights, onProgress: (done) => params.onProgress?.(done, total) });
  const negative = await meanActivations({
    ...params,
    prompts: params.negative,
    onProgress: (done) => params.onProgress?.(params.positive.length + done, total),
  });
  return {
    directions: differenceOfMeans(positive.mean, negative.mean),
    positiveMean: positive.mean,
    negativeMean: negative.mean,
    positiveRows: positive.rows,
    negativeRows: negative.rows,
  };
}
