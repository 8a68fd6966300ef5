/**
 * The engine computes each logits row's argmax and log-normalizer (native/core/forward/logits_stats.h) for the
 * teacher-forced passes, which read them instead of scanning the vocabulary in JS: against an fp64 log-sum-exp and
 * a `>` scan, on rows with ties, huge ranges, −∞ and a NaN, and on a model's own logits through runForward, which
 * also hands back single picked logits and a subset of whole rows.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { logitsRowStats } from "../../lib/native/addon.js";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { runForward } from "../../lib/engine/run-forward.js";
import { normalGenerator, writeRandomLlama, writeTensors } from "../golden/random-llama.js";

const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

/** The first index of the largest value (a NaN never wins), and max + log Σ exp(x − max) in fp64. */
function reference(row: Float32Array): { argmax: number; logZ: number } {
  let argmax = 0;
  for (let i = 1; i < row.length; i += 1) if (row[i] > row[argmax]) argmax = i;
  const max = row[argmax];
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return { argmax, logZ: max + Math.log(sum) };
}

test("argmax and log Σ exp of logits rows match an fp64 reference", () => {
  const vocab = 32_003;
  const normal = normalGenerator(7);
  const rows: Float32Array[] = [];
  for (const scale of [1, 8, 40, 1e-3]) rows.push(Float32Array.from({ length: vocab }, () => scale * normal()));
  const tied = Float32Array.from({ length: vocab }, (_, i) => (i % 1000 === 17 ? 5 : -3));
  const masked = new Float32Array(vocab).fill(-Infinity);
  masked[vocab - 1] = 2.5;
  const flat = new Float32Array(vocab).fill(0.25);
  rows.push(tied, masked, flat);
  const logits = new Float32Array(rows.length * vocab);
  rows.forEach((row, r) => logits.set(row, r * vocab));
  const stats = logitsRowStats(logits, vocab);
  rows.forEach((row, r) => {
    const expected = reference(row);
    assert.equal(stats.argmax[r], expected.argmax, `row ${r} argmax`);
    assert.ok(Math.abs(stats.logZ[r] - expected.logZ) <= 2e-7 * Math.max(1, Math.abs(expected.logZ)), `row ${r}: log Z ${stats.logZ[r]} vs ${expected.logZ}`);
  });
  assert.equal(stats.argmax[4], 17, "ties go to the first index");
  assert.equal(stats.logZ[5], 2.5, "one finite entry: log Z is that entry");
  assert.ok(Math.abs(stats.logZ[6] - (0.25 + Math.log(vocab))) < 1e-9);

  const nan = Float32Array.from({ length: 16 }, (_, i) => i);
  nan[0] = NaN;
  const nanStats = logitsRowStats(nan, 16);
  assert.equal(nanStats.argmax[0], 0, "a NaN first entry is never beaten, as in a > scan");
  assert.ok(Number.isNaN(nanStats.logZ[0]), "and its log Z is NaN, not a number that looks valid");
  assert.throws(() => logitsRowStats(new Float32Array(10), 3), /divide/);
});

test("runForward's logitsStats describe the logits it returns", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-logits-stats-"));
  try {
    const written = writeRandomLlama(join(root, "model"), { hidden: 64, heads: 4, kvHeads: 2, headDim: 16, intermediate: 96, layers: 2, vocab: 509, dtype: "BF16", tie: false, bias: false, seed: 61 });
    await writeTensors(written);
    const model = await loadForwardModel(written.dir);
    for (const compute of ["fp32", "auto"] as const) {
      const output = await runForward({ model, prompts: [[4, 8, 15, 16, 23, 42], [7, 1, 9]], logits: "all", logitsStats: true, compute });
      const logits = output.logits!;
      const rows = logits.length / 509;
      assert.equal(rows, 9);
      assert.equal(output.logitsArgmax!.length, rows);
      for (let r = 0; r < rows; r += 1) {
        const expected = reference(logits.subarray(r * 509, (r + 1) * 509));
        assert.equal(output.logitsArgmax![r], expected.argmax);
        assert.ok(Math.abs(output.logitsLogZ![r] - expected.logZ) <= 2e-7 * Math.max(1, Math.abs(expected.logZ)), `${compute} row ${r}`);
      }
      const without = await runForward({ model, prompts: [[4, 8, 15]], logits: "last", compute });
      assert.equal(without.logitsArgmax, undefined, "not asked, not returned");
      // Picked logits and a subset of whole rows: the same values as the full rows.
      const picks = { rows: [0, 8, 3, 3], tokens: [5, 508, 0, 17] };
      const subset = await runForward({ model, prompts: [[4, 8, 15, 16, 23, 42], [7, 1, 9]], logits: "all", logitsStats: true, logitsPicks: picks, wholeLogitsRows: [7, 2], compute });
      assert.deepEqual(Array.from(subset.pickedLogits!), picks.rows.map((row, i) => logits[row * 509 + picks.tokens[i]]));
      assert.equal(subset.logits!.length, 2 * 509, "only the asked rows come back whole");
      assert.ok(same(subset.logits!.subarray(0, 509), logits.subarray(7 * 509, 8 * 509)) && same(subset.logits!.subarray(509), logits.subarray(2 * 509, 3 * 509)));
      assert.deepEqual(subset.logitsLogZ, output.logitsLogZ, "statistics still cover every logits row");
      for (const bad of [{ logitsPicks: { rows: [9], tokens: [0] } }, { logitsPicks: { rows: [0], tokens: [509] } }, { logitsPicks: { rows: [0, 1], tokens: [0] } }, { wholeLogitsRows: [9] }]) {
        await assert.rejects(runForward({ model, prompts: [[4, 8, 15, 16, 23, 42], [7, 1, 9]], logits: "all", ...bad }), { code: "INVALID_ARGUMENT" });
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
