/**
 * Waves of edits (runForward's `wave`, native/core/forward/run_forward.cpp): several edits over the same prompts in
 * one pass, each layer read once for all of them. Each edit's logits, statistics and picks must be bit-identical to
 * a run of its own, resident and streamed, with shared prefixes, in fp32 and bf16; a streamed wave must read the
 * layers once (stagedBytes of one run, not one per edit); and what a wave cannot do is refused with a clear error.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AbliterateError } from "../../lib/errors.js";
import { loadForwardModel, type ForwardModel } from "../../lib/engine/load-forward-model.js";
import { runForward, type ForwardEdit, type ForwardRequest } from "../../lib/engine/run-forward.js";
import { forward } from "../../lib/native/addon.js";
import { forwardModeOf } from "../../lib/index.js";
import { releaseKeptWeights } from "../../lib/engine/release-kept-weights.js";
import { normalGenerator, writeRandomLlama, writeTensors } from "../golden/random-llama.js";

const D = 64;
const LAYERS = 3;

function vector(seed: number, scale = 1): number[] {
  const normal = normalGenerator(seed);
  return Array.from({ length: D }, () => scale * normal());
}

/** Edits of every kind the scorer runs: none, a full ablation, per-writer strengths, a rank-2 basis, an addition. */
function edits(): ForwardEdit[] {
  return [
    {},
    { ablation: { directions: [vector(1)] } },
    { ablation: { directions: [vector(2)], strengths: { embedding: 0, attention: [0, 0.5, 1.5], mlp: [0, 1, -0.5] } } },
    { ablation: { directions: [vector(3), vector(4)], alpha: 0.8, layers: [1] } },
    { addition: { vector: vector(5, 0.3), point: 1 } },
    { ablation: { directions: [vector(6)] }, addition: { vector: vector(7, 0.2), point: 3 } },
  ];
}

async function withModel(dtype: "F32" | "BF16", body: (model: ForwardModel) => Promise<void>): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), "abl-wave-"));
  try {
    const written = writeRandomLlama(join(root, "model"), {
      hidden: D, heads: 4, kvHeads: 2, headDim: 16, intermediate: 136, layers: LAYERS, vocab: 61, dtype, tie: false, bias: false, seed: 29,
    });
    await writeTensors(written);
    await body(await loadForwardModel(written.dir));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** Prompts that share a 9-token prefix (so the pass runs shared prefixes), one that shares nothing. */
function prompts(): number[][] {
  const normal = normalGenerator(11);
  const tokens = (n: number) => Array.from({ length: n }, () => Math.floor(Math.abs(normal() * 1000)) % 61);
  const prefix = tokens(9);
  return [[...prefix, ...tokens(4)], [...prefix, ...tokens(1)], [...prefix, ...tokens(12)], tokens(5)];
}

function request(model: ForwardModel, mode: "resident" | "streamed", compute: "fp32" | "bf16"): ForwardRequest {
  return {
    model,
    prompts: prompts(),
    positions: "none",
    logits: "all",
    logitsStats: true,
    logitsPicks: { rows: [0, 3, 7, 20, 29], tokens: [1, 60, 5, 17, 0] },
    wholeLogitsRows: [2, 0, 25],
    mode,
    compute,
  };
}

for (const dtype of ["F32", "BF16"] as const) {
  const compute = dtype === "BF16" ? "bf16" : "fp32";
  test(`a wave of edits gives each edit's run bit for bit, resident and streamed (${dtype} weights, ${compute})`, async () => {
    await withModel(dtype, async (model) => {
      for (const [mode, keepWeights] of [["resident", false], ["streamed", false], ["resident", true]] as const) {
        // Kept layers (the one command's passes): the wave's first run keeps them, the second takes them kept.
        const base = { ...request(model, mode, compute), keepWeights };
        if (keepWeights) {
          const first = await runForward({ ...base, wave: edits() });
          assert.equal(first.keptBytes, 0);
        }
        const [first, ...rest] = edits();
        const wave = await runForward({ ...base, ...first, wave: rest });
        assert.equal(wave.mode, mode);
        // The library's forwardModeOf() plans the same run without running it.
        const planned = forwardModeOf({ ...base, ...first, wave: rest });
        assert.deepEqual([planned.mode, planned.estimatedBytes], [wave.mode, wave.estimatedBytes]);
        if (keepWeights) assert.ok(wave.keptBytes > 0, "the wave ran on kept layers");
        assert.ok(wave.sharedTokens > 0, "the prompts share a prefix");
        assert.equal(wave.wave!.length, rest.length);
        const outputs = [wave, ...wave.wave!];
        for (const [e, edit] of edits().entries()) {
          const alone = await runForward({ ...base, keepWeights: false, ...edit });
          const got = outputs[e];
          assert.deepEqual(got.logits, alone.logits, `${mode}${keepWeights ? " kept" : ""}, edit ${e}: whole logits rows`);
          assert.deepEqual(got.pickedLogits, alone.pickedLogits, `${mode}, edit ${e}: picks`);
          assert.deepEqual(got.logitsArgmax, alone.logitsArgmax, `${mode}, edit ${e}: argmax`);
          assert.deepEqual(got.logitsLogZ, alone.logitsLogZ, `${mode}, edit ${e}: log Z`);
          assert.equal(got.logits!.length, 3 * 61);
        }
        // The edits differ, so a wave that ran one edit's hooks for all of them would have failed above.
        assert.notDeepEqual(outputs[1].logits, outputs[2].logits);
        if (mode === "streamed") {
          const one = await runForward({ ...base });
          assert.ok(one.stagedBytes > 0);
          assert.equal(wave.stagedBytes, one.stagedBytes, "a streamed wave reads each layer once for all its edits");
        }
      }
      releaseKeptWeights();
    });
  });
}

test("a wave refuses what it cannot run: captures, generation, resuming, and a bad edit names its place", async () => {
  await withModel("F32", async (model) => {
    const base = request(model, "resident", "fp32");
    const wave = [{ ablation: { directions: [vector(1)] } }];
    await assert.rejects(runForward({ ...base, positions: "last", wave }), (error: unknown) => error instanceof AbliterateError && /prompt passes only/.test(error.message));
    await assert.rejects(runForward({ ...base, logits: "last", maxNewTokens: 2, wave }), /prompt passes only/);
    const tokens = prompts().reduce((n, p) => n + p.length, 0);
    await assert.rejects(runForward({ ...base, resumeFrom: { layer: 1, hidden: new Float32Array(tokens * D) }, wave: [{ addition: { vector: vector(2), point: 2 } }] }), /prompt passes only/);
    await assert.rejects(runForward({ ...base, wave: [{ ablation: { directions: [[1, 2, 3]] } }] }), /has 3 entries, hidden_size is 64/);
    // The engine's own check, past the library's: a wave edit whose strengths are not one per layer.
    const job = {
      files: model.files, spec: model.spec, embed: model.embed, finalNorm: model.finalNorm, lmHead: model.lmHead, layers: model.layers, ropeTables: model.ropeTables,
      tokens: Int32Array.from([1, 2, 3]), promptLengths: Uint32Array.from([3]), captureRows: new Uint32Array(0), logitsRows: Uint32Array.from([2]),
      maxNewTokens: 0, eosIds: new Int32Array(0), mode: "resident" as const,
      wave: [{ ablation: { basis: new Float32Array(D), ranks: Uint32Array.from([1]), embeddingAlpha: 1, attentionAlpha: new Float64Array(1), mlpAlpha: new Float64Array(LAYERS) } }],
    };
    await assert.rejects(forward(job), /wave edit 0: ablation strengths are not one per layer/);
  });
});
