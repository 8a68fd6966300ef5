/**
 * The scorer's cache of unedited residual streams: an edit that leaves the layers below l alone (an addition at
 * point l, an ablation with α 0 at the embedding and below l) resumes at l from the streams its baseline pass kept.
 * Every score must be the one of running the whole stack (the skipped layers would compute exactly the cached
 * streams), whether the cache is on, off, or too small for the budget; and the resumable layer follows the edit.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { forcedPass, rowStreamBytes } from "../../lib/directions/forced-scores.js";
import { createEditScorer, signatureRows } from "../../lib/directions/edit-scorer.js";
import { scoreCandidates } from "../../lib/directions/score-candidates.js";
import { resumableLayer } from "../../lib/engine/resumable-layer.js";
import { readTrainedPrompts, trainedModelDir } from "../golden/trained/trained-fixtures.js";
import { prepareSelectionCase } from "../helpers/selection-case.js";

test("resumableLayer: the first stream an edit changes", () => {
  const L = 6;
  const zeros = () => Array.from({ length: L }, () => 0);
  const strengths = (embedding: number, at: number[]) => {
    const attention = zeros();
    const mlp = zeros();
    for (const l of at) mlp[l] = 0.5;
    return { embedding, attention, mlp };
  };
  const r = [[1, 0]];
  assert.equal(resumableLayer({ numLayers: L }), L, "no edit: nothing changes");
  assert.equal(resumableLayer({ numLayers: L, ablation: { directions: r } }), 0, "the convenience form ablates the embedding by default");
  assert.equal(resumableLayer({ numLayers: L, ablation: { directions: r, embedding: false } }), 0, "every layer by default");
  assert.equal(resumableLayer({ numLayers: L, ablation: { directions: r, embedding: false, layers: [4, 2] } }), 2);
  assert.equal(resumableLayer({ numLayers: L, ablation: { directions: r, alpha: 0 } }), L, "α 0 edits nothing");
  assert.equal(resumableLayer({ numLayers: L, ablation: { directions: r, strengths: strengths(0, [3, 5]) } }), 3);
  assert.equal(resumableLayer({ numLayers: L, ablation: { directions: r, strengths: strengths(1e-9, [3]) } }), 0, "any embedding α");
  assert.equal(resumableLayer({ numLayers: L, ablation: { directions: r, strengths: strengths(0, []) } }), L);
  assert.equal(resumableLayer({ numLayers: L, addition: { vector: [1, 0], point: 4 } }), 4, "an addition lands on the stream it resumes at");
  assert.equal(resumableLayer({ numLayers: L, addition: { vector: [1, 0], point: 4 }, ablation: { directions: r, strengths: strengths(0, [2]) } }), 2);
});

test("scores resumed from the cached unedited streams equal those of the whole stack", async (t) => {
  const common = await prepareSelectionCase({ dir: trainedModelDir("own-phrasing"), positive: readTrainedPrompts("harmfulTrain"), negative: readTrainedPrompts("harmlessTrain"), train: 32, validation: 16 });
  const { model, directions, signature, positive: valP, negative: valN } = common;
  const means = { directions };

  const cached = await scoreCandidates(common);
  const uncached = await scoreCandidates({ ...common, cacheStreams: [] });
  assert.deepEqual(cached.baseline, uncached.baseline);
  for (const c of cached.candidates) {
    const reference = uncached.candidates.find((u) => u.layer === c.layer)!;
    // The induced pass resumes at the candidate's own layer; its numbers are the whole stack's, bit for bit.
    assert.deepEqual(c, reference, `layer ${c.layer}`);
  }

  // The scorer keeps the streams it can afford, and a search-like edit (α 0 below layer l) resumes at l.
  const scorer = await createEditScorer({ model, positive: valP, negative: valN, signature, cacheStreams: ["positive", "negative"] });
  const plain = await createEditScorer({ model, positive: valP, negative: valN, signature, cacheStreams: [] });
  assert.ok((scorer.cachedStreamBytes.positive ?? 0) > 0 && (scorer.cachedStreamBytes.negative ?? 0) > 0, JSON.stringify(scorer.cachedStreamBytes));
  assert.deepEqual(plain.cachedStreamBytes, {});
  for (const set of ["positive", "negative", "induced"] as const) assert.ok(scorer.passSeconds[set] > 0 && scorer.passSeconds[set] < 60, `${set}: ${scorer.passSeconds[set]} s`);
  const L = model.spec.numLayers;
  const start = Math.floor(L / 2);
  const attention = Array.from({ length: L }, (_, l) => (l >= start ? 1 : 0));
  const edit = { ablation: { directions: [Array.from(means.directions[start])], strengths: { embedding: 0, attention, mlp: attention } } };
  const [a, b] = [await scorer.score(edit), await plain.score(edit)];
  assert.deepEqual(a, b);
  assert.ok(a.behaviour < cached.baseline.positiveBehaviour, "the edit does something, so the comparison is not vacuous");

  // A budget the streams do not fit in caches nothing, and the forced pass says where it started.
  const rows = signatureRows(valP, signature);
  const bytes = rowStreamBytes(rows, L, model.spec.hiddenSize);
  const tight = await createEditScorer({ model, positive: valP, negative: valN, signature, maxMemoryBytes: model.totalBytes * 2 + bytes });
  assert.equal(tight.cachedStreamBytes.positive, undefined, JSON.stringify(tight.cachedStreamBytes));
  const captured = await forcedPass({ model, rows, captureStreams: true });
  const resumed = await forcedPass({ model, rows, edit, resumeFrom: captured.streams });
  const whole = await forcedPass({ model, rows, edit });
  assert.equal(resumed.startLayer, start);
  assert.deepEqual(resumed.logProbs, whole.logProbs);

  // A first batch of its own (the selection's damage pass) resumes from streams captured with the same split, and a
  // stop after it keeps exactly the first rows.
  // (Bit for bit against the same split run whole: another batching rounds differently, by about 1e-7.)
  const split = await forcedPass({ model, rows, captureStreams: true, firstBatchRows: 3 });
  assert.equal(split.streams!.batches.length, 2);
  const splitWhole = await forcedPass({ model, rows, edit, firstBatchRows: 3 });
  assert.deepEqual((await forcedPass({ model, rows, edit, resumeFrom: split.streams, firstBatchRows: 3 })).logProbs, splitWhole.logProbs);
  splitWhole.logProbs.flat().forEach((v, i) => assert.ok(Math.abs(v - whole.logProbs.flat()[i]) <= 1e-5 * Math.max(1, Math.abs(v)), `${v} vs ${whole.logProbs.flat()[i]}`));
  let checks = 0;
  const stopped = await forcedPass({ model, rows, edit, firstBatchRows: 3, stopWhen: (pass, n) => ((checks += 1), assert.equal(n, 3), assert.equal(pass.logProbs.length, 3), true) });
  assert.equal(checks, 1);
  assert.deepEqual(stopped.logProbs, splitWhole.logProbs.slice(0, 3));
  t.diagnostic(`streams of ${rows.length} positive rows: ${(bytes / 1e6).toFixed(1)} MB; resumed at layer ${start} of ${L}`);
});
