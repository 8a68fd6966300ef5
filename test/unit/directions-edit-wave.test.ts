/**
 * Candidate scoring in waves: where the model does not fit the memory budget, every pass reads each layer again, so
 * the scorer runs the candidates' behaviour passes several edits at a time (forcedPasses over runForward's `wave`),
 * reading each layer once per wave. The behaviour of every candidate must be the one scored a candidate at a time,
 * bit for bit, and forcedPasses must return each edit's own forcedPass.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { forcedPass, forcedPasses, forcedPassStreams } from "../../lib/directions/forced-scores.js";
import { createEditScorer, signatureRows, waveSizeFor } from "../../lib/directions/edit-scorer.js";
import { scoreCandidates } from "../../lib/directions/score-candidates.js";
import { readTrainedPrompts, trainedModelDir } from "../golden/trained/trained-fixtures.js";
import { prepareSelectionCase } from "../helpers/selection-case.js";

test("forcedPasses gives each edit its own forcedPass, and the scorer's waves give every candidate's behaviour", async (t) => {
  const common = await prepareSelectionCase({ dir: trainedModelDir("own-phrasing"), positive: readTrainedPrompts("harmfulTrain"), negative: readTrainedPrompts("harmlessTrain"), train: 32, validation: 16 });
  const { model, directions, signature, positive, negative } = common;
  const rows = signatureRows(positive, signature);
  const L = model.spec.numLayers;
  const edits = [
    { ablation: { directions: [Array.from(directions[2])] } },
    {},
    { addition: { vector: Array.from(directions[3]), point: 3 } },
    { ablation: { directions: [Array.from(directions[L - 1])], strengths: { embedding: 0, attention: Array.from({ length: L }, (_, l) => l / L), mlp: Array.from({ length: L }, () => 0.5) } } },
  ];
  for (const mode of ["resident", "streamed"] as const) {
    const passes = await forcedPasses({ model, rows, edits, keepDistributions: 2, logitsBudgetFloats: 40 * model.spec.vocabSize, mode });
    for (const [e, edit] of edits.entries()) {
      const alone = await forcedPass({ model, rows, edit, keepDistributions: 2, logitsBudgetFloats: 40 * model.spec.vocabSize, mode });
      assert.deepEqual(passes[e], alone, `${mode}, edit ${e}`);
    }
    assert.notDeepEqual(passes[0].logProbs, passes[1].logProbs, "the edits differ, so a wave running one edit for all would fail");
  }
  await assert.rejects(forcedPasses({ model, rows, edits, captureStreams: true }), /no resumeFrom or captureStreams/);

  // The ample default budget keeps the weights in memory: one edit per pass, whatever is asked. A budget under twice
  // the weights streams them, and the behaviour passes go in waves: this model's 32 000-token logits make an edit's
  // lane larger than its weights, so the default size is 1 here (waveSizeFor below) and the test asks for 2.
  const tight = model.totalBytes * 1.9;
  assert.equal((await createEditScorer({ model, positive, negative, signature, waveSize: 2 })).waveSize, 1);
  const sized = (await createEditScorer({ model, positive, negative, signature, maxMemoryBytes: tight })).waveSize;
  assert.ok(sized >= 1 && sized <= waveSizeFor(model, rows, tight), `the smallest size any set allows: ${sized}`);
  // Waves only where the passes stream: a budget under twice the weights whose passes still run resident (here forced
  // with mode "resident", as where the weights and a pass's activations fit) gets one edit a pass.
  assert.equal(forcedPassStreams({ model, rows, edits: 1, maxMemoryBytes: tight }), true);
  assert.equal(forcedPassStreams({ model, rows, edits: 1 }), false);
  assert.equal(forcedPassStreams({ model, rows, edits: 1, maxMemoryBytes: tight, mode: "resident" }), false);
  assert.equal((await createEditScorer({ model, positive, negative, signature, maxMemoryBytes: tight, mode: "resident", waveSize: 2 })).waveSize, 1);
  const streamedScorer = await createEditScorer({ model, positive, negative, signature, maxMemoryBytes: tight, waveSize: 2 });
  assert.equal(streamedScorer.waveSize, 2);
  const resident = await scoreCandidates(common);
  const streamed = await scoreCandidates({ ...common, maxMemoryBytes: tight, waveSize: 2 });
  assert.equal(streamed.baseline.positiveBehaviour, resident.baseline.positiveBehaviour);
  const scored = resident.candidates.filter((c) => c.behaviour !== null);
  assert.ok(scored.length > streamedScorer.waveSize, "more candidates than one wave, so several waves ran");
  for (const c of resident.candidates) assert.equal(streamed.candidates.find((s) => s.layer === c.layer)!.behaviour, c.behaviour, `layer ${c.layer}`);
  t.diagnostic(`${scored.length} candidates' behaviour in waves of ${streamedScorer.waveSize}; weights ${(model.totalBytes / 1e6).toFixed(1)} MB`);

  // Damage and addition passes go in waves too, in the selection's order. Everything the selection reports, damage
  // rows, notes and the candidates a winner found mid-wave dominates included, is what one edit a pass gives (both
  // streamed: a resident damage pass splits its rows otherwise, which rounds differently).
  for (const size of [2, 3]) {
    for (const skipDominated of [undefined, {}]) {
      const one = await scoreCandidates({ ...common, maxMemoryBytes: tight, waveSize: 1, skipDominated });
      const waved = await scoreCandidates({ ...common, maxMemoryBytes: tight, waveSize: size, skipDominated });
      assert.deepEqual(waved, one, `waves of ${size}, skipDominated ${skipDominated !== undefined}`);
      if (skipDominated) t.diagnostic(`waves of ${size}: ${one.candidates.map((c) => `layer ${c.layer}: ${c.note ?? "scored"}`).join("; ")}`);
    }
  }
});

test("waveSizeFor: 1 where the weights fit, else what a quarter of the room beside one layer holds, at most 16", () => {
  const model = { totalBytes: 1000e6, layerBytes: [40e6, 40e6], spec: { hiddenSize: 1000, vocabSize: 10_000 } } as unknown as Parameters<typeof waveSizeFor>[0];
  const rows = [{ prompt: Array.from({ length: 99 }, () => 1), continuation: [1, 2] }];
  // 100 tokens and 2 logits rows: 4 · (2 · 100 · 1000 + 2 · 11 000) = 888 000 bytes an edit.
  assert.equal(waveSizeFor(model, rows, 2000e6), 1);
  assert.equal(waveSizeFor(model, rows, 40e6 + 4 * 888_000 * 5), 5);
  assert.equal(waveSizeFor(model, rows, 40e6 + 4 * 888_000 * 5 - 1), 4);
  assert.equal(waveSizeFor(model, rows, 1500e6), 16);
  assert.equal(waveSizeFor(model, rows, 40e6), 1, "no room: one edit a pass");
});
