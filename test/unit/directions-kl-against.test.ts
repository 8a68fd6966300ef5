/**
 * A forced pass given the unedited pass (klAgainst) takes each kept position's KL straight off its logits instead of
 * keeping a distribution: the figures must be klFromLogSoftmax's on the kept distributions bit for bit (the search's
 * picks compare them), 0 exactly for the unedited model against itself, and within fp64 rounding of the KL computed
 * here from the engine's raw logits.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { forcedPass, forcedPasses, klFromLogSoftmax, type Edit, type ForcedRow } from "../../lib/directions/forced-scores.js";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { runForward } from "../../lib/engine/run-forward.js";
import { goldenDir } from "../golden/golden-paths.js";

function logSoftmaxRow(logits: Float32Array, row: number, vocab: number): Float64Array {
  const values = logits.subarray(row * vocab, (row + 1) * vocab);
  let max = -Infinity;
  for (const v of values) max = Math.max(max, v);
  let sum = 0;
  for (const v of values) sum += Math.exp(v - max);
  const logZ = max + Math.log(sum);
  return Float64Array.from(values, (v) => v - logZ);
}

test("klAgainst gives the kept distributions' KL bit for bit, 0 against itself, and the fp64 KL of the raw logits", async () => {
  const model = await loadForwardModel(join(goldenDir, "forward", "llama3-tied-bf16"));
  const { vocabSize: vocab, hiddenSize } = model.spec;
  const rows: ForcedRow[] = [
    { prompt: [1, 15, 27, 99, 4], continuation: [7, 3, 19] },
    { prompt: [1, 8, 61, 2], continuation: [5, 9] },
    { prompt: [1, 15, 27, 99, 4], continuation: [11] },
  ];
  const keep = 2;
  const direction = Array.from({ length: hiddenSize }, (_, i) => Math.sin(1.7 * i + 0.3));
  const edit: Edit = { ablation: { directions: [direction], alpha: 1 } };
  const reference = await forcedPass({ model, rows, compute: "fp32", keepDistributions: keep });
  const kept = await forcedPass({ model, rows, edit, compute: "fp32", keepDistributions: keep });
  const probabilities = reference.distributions.map((positions) => positions.map((d) => Float64Array.from(d, Math.exp)));
  const withExp = await forcedPass({ model, rows, edit, compute: "fp32", keepDistributions: keep, klAgainst: { distributions: reference.distributions, probabilities } });
  const withoutExp = await forcedPass({ model, rows, edit, compute: "fp32", keepDistributions: keep, klAgainst: { distributions: reference.distributions } });
  const self = await forcedPass({ model, rows, compute: "fp32", keepDistributions: keep, klAgainst: reference });
  // Two edits as one wave take their KL the same way.
  const [waveUnedited, waveEdited] = await forcedPasses({ model, rows, edits: [{}, edit], compute: "fp32", keepDistributions: keep, klAgainst: reference });

  const direct = await runForward({ model, prompts: rows.map((r) => [...r.prompt, ...r.continuation.slice(0, -1)]), positions: "none", logits: { last: rows.map((r) => r.continuation.length) }, compute: "fp32" });
  const editedDirect = await runForward({ model, prompts: rows.map((r) => [...r.prompt, ...r.continuation.slice(0, -1)]), positions: "none", logits: { last: rows.map((r) => r.continuation.length) }, ablation: edit.ablation, compute: "fp32" });
  let first = 0;
  rows.forEach((row, r) => {
    const positions = Math.min(keep, row.continuation.length);
    assert.equal(withExp.kl![r].length, positions);
    assert.equal(withExp.distributions[r].length, 0);
    for (let i = 0; i < positions; i += 1) {
      const expected = klFromLogSoftmax(reference.distributions[r][i], kept.distributions[r][i]);
      assert.equal(withoutExp.kl![r][i], expected, `row ${r} position ${i}`);
      assert.equal(withExp.kl![r][i], klFromLogSoftmax(reference.distributions[r][i], kept.distributions[r][i], probabilities[r][i]), `row ${r} position ${i}`);
      assert.equal(waveEdited.kl![r][i], expected, `wave: row ${r} position ${i}`);
      assert.equal(self.kl![r][i], 0);
      assert.equal(waveUnedited.kl![r][i], 0);
      const p = logSoftmaxRow(direct.logits!, first + i, vocab);
      const q = logSoftmaxRow(editedDirect.logits!, first + i, vocab);
      let kl = 0;
      for (let v = 0; v < vocab; v += 1) kl += Math.exp(p[v]) * (p[v] - q[v]);
      assert.ok(kl > 1e-4, `the edit moves row ${r} position ${i} (KL ${kl})`);
      assert.ok(Math.abs(expected - kl) <= 1e-5 * kl + 1e-6, `row ${r} position ${i}: ${expected} vs fp64 ${kl}`);
    }
    first += row.continuation.length;
  });
});
