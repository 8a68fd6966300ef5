/**
 * Cheaper selection:
 * - scoring the damage only of candidates that can still win (in order of behaviour, stopping past the tie window of
 *   the first that passes every filter) selects the same layer as scoring every candidate, and skips the rest with a
 *   note saying why;
 * - a candidate's damage pass stops once its first rows fail a wall whatever the rest do, and its addition is then
 *   not scored: every candidate keeps the verdict (passed or not) that scoring everything gives it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { damageFailsWalls } from "../../lib/directions/edit-scorer.js";
import { scoreCandidates, type CandidateScores } from "../../lib/directions/score-candidates.js";
import { candidateFilters, selectDirection } from "../../lib/directions/select-direction.js";
import { readTrainedPrompts, trainedModelDir } from "../golden/trained/trained-fixtures.js";
import { prepareSelectionCase } from "../helpers/selection-case.js";

test("the damage bound: a wall fails early only when no outcome of the remaining rows could pass it", () => {
  const total = { rows: 20, klPositions: 80 };
  const walls = { maxKl: 0.1, minUnchanged: 0.9 };
  // 90% of 20 unchanged allows 2 changed completions; a third fails, whatever the other rows do.
  assert.equal(damageFailsWalls({ changed: 2, klSum: 0 }, total, walls), false);
  assert.equal(damageFailsWalls({ changed: 3, klSum: 0 }, total, walls), true);
  // The mean KL over all 80 positions is at least the sum seen over 80: 8.0 is the most that can still pass.
  assert.equal(damageFailsWalls({ changed: 0, klSum: 8 }, total, walls), false);
  assert.equal(damageFailsWalls({ changed: 0, klSum: 8.01 }, total, walls), true);
  assert.equal(damageFailsWalls({ changed: 0, klSum: NaN }, total, walls), true, "a NaN fails the KL wall, as it does on a whole pass");
});

const verdictsOf = (scores: CandidateScores, criteria: { maxKl?: number; minUnchanged?: number }) => {
  const { walls } = candidateFilters(criteria, scores.baseline);
  return new Map(scores.candidates.map((c) => [c.layer, walls(c).length === 0]));
};

test("skipping dominated candidates selects the same layer as scoring them all", async (t) => {
  // The trained model: its candidates differ in behaviour, so some are out of the running after the first winner.
  const prepared = await prepareSelectionCase({ dir: trainedModelDir("own-phrasing"), positive: readTrainedPrompts("harmfulTrain"), negative: readTrainedPrompts("harmlessTrain"), train: 40, validation: 20 });
  const { model, layers } = prepared;
  const all = await scoreCandidates(prepared);
  const fast = await scoreCandidates({ ...prepared, skipDominated: {} });
  const full = selectDirection({ scores: all, numLayers: model.spec.numLayers });
  const quick = selectDirection({ scores: fast, numLayers: model.spec.numLayers });
  assert.equal(quick.layer, full.layer);
  const skipped = fast.candidates.filter((c) => c.note?.startsWith("not scored further"));
  t.diagnostic(`selected layer ${full.layer} both ways; ${skipped.length} of ${layers.length} candidates needed only their behaviour pass`);
  for (const c of fast.candidates) {
    const reference = all.candidates.find((a) => a.layer === c.layer)!;
    assert.equal(c.behaviour, reference.behaviour, "behaviour is scored for every candidate");
    if (c.kl !== null && c.damageRows === undefined) assert.equal(c.kl, reference.kl);
  }

  // Walls that most candidates fail: their damage passes stop on the first rows, and nothing that could pass is lost.
  for (const criteria of [{ maxKl: 1e-3 }, { maxKl: 2e-3, minUnchanged: 1 }]) {
    const strict = await scoreCandidates({ ...prepared, skipDominated: criteria });
    const expected = verdictsOf(all, criteria);
    const got = verdictsOf(strict, criteria);
    const stopped = strict.candidates.filter((c) => c.damageRows !== undefined);
    t.diagnostic(`${JSON.stringify(criteria)}: ${stopped.length} of ${layers.length} damage passes stopped early (${stopped.map((c) => `layer ${c.layer} after ${c.damageRows} rows`).join(", ")}); ${[...expected.values()].filter(Boolean).length} pass`);
    assert.ok(stopped.length > 0, "the strict walls stop some damage pass early");
    for (const c of strict.candidates) {
      if (c.note?.startsWith("not scored further")) continue; // dominated: its verdict no longer matters
      assert.equal(got.get(c.layer), expected.get(c.layer), `layer ${c.layer}: the same verdict as scoring everything`);
      if (c.damageRows !== undefined) {
        assert.ok(c.damageRows < prepared.negative.length);
        assert.equal(c.induced, null, "a candidate out on its damage does not get its addition scored");
        assert.match(candidateFilters(criteria, strict.baseline).walls(c).join("; "), new RegExp(`first ${c.damageRows} negative completions`));
      }
      if (got.get(c.layer)) assert.equal(c.induced, all.candidates.find((a) => a.layer === c.layer)!.induced, "a candidate that passes is scored whole");
    }
    assert.deepEqual(
      (() => { try { return selectDirection({ scores: strict, numLayers: model.spec.numLayers, criteria }).layer; } catch { return "none"; } })(),
      (() => { try { return selectDirection({ scores: all, numLayers: model.spec.numLayers, criteria }).layer; } catch { return "none"; } })(),
    );
  }
});
