/**
 * Engine configuration: memory sizes and the mode choice, RoPE tables (both config layouts, against the published
 * formulas in fp64), and the errors a user gets for a checkpoint that does not fit its config.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { activationBytes, chooseMode, parseMemorySize } from "../../lib/engine/memory-budget.js";
import { readRopeParameters } from "../../lib/arch/read-rope-parameters.js";
import { computeRopeTable } from "../../lib/engine/rope-table.js";
import { readForwardGolden } from "../golden/forward-golden.js";
import { writeRandomLlama, writeTensors } from "../golden/random-llama.js";

test("memory sizes: SI units, binary with iB, plain bytes; junk and zero rejected", () => {
  assert.equal(parseMemorySize("512MB"), 512e6);
  assert.equal(parseMemorySize("4GB"), 4e9);
  assert.equal(parseMemorySize("4g"), 4e9);
  assert.equal(parseMemorySize("1.5GiB"), 1.5 * 2 ** 30);
  assert.equal(parseMemorySize("64KiB"), 65536);
  assert.equal(parseMemorySize("800000000"), 8e8);
  for (const bad of ["lots", "", "-1GB", "0MB", "4 XB"]) {
    assert.throws(() => parseMemorySize(bad), (e: { code?: string }) => e.code === "INVALID_ARGUMENT", bad);
  }
});

test("mode choice: resident when everything fits, streamed below that, generation too", async () => {
  const model = await loadForwardModel((await readForwardGolden("llama")).dir);
  const shape = { rows: 100, capturedRows: 10, logitsRows: 0, maxNewTokens: 0, prompts: 10, longestPrompt: 10, mlpChunkTokens: 64 };
  const needed = model.totalBytes + activationBytes(model, shape);
  assert.equal(chooseMode({ model, shape, budgetBytes: needed, needsHead: false }).mode, "resident");
  assert.equal(chooseMode({ model, shape, budgetBytes: needed - 1, needsHead: false }).mode, "streamed");
  assert.equal(chooseMode({ model, shape, budgetBytes: 1, needsHead: false, requested: "resident" }).mode, "resident");
  // A generation packs every weight and stages one layer besides: resident at the model, one layer and its
  // activations (every layer's keys and values among them), streamed below.
  const generating = { ...shape, maxNewTokens: 4 };
  const generationNeeds = model.totalBytes + Math.max(...model.layerBytes) + activationBytes(model, generating);
  assert.ok(activationBytes(model, generating) > activationBytes(model, shape), "the keys and values of every layer count");
  assert.equal(chooseMode({ model, shape: generating, budgetBytes: generationNeeds, needsHead: true }).mode, "resident");
  assert.equal(chooseMode({ model, shape: generating, budgetBytes: generationNeeds - 1, needsHead: true }).mode, "streamed");
  assert.equal(chooseMode({ model, shape: generating, budgetBytes: 1e12, needsHead: true, requested: "streamed" }).mode, "streamed");
  const streamed = chooseMode({ model, shape, budgetBytes: 1, needsHead: false });
  assert.ok(streamed.streamedBytes < streamed.residentBytes);
  assert.ok(streamed.estimatedBytes >= Math.max(...model.layerBytes));
});

const FILE = "config.json";

test("RoPE: transformers 5 rope_parameters and the older rope_theta + rope_scaling give the same table", () => {
  const modern = readRopeParameters(
    { rope_parameters: { rope_type: "llama3", rope_theta: 500000, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } },
    FILE,
  );
  const legacy = readRopeParameters(
    { rope_theta: 500000, rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } },
    FILE,
  );
  const a = computeRopeTable({ parameters: modern, headDim: 128, maxPositionEmbeddings: 131072, file: FILE });
  const b = computeRopeTable({ parameters: legacy, headDim: 128, maxPositionEmbeddings: 131072, file: FILE });
  assert.deepEqual(a, b);
  const oldKey = readRopeParameters({ rope_theta: 10000, rope_scaling: { type: "linear", factor: 2 } }, FILE);
  assert.equal(oldKey.ropeType, "linear");
});

function relative(a: number, b: number): number {
  return Math.abs(a - b) / Math.abs(b);
}

test("RoPE tables follow the published formulas (default, linear, Llama 3, YaRN) to fp32 precision", () => {
  const dim = 64;
  const base = (theta: number, i: number) => Math.pow(theta, (-2 * i) / dim);
  const table = (config: Record<string, unknown>) =>
    computeRopeTable({ parameters: readRopeParameters(config, FILE), headDim: dim, maxPositionEmbeddings: 4096, file: FILE });

  const plain = table({ rope_theta: 10000 });
  const linear = table({ rope_theta: 10000, rope_scaling: { type: "linear", factor: 4 } });
  for (let i = 0; i < dim / 2; i += 1) {
    assert.ok(relative(plain.invFreq[i], base(10000, i)) < 3e-7, `default ${i}`);
    assert.ok(relative(linear.invFreq[i], base(10000, i) / 4) < 3e-7, `linear ${i}`);
  }

  // Llama 3.1: wavelengths above old_context/low are divided by factor, below old_context/high kept, smoothed between.
  const llama3 = table({ rope_theta: 500000, rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 512 } });
  for (let i = 0; i < dim / 2; i += 1) {
    const f = base(500000, i);
    const wavelen = (2 * Math.PI) / f;
    let expected = f;
    if (wavelen > 512) expected = f / 8;
    else if (wavelen >= 128) {
      const smooth = (512 / wavelen - 1) / 3;
      expected = (1 - smooth) * (f / 8) + smooth * f;
    }
    assert.ok(relative(llama3.invFreq[i], expected) < 1e-6, `llama3 ${i}: ${llama3.invFreq[i]} vs ${expected}`);
  }
  assert.equal(llama3.attentionScaling, 1);

  // YaRN: blend of interpolated (f / factor) and original frequencies by a linear ramp between the correction dims.
  const yarn = table({ rope_theta: 10000, rope_scaling: { rope_type: "yarn", factor: 4, original_max_position_embeddings: 1024 } });
  const correction = (rotations: number) => (dim * Math.log(1024 / (rotations * 2 * Math.PI))) / (2 * Math.log(10000));
  const low = Math.max(Math.floor(correction(32)), 0);
  const high = Math.min(Math.ceil(correction(1)), dim - 1);
  for (let i = 0; i < dim / 2; i += 1) {
    const f = base(10000, i);
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
    const expected = (f / 4) * ramp + f * (1 - ramp);
    assert.ok(relative(yarn.invFreq[i], expected) < 1e-6, `yarn ${i}`);
  }
  assert.ok(relative(yarn.attentionScaling, 0.1 * Math.log(4) + 1) < 1e-7);

  assert.throws(() => table({ rope_scaling: { rope_type: "longrope-ish" } }), (e: { code?: string }) => e.code === "CONFIG_INVALID");
});

test("a checkpoint that does not fit its config: TENSOR_SHAPE, TENSOR_MISSING, UNSUPPORTED_FAMILY, naming the file", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-"));
  try {
    const model = writeRandomLlama(join(root, "m"), {
      hidden: 16, heads: 2, kvHeads: 1, headDim: 8, intermediate: 24, layers: 2, vocab: 50, dtype: "F32", tie: false, bias: false, seed: 1,
    });
    const configPath = join(model.dir, "config.json");
    const config = JSON.parse(readFileSync(configPath, "utf8"));
    await writeTensors(model);
    writeFileSync(configPath, JSON.stringify({ ...config, intermediate_size: 32 }));
    await assert.rejects(loadForwardModel(model.dir), (e: { code?: string; message: string }) =>
      e.code === "TENSOR_SHAPE" && e.message.includes("mlp.gate_proj.weight") && e.message.includes("model.safetensors"));

    writeFileSync(configPath, JSON.stringify(config));
    const tensors = new Map(model.tensors);
    tensors.delete("model.layers.1.self_attn.k_proj.weight");
    await writeTensors(model, tensors);
    await assert.rejects(loadForwardModel(model.dir), (e: { code?: string; message: string }) =>
      e.code === "TENSOR_MISSING" && e.message.includes("model.layers.1.self_attn.k_proj.weight"));

    writeFileSync(configPath, JSON.stringify({ ...config, model_type: "bert" }));
    await assert.rejects(loadForwardModel(model.dir), (e: { code?: string }) => e.code === "UNSUPPORTED_FAMILY");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
