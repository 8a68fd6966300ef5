/** Refusal log-odds, KL, candidate layers, the selection filters, and refusal tokens. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { klDivergence, refusalLogOdds } from "../../lib/directions/next-token-statistics.js";
import { writePlantedRefusalModel } from "../../lib/directions/planted-refusal-model.js";
import { isRefusal, refusalTokenIds } from "../../lib/directions/refusal-tokens.js";
import type { CandidateScore } from "../../lib/directions/score-candidates.js";
import { candidateLayers, selectDirection } from "../../lib/directions/select-direction.js";
import { loadPromptTokenizer } from "../../lib/tokenize/load-prompt-tokenizer.js";

test("refusal log-odds and KL against closed forms", () => {
  // Row 1 of a [2, 3] logits matrix: p = softmax(0, ln 2, ln 5) = (1/8, 2/8, 5/8).
  const logits = [9, 9, 9, 0, Math.log(2), Math.log(5)];
  assert.ok(Math.abs(refusalLogOdds(logits, 1, 3, new Set([2])) - Math.log(5 / 3)) < 1e-12);
  assert.ok(Math.abs(refusalLogOdds(logits, 1, 3, new Set([0, 1])) - Math.log(3 / 5)) < 1e-12);
  const q = [0, 0, 0];
  const expected = (1 / 8) * Math.log((1 / 8) / (1 / 3)) + (2 / 8) * Math.log((2 / 8) / (1 / 3)) + (5 / 8) * Math.log((5 / 8) / (1 / 3));
  assert.ok(Math.abs(klDivergence([0, Math.log(2), Math.log(5)], q, 0, 3) - expected) < 1e-12);
  assert.equal(klDivergence(q, q, 0, 3), 0);
});

test("candidate layers: default leaves out the last 20%, a:b narrows, bad ranges are refused", () => {
  assert.deepEqual(candidateLayers({ numLayers: 10 }), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(candidateLayers({ numLayers: 4 }), [0, 1, 2, 3]);
  assert.deepEqual(candidateLayers({ numLayers: 10, range: "2:5" }), [2, 3, 4]);
  assert.deepEqual(candidateLayers({ numLayers: 10, range: "8:" }), [8, 9, 10]);
  assert.throws(() => candidateLayers({ numLayers: 10, range: "5:5" }), /empty or outside/);
  assert.throws(() => candidateLayers({ numLayers: 10, range: "3-4" }), /half-open range/);
});

test("selection: KL and induced-refusal filters, lowest refusal score wins, a clear error when none survives", () => {
  const c = (layer: number, refusalScore: number | null, kl: number | null, inducedRefusal: number | null): CandidateScore => ({ layer, norm: 1, refusalScore, kl, inducedRefusal });
  const candidates = [c(0, null, null, null), c(1, -9, 0.5, 3), c(2, -4, 0.05, 2), c(3, -6, 0.09, -1), c(4, -5, 0.01, 0.5)];
  const selection = selectDirection({ candidates });
  assert.equal(selection.layer, 4);
  assert.deepEqual(selection.verdicts.map((v) => v.passed), [false, false, true, false, true]);
  assert.match(selection.verdicts[1].reasons[0], /KL 0.500 > 0.1/);
  assert.match(selection.verdicts[3].reasons[0], /induces no refusal/);
  assert.equal(selectDirection({ candidates, maxKl: 1 }).layer, 1);
  assert.throws(() => selectDirection({ candidates: [c(1, -9, 0.5, 3)] }), /no candidate direction survived.*\n  layer 1: KL 0.500 > 0.1/s);
  // Switching the induced-refusal filter off lets layer 3 (lowest refusal with KL ≤ 0.1) win, and says so.
  const unfiltered = selectDirection({ candidates, requireInducedRefusal: false });
  assert.equal(unfiltered.layer, 3);
  assert.match(unfiltered.notes[0], /induced-refusal filter was switched off/);
});

test("refusal tokens come from the model's tokenizer; markers match case-insensitively", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-"));
  try {
    const planted = await writePlantedRefusalModel({ dir: join(root, "model") });
    const tokens = refusalTokenIds(loadPromptTokenizer({ dir: planted.dir }));
    assert.ok(tokens.ids.includes(planted.refusalTokenId));
    assert.ok(!tokens.ids.includes(0), "the unknown token is not a refusal token");
    assert.ok(!tokens.ids.includes(planted.complianceTokenId));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  assert.equal(isRefusal("SORRY, no."), true);
  assert.equal(isRefusal("I can’t help with that"), true);
  assert.equal(isRefusal("Sure, here is a recipe"), false);
  assert.equal(isRefusal("nope", ["nope"]), true);
});
