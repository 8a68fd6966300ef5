/**
 * Cheaper selection: scoring the damage only of candidates that can still win (in order of behaviour, stopping past
 * the tie window of the first that passes every filter) selects the same layer as scoring every candidate, and skips
 * the rest with a note saying why.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { scoreCandidates } from "../../lib/directions/score-candidates.js";
import { selectDirection } from "../../lib/directions/select-direction.js";
import { readTrainedPrompts, trainedModelDir } from "../golden/trained/trained-fixtures.js";
import { prepareSelectionCase } from "../helpers/selection-case.js";

test("skipping dominated candidates selects the same layer as scoring them all", async (t) => {
  {
    // The trained model: its candidates differ in behaviour, so some are out of the running after the first winner.
    const prepared = await prepareSelectionCase({ dir: trainedModelDir("own-phrasing"), positive: readTrainedPrompts("harmfulTrain"), negative: readTrainedPrompts("harmlessTrain"), train: 40, validation: 20 });
    const { model, layers } = prepared;
    const common = { ...prepared };
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
