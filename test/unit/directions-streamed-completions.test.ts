/**
 * Greedy completions where the weights do not fit the budget: the generation streams the layers (every new token
 * reads each layer again) and returns the resident run's tokens and first logits bit for bit, in as few batches as
 * the budget holds; only where not even that fits is each completion the most likely first token.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { completePrompts, generationMode } from "../../lib/directions/complete-prompts.js";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { readForwardGolden } from "../golden/forward-golden.js";

test("completions stream the layers where the weights do not fit, with the resident run's tokens", async () => {
  const golden = await readForwardGolden("llama");
  const model = await loadForwardModel(golden.dir);
  // 70 prompts: more than the default batch of 64.
  const prompts = Array.from({ length: 70 }, (_, p) => [...golden.inputIds[p % golden.inputIds.length], 1 + (p % 50)]);
  const batchesOf = async (maxMemoryBytes: number) => {
    let batches = 0;
    const completions = await completePrompts({ model, prompts, maxNewTokens: 6, compute: "fp32", maxMemoryBytes, onProgress: () => (batches += 1) });
    return { completions, batches };
  };
  // A budget under what a resident batch of 64 needs and over what all 70 prompts need streamed (this tiny model's
  // activations outweigh its weights), found by scanning the engine's estimates.
  const budgets = Array.from({ length: 400 }, (_, i) => model.totalBytes * (1 + i / 40));
  const tight = budgets.find((b) => generationMode(model, prompts.slice(0, 64), 6, b) === "streamed" && generationMode(model, prompts, 6, b) === "streamed")!;
  assert.ok(tight !== undefined, "some budget streams every prompt in one batch");
  const ample = 100 * tight;
  assert.equal(generationMode(model, prompts, 6, ample), "resident");
  assert.equal(generationMode(model, prompts, 6, tight), "streamed");
  assert.equal(generationMode(model, prompts, 6, 1024), undefined);

  const resident = await batchesOf(ample);
  const streamed = await batchesOf(tight);
  assert.equal(resident.completions.method, "generation");
  assert.equal(streamed.completions.method, "generation");
  assert.deepEqual(streamed.completions.ids, resident.completions.ids);
  assert.deepEqual(streamed.completions.firstLogits, resident.completions.firstLogits);
  assert.ok(resident.completions.ids.every((ids) => ids.length >= 1) && resident.completions.ids.some((ids) => ids.length === 6));
  assert.equal(resident.batches, 2, "resident: batches of 64");
  assert.equal(streamed.batches, 1, "streamed: every prompt in one batch, one read of the model per new token");

  // Below what even a streamed generation holds (every layer's keys and values): the first token only, said so.
  const starved = await batchesOf(1024);
  assert.equal(starved.completions.method, "first-token");
  assert.deepEqual(starved.completions.ids, resident.completions.ids.map((ids) => ids.slice(0, 1)));
});
