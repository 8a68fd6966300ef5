/**
 * What candidate scoring needs, prepared the pipeline's way from a model folder with a tokenizer and two prompt
 * sets: train prompts give the signature (from the unedited model's own greedy completions) and the mean-difference
 * directions, validation prompts are what the scorer runs on. Shared by the selection tests and the bench.
 */
import { learnSignature } from "../../lib/directions/behaviour-signature.js";
import { completePrompts } from "../../lib/directions/complete-prompts.js";
import { promptEncoder } from "../../lib/directions/encode-prompts.js";
import { contrastMeans } from "../../lib/directions/mean-difference.js";
import type { ScoreCandidatesParams } from "../../lib/directions/score-candidates.js";
import { candidateLayers } from "../../lib/directions/select-direction.js";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { loadPromptTokenizer } from "../../lib/tokenize/load-prompt-tokenizer.js";

export type SelectionCase = Pick<ScoreCandidatesParams, "model" | "directions" | "layers" | "positive" | "negative" | "signature">;

export async function prepareSelectionCase(params: { dir: string; positive: readonly string[]; negative: readonly string[]; train: number; validation: number }): Promise<SelectionCase> {
  const { dir, train, validation } = params;
  const model = await loadForwardModel(dir);
  const encode = promptEncoder(loadPromptTokenizer({ dir }), {});
  const positive = params.positive.slice(0, train + validation).map(encode);
  const negative = params.negative.slice(0, train + validation).map(encode);
  const completions = await completePrompts({ model, prompts: [...positive.slice(0, train), ...negative.slice(0, train)], maxNewTokens: 8 });
  const signature = learnSignature({ positive: completions.ids.slice(0, train), negative: completions.ids.slice(train), decode: (ids) => ids.join(" ") });
  const means = await contrastMeans({ model, positive: positive.slice(0, train), negative: negative.slice(0, train) });
  return { model, directions: means.directions, layers: candidateLayers({ numLayers: model.spec.numLayers }), positive: positive.slice(train), negative: negative.slice(train), signature };
}
