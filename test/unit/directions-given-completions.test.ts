/**
 * The scorer reads the negative prompts' unedited completions where the caller made them already (the pipeline's
 * signature pass): completions generated longer, in a batch with other prompts, give every score bit for bit the
 * scorer's own generation gives; they are what it judges damage against (other completions give other scores); too
 * short ones, or a count that is not the prompts', are not taken.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { completePrompts } from "../../lib/directions/complete-prompts.js";
import { scoreCandidates } from "../../lib/directions/score-candidates.js";
import { readTrainedPrompts, trainedModelDir } from "../golden/trained/trained-fixtures.js";
import { prepareSelectionCase } from "../helpers/selection-case.js";

test("completions made earlier, longer and beside other prompts, give the scorer's own numbers", async () => {
  const common = await prepareSelectionCase({ dir: trainedModelDir("own-phrasing"), positive: readTrainedPrompts("harmfulTrain"), negative: readTrainedPrompts("harmlessTrain"), train: 32, validation: 16 });
  const own = await scoreCandidates(common);
  // As the signature pass makes them: 24 tokens, after other prompts in the same batches.
  const made = await completePrompts({ model: common.model, prompts: [...common.positive, ...common.negative], maxNewTokens: 24 });
  assert.equal(made.method, "generation");
  const ids = made.ids.slice(common.positive.length);
  assert.ok(ids.some((row) => row.length > 16), "some completion runs past the 16 tokens the scorer keeps");
  const given = await scoreCandidates({ ...common, negativeCompletions: { ids, tokens: 24 } });
  assert.deepEqual(given, own);

  // The rows are the given ones: completions of other prompts change the damage the scorer measures.
  const shifted = [...ids.slice(1), ids[0]];
  const other = await scoreCandidates({ ...common, negativeCompletions: { ids: shifted, tokens: 24 } });
  assert.notDeepEqual(other.candidates.map((c) => c.kl), own.candidates.map((c) => c.kl));

  // Shorter than the scorer keeps, or not one per prompt: generated anew, so the numbers are its own.
  assert.deepEqual(await scoreCandidates({ ...common, negativeCompletions: { ids: shifted, tokens: 8 } }), own);
  assert.deepEqual(await scoreCandidates({ ...common, negativeCompletions: { ids: shifted.slice(1), tokens: 24 } }), own);
});
