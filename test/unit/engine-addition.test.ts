/**
 * The engine's activation-addition hook (x ← x + v on the residual stream at one index, every position), used for
 * the induced-refusal filter: against the independent fp64 Llama forward pass, exactly at the point it acts on, in a
 * post-norm family (where it must not go through the norm), and in generation's KV-cache steps.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { runForward } from "../../lib/engine/run-forward.js";
import { hiddenBlock, readForwardGolden, relativeError } from "../golden/forward-golden.js";
import { normalGenerator, referenceLlamaForward, writeRandomLlama, writeTensors } from "../golden/random-llama.js";

const OPTIONS = { hidden: 64, heads: 4, kvHeads: 2, headDim: 16, intermediate: 96, layers: 3, vocab: 61, dtype: "F32", tie: false, bias: true } as const;

function vectorOf(d: number, seed: number, scale: number): Float64Array {
  const normal = normalGenerator(seed);
  return Float64Array.from({ length: d }, () => normal() * scale);
}

test("addition at every index matches the fp64 reference forward pass with the same addition", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-"));
  try {
    const model = writeRandomLlama(join(root, "m"), { ...OPTIONS, seed: 21 });
    await writeTensors(model);
    const forward = await loadForwardModel(model.dir);
    const prompts = [[3, 14, 15, 9, 26, 5], [35, 8, 9]];
    const d = OPTIONS.hidden;
    const points = OPTIONS.layers + 1;
    const plain = await runForward({ model: forward, prompts, positions: "all" });
    for (let point = 0; point < points; point += 1) {
      const vector = vectorOf(d, 100 + point, 2);
      const out = await runForward({ model: forward, prompts, positions: "all", addition: { vector, point } });
      let offset = 0;
      for (const tokens of prompts) {
        const reference = referenceLlamaForward(model, tokens, { vector, point });
        const unchanged = referenceLlamaForward(model, tokens);
        for (let p = 0; p < points; p += 1) {
          const ours = hiddenBlock(out.hidden, offset, tokens.length, p, points, d);
          const error = relativeError(ours, reference[p]);
          assert.ok(error <= 1e-5, `addition at ${point}, stream ${p}: relative error ${error}`);
          if (p >= point) {
            // The reference without the addition is far away: the hook changed the stream from `point` on.
            assert.ok(relativeError(ours, unchanged[p]) > 1e-2, `addition at ${point} left stream ${p} as it was`);
          } else {
            assert.deepEqual(ours, hiddenBlock(plain.hidden, offset, tokens.length, p, points, d), `stream ${p} before the addition point changed`);
          }
        }
        // At the point itself the stream is the plain one plus v, rounded once to f32.
        const before = hiddenBlock(plain.hidden, offset, tokens.length, point, points, d);
        const after = hiddenBlock(out.hidden, offset, tokens.length, point, points, d);
        for (let i = 0; i < after.length; i += 1) assert.equal(after[i], Math.fround(before[i] + Math.fround(vector[i % d])));
        offset += tokens.length;
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("post-norm family (Gemma 2): the addition lands on the stream itself, not behind the post-norm", async () => {
  const golden = await readForwardGolden("gemma2");
  const model = await loadForwardModel(golden.dir);
  const d = model.spec.hiddenSize;
  const points = model.spec.numLayers + 1;
  const prompts = golden.inputIds;
  const vector = vectorOf(d, 5, 3);
  const point = 1;
  const plain = await runForward({ model, prompts, positions: "all" });
  const added = await runForward({ model, prompts, positions: "all", addition: { vector, point } });
  let offset = 0;
  for (const tokens of prompts) {
    for (let p = 0; p < points; p += 1) {
      const before = hiddenBlock(plain.hidden, offset, tokens.length, p, points, d);
      const after = hiddenBlock(added.hidden, offset, tokens.length, p, points, d);
      if (p < point) assert.deepEqual(after, before);
      else if (p === point) for (let i = 0; i < after.length; i += 1) assert.equal(after[i], Math.fround(before[i] + Math.fround(vector[i % d])));
      else assert.ok(relativeError(after, before) > 1e-3, `the addition did not reach stream ${p}`);
    }
    offset += tokens.length;
  }
});

test("generation adds v at every decode step: greedy ids equal the argmax of a full pass over the generated text", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-"));
  try {
    const model = writeRandomLlama(join(root, "m"), { ...OPTIONS, seed: 33 });
    await writeTensors(model);
    const forward = await loadForwardModel(model.dir);
    const prompt = [7, 21, 40, 2];
    const addition = { vector: vectorOf(OPTIONS.hidden, 9, 4), point: 2 };
    const steps = 6;
    const generated = (await runForward({ model: forward, prompts: [prompt], positions: "none", maxNewTokens: steps, eosTokenIds: [], addition })).generated![0];
    const unaltered = (await runForward({ model: forward, prompts: [prompt], positions: "none", maxNewTokens: steps, eosTokenIds: [] })).generated![0];
    assert.equal(generated.length, steps);
    assert.notDeepEqual(generated, unaltered, "the addition must change what is generated, or this proves nothing");
    const full = await runForward({ model: forward, prompts: [[...prompt, ...generated.slice(0, -1)]], positions: "none", logits: "all", addition });
    const vocab = OPTIONS.vocab;
    for (let step = 0; step < steps; step += 1) {
      const row = full.logits!.subarray((prompt.length - 1 + step) * vocab, (prompt.length + step) * vocab);
      const argmax = row.indexOf(Math.max(...row));
      assert.equal(generated[step], argmax, `step ${step}`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("bad additions are refused before the engine runs", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-"));
  try {
    const model = writeRandomLlama(join(root, "m"), { ...OPTIONS, seed: 4 });
    await writeTensors(model);
    const forward = await loadForwardModel(model.dir);
    const run = (vector: ArrayLike<number>, point: number) => runForward({ model: forward, prompts: [[1, 2]], addition: { vector, point } });
    await assert.rejects(run(new Float64Array(63), 1), /addition vector has 63 entries, hidden_size is 64/);
    await assert.rejects(run(Float64Array.from({ length: 64 }, (_, i) => (i === 5 ? NaN : 0)), 1), /NaN or Inf/);
    await assert.rejects(run(new Float64Array(64), 4), /addition point 4 is outside 0..3/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
