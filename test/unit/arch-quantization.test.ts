/** Quantized checkpoints are refused with the scheme named, from config.json or from tensor names and dtypes alone. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { detectQuantization } from "../../lib/arch/detect-quantization.js";
import { parseModelConfig } from "../../lib/arch/model-config.js";
import { AbliterateError, ErrorCodes } from "../../lib/errors.js";
import { readCheckpoint } from "../../lib/safetensors/read-checkpoint.js";
import { planSurgery } from "../../lib/surgery/plan-surgery.js";
import { llamaLikeTensors, writeSyntheticCheckpoint, type SyntheticTensor } from "../helpers/family-fixtures.js";

const HIDDEN = 8;
const base = { model_type: "llama", hidden_size: HIDDEN, num_hidden_layers: 1 };

async function refusal(config: Record<string, unknown>, tensors: SyntheticTensor[]): Promise<AbliterateError> {
  const dir = mkdtempSync(join(tmpdir(), "abl-quant-"));
  try {
    writeSyntheticCheckpoint({ dir, config, tensors });
    const checkpoint = await readCheckpoint(dir);
    const basis = new Float64Array(HIDDEN).fill(Math.sqrt(1 / HIDDEN));
    try {
      await planSurgery({ checkpoint, config: parseModelConfig(config, "config.json"), basis: { basis, rank: 1, dimension: HIDDEN, source: { kind: "direction" } }, options: { scale: 1 } });
    } catch (error) {
      assert.ok(error instanceof AbliterateError);
      return error;
    }
    throw new Error("planSurgery accepted a quantized checkpoint");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Llama tensors with o_proj / down_proj replaced by a quantized layout. */
function quantizedLayout(suffixes: { suffix: string; shape: number[]; dtype: SyntheticTensor["dtype"] }[]): SyntheticTensor[] {
  return llamaLikeTensors({ prefix: "model.", hidden: HIDDEN, layers: 1 }).flatMap((tensor) =>
    /(o_proj|down_proj)\.weight$/.test(tensor.name) ? suffixes.map(({ suffix, shape, dtype }) => ({ name: tensor.name.replace(/\.weight$/, suffix), shape, dtype })) : [tensor],
  );
}

const cases: { label: string; config?: Record<string, unknown>; tensors: SyntheticTensor[]; scheme: RegExp }[] = [
  { label: "config gptq", config: { quantization_config: { quant_method: "gptq", bits: 4 } }, tensors: llamaLikeTensors({ prefix: "model.", hidden: HIDDEN, layers: 1 }), scheme: /GPTQ.*quant_method = "gptq"/ },
  { label: "config bnb 4-bit", config: { quantization_config: { quant_method: "bitsandbytes", load_in_4bit: true } }, tensors: llamaLikeTensors({ prefix: "model.", hidden: HIDDEN, layers: 1 }), scheme: /bitsandbytes 4-bit/ },
  { label: "config mxfp4", config: { quantization_config: { quant_method: "mxfp4" } }, tensors: llamaLikeTensors({ prefix: "model.", hidden: HIDDEN, layers: 1 }), scheme: /MXFP4/ },
  {
    label: "GPTQ tensors without a config entry",
    tensors: quantizedLayout([
      { suffix: ".qweight", shape: [2, HIDDEN], dtype: "I32" },
      { suffix: ".qzeros", shape: [1, 1], dtype: "I32" },
      { suffix: ".scales", shape: [1, HIDDEN], dtype: "F16" },
      { suffix: ".g_idx", shape: [HIDDEN], dtype: "I32" },
    ]),
    scheme: /with GPTQ \(tensor "model\.layers\.0\.[a-z_.]+\.(qweight|g_idx|qzeros)"/,
  },
  {
    label: "AWQ tensors",
    tensors: quantizedLayout([
      { suffix: ".qweight", shape: [HIDDEN, 1], dtype: "I32" },
      { suffix: ".scales", shape: [1, HIDDEN], dtype: "F16" },
    ]),
    scheme: /AWQ/,
  },
  {
    label: "bitsandbytes LLM.int8",
    tensors: quantizedLayout([
      { suffix: ".weight", shape: [HIDDEN, HIDDEN], dtype: "I8" },
      { suffix: ".SCB", shape: [HIDDEN], dtype: "F32" },
    ]),
    scheme: /bitsandbytes 8-bit/,
  },
  {
    label: "bitsandbytes NF4",
    tensors: quantizedLayout([
      { suffix: ".weight", shape: [HIDDEN * 4, 1], dtype: "U8" },
      { suffix: ".weight.absmax", shape: [1], dtype: "F32" },
      { suffix: ".weight.quant_state.bitsandbytes__nf4", shape: [16], dtype: "U8" },
    ]),
    scheme: /bitsandbytes 4-bit/,
  },
  {
    label: "MXFP4 blocks",
    tensors: quantizedLayout([
      { suffix: "_blocks", shape: [HIDDEN, 1, 16], dtype: "U8" },
      { suffix: "_scales", shape: [HIDDEN, 1], dtype: "U8" },
    ]),
    scheme: /MXFP4/,
  },
  {
    label: "FP8 block-scaled",
    tensors: quantizedLayout([
      { suffix: ".weight", shape: [HIDDEN, HIDDEN], dtype: "F8_E4M3" },
      { suffix: ".weight_scale_inv", shape: [1, 1], dtype: "F32" },
    ]),
    scheme: /FP8 \(F8_E4M3 with block scales weight_scale_inv.*refused on purpose/,
  },
];

for (const { label, config, tensors, scheme } of cases) {
  test(`refused: ${label}`, async () => {
    const error = await refusal({ ...base, ...config }, tensors);
    assert.equal(error.code, ErrorCodes.UNSUPPORTED_QUANTIZATION);
    assert.match(error.message, scheme);
    assert.match(error.message, config ? /config\.json/ : /model\.safetensors/, "names the file with the evidence");
  });
}

test("an unquantized checkpoint has no finding", async () => {
  const dir = mkdtempSync(join(tmpdir(), "abl-quant-"));
  try {
    writeSyntheticCheckpoint({ dir, config: base, tensors: llamaLikeTensors({ prefix: "model.", hidden: HIDDEN, layers: 1 }), dtype: "BF16" });
    assert.equal(detectQuantization(parseModelConfig(base, "c"), await readCheckpoint(dir)), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
