/**
 * Teacher-forced rows with the same engine input (one-token openings of one prompt; a row whose prompt ends where
 * another's continuation begins) share one run of it: each reads its own positions off that run's logits. The
 * log-probabilities equal the log-softmax of one direct run of the input, computed here in fp64, and running every
 * row on its own (reusePrefix false) gives the same figures.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { forcedPass, type ForcedRow } from "../../lib/directions/forced-scores.js";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { runForward } from "../../lib/engine/run-forward.js";
import { goldenDir } from "../golden/golden-paths.js";

function logSoftmaxAt(logits: Float32Array, row: number, vocab: number, token: number): number {
  let max = -Infinity;
  for (let v = 0; v < vocab; v += 1) max = Math.max(max, logits[row * vocab + v]);
  let sum = 0;
  for (let v = 0; v < vocab; v += 1) sum += Math.exp(logits[row * vocab + v] - max);
  return logits[row * vocab + token] - max - Math.log(sum);
}

test("rows with the same input read their logits off one run of it", async () => {
  const model = await loadForwardModel(join(goldenDir, "forward", "llama3-tied-bf16"));
  const vocab = model.spec.vocabSize;
  const prompt = [1, 15, 27, 99, 4];
  const other = [1, 8, 61, 2];
  const rows: ForcedRow[] = [
    { prompt, continuation: [7] },
    { prompt: other, continuation: [5, 9] },
    { prompt, continuation: [11] },
    // Its input is `prompt` too (prompt minus its last token, then that token and 13): it reads two positions.
    { prompt: prompt.slice(0, -1), continuation: [prompt.at(-1)!, 13] },
    { prompt, continuation: [12] },
  ];
  const shared = await forcedPass({ model, rows, compute: "fp32", keepDistributions: 1 });
  const direct = await runForward({ model, prompts: [prompt], positions: "none", logits: { last: [2] }, compute: "fp32" });
  const expected = [
    [logSoftmaxAt(direct.logits!, 1, vocab, 7)],
    null,
    [logSoftmaxAt(direct.logits!, 1, vocab, 11)],
    [logSoftmaxAt(direct.logits!, 0, vocab, prompt.at(-1)!), logSoftmaxAt(direct.logits!, 1, vocab, 13)],
    [logSoftmaxAt(direct.logits!, 1, vocab, 12)],
  ];
  expected.forEach((values, r) => values?.forEach((v, i) => assert.ok(Math.abs(shared.logProbs[r][i] - v) <= 1e-5, `row ${r} position ${i}: ${shared.logProbs[r][i]} vs ${v}`)));
  // The rows of one run keep one distribution each position: the kept ones are the same array's values.
  assert.deepEqual(shared.distributions[0][0], shared.distributions[2][0]);
  assert.deepEqual(shared.distributions[0][0], shared.distributions[4][0]);

  // One run of `prompt` (5 tokens) and of `other`'s input (5, its first token shared with `prompt`): 9 tokens, where
  // prefix sharing alone runs 12 (each repeat of `prompt` its last token) and every row whole 25.
  assert.equal(shared.tokensRun, 9);
  const separate = await forcedPass({ model, rows, compute: "fp32", keepDistributions: 1, reusePrefix: false });
  assert.equal(separate.tokensRun, 25);
  assert.deepEqual(shared.greedyMatches, separate.greedyMatches);
  shared.logProbs.forEach((values, r) => values.forEach((v, i) => assert.ok(Math.abs(v - separate.logProbs[r][i]) <= 1e-5, `row ${r} position ${i}: ${v} vs ${separate.logProbs[r][i]}`)));
});
