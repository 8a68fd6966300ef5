/**
 * Quantized checkpoints are refused, naming the scheme: the surgery's exactness contract (1 ulp of the fp64
 * reference, everything else byte-identical) only holds for F32/F16/BF16/F64 weights. The scheme is read from
 * config.json's quantization_config.quant_method, and also recognised from tensor names and dtypes, because
 * re-uploads often drop the config entry:
 * - GPTQ / AWQ: `.qweight`, `.qzeros`, `.scales` (GPTQ also writes `.g_idx`);
 * - bitsandbytes: `.SCB` (LLM.int8), `.absmax` / `.quant_map` / `.quant_state.bitsandbytes__nf4|fp4` (4-bit);
 * - MXFP4 (gpt-oss): U8 `*_blocks` with `*_scales`;
 * - FP8: F8_E4M3 / F8_E5M2 weights with `weight_scale_inv` (block-scaled, DeepSeek-V3 / Qwen FP8) or `weight_scale`.
 * FP8 takes the refusal route on purpose (docs/architectures.md): requantizing an edited weight with the original
 * block scales cannot promise 1 ulp, so `verify` could not vouch for it.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { Checkpoint } from "../safetensors/read-checkpoint.js";
import type { ModelConfig } from "./model-config.js";

export interface QuantizationFinding {
  /** Human name of the scheme, e.g. "GPTQ", "bitsandbytes 4-bit (NF4/FP4)". */
  scheme: string;
  /** What gave it away: the config entry or a tensor name. */
  evidence: string;
  file: string;
}

const QUANT_METHOD_NAMES: Record<string, string> = {
  gptq: "GPTQ",
  awq: "AWQ",
  mxfp4: "MXFP4",
  fp8: "FP8",
  fbgemm_fp8: "FP8 (FBGEMM)",
  "compressed-tensors": "compressed-tensors",
  hqq: "HQQ",
  eetq: "EETQ",
  aqlm: "AQLM",
  quanto: "Quanto",
  torchao: "torchao",
  bitnet: "BitNet",
  exl2: "EXL2",
};

function fromConfig(config: ModelConfig, file: string): QuantizationFinding | undefined {
  const quantization = (config.raw.quantization_config ?? config.text.quantization_config) as Record<string, unknown> | undefined;
  if (!quantization || typeof quantization !== "object") return undefined;
  const method = String(quantization.quant_method ?? "unknown");
  let scheme = QUANT_METHOD_NAMES[method] ?? method;
  if (method === "bitsandbytes") {
    scheme = quantization.load_in_4bit ? "bitsandbytes 4-bit (NF4/FP4)" : quantization.load_in_8bit ? "bitsandbytes 8-bit (LLM.int8)" : "bitsandbytes";
  }
  return { scheme, evidence: `config.json quantization_config.quant_method = "${method}"`, file };
}

function fromTensors(checkpoint: Checkpoint): QuantizationFinding | undefined {
  const names = new Set(checkpoint.tensorLocations.keys());
  for (const [name, { shard, tensor }] of checkpoint.tensorLocations) {
    const found = (scheme: string): QuantizationFinding => ({ scheme, evidence: `tensor "${name}" (${tensor.dtype})`, file: shard.path });
    if (/\.qweight$/.test(name)) {
      const base = name.slice(0, -".qweight".length);
      return found(names.has(`${base}.g_idx`) ? "GPTQ" : "AWQ (or GPTQ without g_idx)");
    }
    if (/\.(?:qzeros|g_idx)$/.test(name)) return found("GPTQ");
    if (/\.SCB$/.test(name)) return found("bitsandbytes 8-bit (LLM.int8)");
    if (/\.(?:absmax|quant_map|nested_absmax|nested_quant_map)$|\.quant_state\.bitsandbytes__(?:nf4|fp4)$/.test(name)) return found("bitsandbytes 4-bit (NF4/FP4)");
    if (/_blocks$/.test(name) && tensor.dtype === "U8" && names.has(name.replace(/_blocks$/, "_scales"))) return found("MXFP4");
    if (tensor.dtype.startsWith("F8_")) {
      const base = name.replace(/\.weight$/, "");
      if (names.has(`${base}.weight_scale_inv`)) return found(`FP8 (${tensor.dtype} with block scales weight_scale_inv, as in DeepSeek-V3 / Qwen FP8)`);
      if (names.has(`${base}.weight_scale`)) return found(`FP8 (${tensor.dtype} with weight_scale)`);
      return found(`FP8 (${tensor.dtype})`);
    }
  }
  return undefined;
}

export function detectQuantization(config: ModelConfig, checkpoint: Checkpoint): QuantizationFinding | undefined {
  return fromConfig(config, `${checkpoint.dir}/config.json`) ?? fromTensors(checkpoint);
}

/** Throws UNSUPPORTED_QUANTIZATION naming the scheme and the evidence. */
export function refuseQuantized(config: ModelConfig, checkpoint: Checkpoint): void {
  const finding = detectQuantization(config, checkpoint);
  if (!finding) return;
  const fp8 = finding.scheme.startsWith("FP8");
  throw new AbliterateError(
    ErrorCodes.UNSUPPORTED_QUANTIZATION,
    `the checkpoint is quantized with ${finding.scheme} (${finding.evidence}). Surgery edits F32/F16/BF16/F64 weights exactly and never requantizes; ` +
      (fp8
        ? "FP8 is refused on purpose, because requantizing with the original block scales would leave errors verify cannot bound to 1 ulp. Use the BF16 release of the model."
        : "use the unquantized (F16/BF16/F32) release of the model, edit it, then quantize the result."),
    { file: finding.file },
  );
}
