/**
 * Cheaper selection: scoring the damage only of candidates that can still win (in order of behaviour, stopping past
 * the tie window of the first that passes every filter) selects the same layer as scoring every candidate, and skips
 * the rest with a note saying why.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { learnSignature } from "../../lib/directions/behaviour-signature.js";
import { completePrompts } from "../../lib/directions/complete-prompts.js";
import { promptEncoder } from "../../lib/directions/encode-prompts.js";
import { loadPromptTokenizer } from "../../lib/tokenize/load-prompt-tokenizer.js";
import { contrastMeans } from "../../lib/directions/mean-difference.js";
import { scoreCandidates } from "../../lib/directions/score-candidates.js";
import { candidateLayers, selectDirection } from "../../lib/directions/select-direction.js";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { readTrainedPrompts, trainedModelDir } from "../golden/trained/trained-fixtures.js";

test("skipping dominated candidates selects the same layer as scoring them all", async (t) => {
  {
    // The trained model: its candidates differ in behaviour, so some are out of the running after the first winner.
    const dir = trainedModelDir("own-phrasing");
    const model = await loadForwardModel(dir);
    const encode = promptEncoder(loadPromptTokenizer({ dir }), {});
    const positive = readTrainedPrompts("harmfulTrain").slice(0, 60).map(encode);
    const negative = readTrainedPrompts("harmlessTrain").slice(0, 60).map(encode);
    const [trainP, valP] = [positive.slice(0, 40), positive.slice(40)];
    const [trainN, valN] = [negative.slice(0, 40), negative.slice(40)];
    const completions = await completePrompts({ model, prompts: [...trainP, ...trainN], maxNewTokens: 8 });
    const signature = learnSignature({ positive: completions.ids.slice(0, 40), negative: completions.ids.slice(40), decode: (ids) => ids.join(" ") });
    const means = await contrastMeans({ model, positive: trainP, negative: trainN });
    const layers = candidateLayers({ numLayers: model.spec.numLayers });
    const common = { model, directions: means.directions, layers, positive: valP, negative: valN, signature };
    const all = await scoreCandidates(common);
    const fast = await scoreCandidates({ ...common, skipDominated: {} });
    const full = selectDirection({ scores: all, numLayers: model.spec.numLayers });
    const quick = selectDirection({ scores: fast, numLayers: model.spec.numLayers });
    assert.equal(quick.layer, full.layer);
    const skipped = fast.candidates.filter((c) => c.note?.startsWith("not scored further"));
    t.diagnostic(`selected layer ${full.layer} both ways; ${skipped.length} of ${layers.length} candidates needed only their behaviour pass`);
    for (const c of fast.candidates) {
      const reference = all.candidates.find((a) => a.layer === c.layer)!;
      assert.equal(c.behaviour, reference.behaviour, "behaviour is scored for every candidate");
      if (c.kl !== null) assert.equal(c.kl, reference.kl);
    }
  }
});
