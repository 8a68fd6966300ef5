/**
 * `compute` reaches the engine from every pass the pipeline runs: the contrast means, teacher-forced scoring and
 * greedy completions give what runForward gives under the same `compute`, and bf16 differs from the fp32 default.
 * On a BF16 golden (llama3-tied-bf16), where "auto" means bf16.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { completePrompts } from "../../lib/directions/complete-prompts.js";
import { forcedPass } from "../../lib/directions/forced-scores.js";
import { meanActivations } from "../../lib/directions/mean-difference.js";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { runForward } from "../../lib/engine/run-forward.js";
import { runtimeInfo } from "../../lib/native/addon.js";
import { goldenDir } from "../golden/golden-paths.js";

const tables = runtimeInfo().kernels.forwardCompute;
const skip = tables.auto === tables.fp32 ? `this CPU (or ABLITERATE_KERNELS) runs no bf16 recipe: auto and fp32 both run ${tables.fp32}` : false;
const prompts = [
  [1, 15, 27, 99, 4],
  [1, 8, 61, 2],
];

test("contrast means, forced passes and completions run in the arithmetic they are given", { skip }, async () => {
  const model = await loadForwardModel(join(goldenDir, "forward", "llama3-tied-bf16"));
  const { numLayers, hiddenSize: d, vocabSize } = model.spec;
  const direct = async (compute: "fp32" | "auto") => runForward({ model, prompts: prompts.slice(0, 1), positions: "last", logits: "last", compute });
  const [fp32, auto] = [await direct("fp32"), await direct("auto")];
  assert.equal(auto.kernels, tables.auto);
  assert.notDeepEqual(auto.hidden, fp32.hidden, "bf16 arithmetic differs from fp32 on this model");

  // One prompt of weight 1: its mean is its own stream, widened to fp64.
  for (const [compute, reference] of [["fp32", fp32], ["auto", auto], [undefined, fp32]] as const) {
    const { mean } = await meanActivations({ model, prompts: prompts.slice(0, 1), compute });
    for (let layer = 0; layer <= numLayers; layer += 1) {
      assert.deepEqual(Array.from(mean[layer]), Array.from(reference.hidden.subarray(layer * d, (layer + 1) * d)), `mean, compute ${compute}, index ${layer}`);
    }
    const completions = await completePrompts({ model, prompts: prompts.slice(0, 1), maxNewTokens: 2, compute });
    assert.deepEqual(completions.firstLogits, reference.logits, `completion logits, compute ${compute}`);
  }

  // Teacher forcing: the distribution predicting the continuation's first token is the prompt's last logits.
  const rows = [{ prompt: prompts[0], continuation: [7, 9] }];
  const logSoftmax = (logits: Float32Array) => {
    let max = -Infinity;
    for (const v of logits.subarray(0, vocabSize)) max = Math.max(max, v);
    let sum = 0;
    for (const v of logits.subarray(0, vocabSize)) sum += Math.exp(v - max);
    return logits[7] - (max + Math.log(sum));
  };
  for (const [compute, reference] of [["fp32", fp32], ["auto", auto]] as const) {
    const pass = await forcedPass({ model, rows, compute });
    assert.ok(Math.abs(pass.logProbs[0][0] - logSoftmax(reference.logits!)) < 1e-5, `forced log p, compute ${compute}: ${pass.logProbs[0][0]} vs ${logSoftmax(reference.logits!)}`);
  }
  const [a, b] = [await forcedPass({ model, rows, compute: "auto" }), await forcedPass({ model, rows })];
  assert.notDeepEqual(a.logProbs, b.logProbs, "a forced pass under auto is not the fp32 default's");
});
