/**
 * The behaviour signature on hand-made completions (closed forms for its counts), the damage and KL arithmetic, the
 * candidate layers, and the selection's walls, soft filter and tie-break.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { learnSignature, showsBehaviour } from "../../lib/directions/behaviour-signature.js";
import { klFromLogSoftmax, type ForcedPass } from "../../lib/directions/forced-scores.js";
import { isRefusal } from "../../lib/directions/refusal-phrases.js";
import { damageOf, signatureProbabilities } from "../../lib/directions/edit-scorer.js";
import type { CandidateScore, CandidateScores } from "../../lib/directions/score-candidates.js";
import { candidateLayers, selectDirection } from "../../lib/directions/select-direction.js";
import { ErrorCodes } from "../../lib/errors.js";

const WORDS = ["<pad>", "i", "cannot", "can", "help", "sure", "here", "is", ".", "sorry", "think", "hello", "no"];
const decode = (ids: number[]) => ids.map((id) => WORDS[id] ?? `#${id}`).join(" ");
const w = (text: string) => text.split(" ").map((word) => WORDS.indexOf(word));

test("signature: a first token shared with the other set is not distinctive; its continuation is", () => {
  const positive = [w("i cannot help ."), w("i cannot help ."), w("i cannot ."), w("sure here is")];
  const negative = [w("i can help ."), w("i can help ."), w("sure here is ."), w("here is .")];
  const signature = learnSignature({ positive, negative, decode });
  assert.deepEqual(signature.sequences.map((s) => s.text), ["i cannot"]);
  assert.equal(signature.sequences[0].positive, 3);
  assert.equal(signature.sequences[0].negative, 0);
  assert.equal(signature.coverage, 3 / 4);
  assert.equal(signature.leak, 0);
  assert.equal(signature.separability, 3 / 4);
  assert.deepEqual(signature.preamble, []);
  assert.equal(showsBehaviour(signature, w("i cannot do that")), true);
  assert.equal(showsBehaviour(signature, w("i can do that")), false);
  assert.equal(showsBehaviour(signature, w("i")), false, "a completion shorter than the opening does not show it");
});

test("signature: a preamble every completion shares is kept in front of each opening, not searched", () => {
  const positive = [w("think . sorry no"), w("think . sorry ."), w("think . no")];
  const negative = [w("think . sure here"), w("think . hello"), w("think . sure is")];
  const signature = learnSignature({ positive, negative, decode });
  assert.deepEqual(signature.preamble, w("think ."));
  assert.deepEqual(signature.sequences.map((s) => s.text).sort(), ["think . no", "think . sorry"]);
  assert.equal(signature.coverage, 1);
  // Prefix-free: no sequence starts another.
  for (const a of signature.sequences) for (const b of signature.sequences) if (a !== b) assert.ok(!b.tokens.every((t, i) => a.tokens[i] === t) || b.tokens.length > a.tokens.length);
});

test("signature: a rare opening counts only through the prior, and only where the model produced it", () => {
  // 1 of 40 positive completions opens with "sorry": below the 3 % support unless the prior names it.
  const positive = [...Array.from({ length: 39 }, () => w("no .")), w("sorry .")];
  const negative = Array.from({ length: 40 }, () => w("sure here"));
  const plain = learnSignature({ positive, negative, decode });
  assert.deepEqual(plain.sequences.map((s) => s.text), ["no"]);
  const withPrior = learnSignature({ positive, negative, decode, priorPhrases: ["Sorry", "I apologize"] });
  assert.deepEqual(withPrior.sequences.map((s) => s.text), ["no", "sorry"]);
  assert.equal(withPrior.sequences[1].byPrior, true);
  assert.deepEqual(withPrior.priorPhrasesSeen, ["sorry"], "the phrase the model never produced is not reported");
});

test("signature: labels from markers override the prompt sets", () => {
  const positive = [w("sure here is"), w("no .")];
  const negative = [w("no no"), w("sure is")];
  const labels = { positive: [false, true], negative: [true, false] };
  const signature = learnSignature({ positive, negative, decode, labels });
  assert.equal(signature.labelledBy, "markers");
  assert.deepEqual(signature.sequences.map((s) => s.text), ["no"]);
  assert.equal(signature.coverage, 1);
});

test("signature: when nothing separates the sets, a clear error shows completions and the options that help", () => {
  const same = [w("sure here is"), w("sure here is"), w("hello .")];
  assert.throws(
    () => learnSignature({ positive: same, negative: same, decode, names: { positive: "formal", negative: "casual" } }),
    (error: Error & { code?: string }) => {
      assert.equal(error.code, ErrorCodes.SIGNATURE_NOT_FOUND);
      assert.match(error.message, /typical of the formal set and rare in the casual set/);
      assert.match(error.message, /formal: "sure here is"/);
      assert.match(error.message, /--behaviour-markers/);
      return true;
    },
  );
});

test("signature probabilities add over prefix-free sequences; damage counts a completion unchanged only if every reproduced position is", () => {
  const pass = (logProbs: number[][], greedyMatches: boolean[][] = [], distributions: Float32Array[][] = []): ForcedPass => ({ logProbs, greedyMatches, distributions, tokensRun: 0 });
  // Two prompts × two sequences: p = e^(−1)·e^(−1) + e^(−2), and 0.5 + 0.25 (capped at 1 never reached).
  const probs = signatureProbabilities(pass([[-1, -1], [-2], [Math.log(0.5)], [Math.log(0.25)]]), 2, 2);
  assert.ok(Math.abs(probs[0] - (Math.exp(-2) + Math.exp(-2))) < 1e-15);
  assert.ok(Math.abs(probs[1] - 0.75) < 1e-15);

  const ref = new Float32Array([Math.log(0.5), Math.log(0.5)]);
  const edited = new Float32Array([Math.log(0.25), Math.log(0.75)]);
  const expectedKl = 0.5 * Math.log(0.5 / 0.25) + 0.5 * Math.log(0.5 / 0.75);
  assert.ok(Math.abs(klFromLogSoftmax(ref, edited) - expectedKl) < 1e-6);
  // Row 0 reproduces 3 tokens and the edit keeps them; row 1's unedited pass diverges at position 1 (a near-tie), so
  // only position 0 counts and the edit's change at position 2 is not held against it; row 2 changes at position 0.
  const reference = pass([], [[true, true, true], [true, false, true], [true]], [[ref], [ref], [ref]]);
  const after = pass([], [[true, true, true], [true, true, false], [false]], [[ref], [edited], [ref]]);
  const damage = damageOf(reference, after, 1);
  assert.equal(damage.unchanged, 2 / 3);
  assert.ok(Math.abs(damage.kl - expectedKl / 3) < 1e-6);
});

test("candidate layers: every index 0..L by default (the last one included), a:b narrows, bad ranges are refused", () => {
  assert.deepEqual(candidateLayers({ numLayers: 4 }), [0, 1, 2, 3, 4]);
  assert.deepEqual(candidateLayers({ numLayers: 10, range: "2:5" }), [2, 3, 4]);
  assert.deepEqual(candidateLayers({ numLayers: 10, range: "8:" }), [8, 9, 10]);
  assert.throws(() => candidateLayers({ numLayers: 10, range: "5:5" }), /empty or outside/);
  assert.throws(() => candidateLayers({ numLayers: 10, range: "3-4" }), /half-open range/);
});

function scores(candidates: CandidateScore[]): CandidateScores {
  return { baseline: { positiveBehaviour: 0.9, negativeBehaviour: 0.1, unchanged: 1 }, settings: { klTokens: 4, unchangedTokens: 16, inducedPrompts: 16 }, candidates };
}
const c = (layer: number, behaviour: number | null, unchanged: number | null, kl: number | null, induced: number | null): CandidateScore => ({ layer, norm: 1, behaviour, unchanged, kl, induced });

test("selection: a candidate that removes the behaviour by breaking the other set is rejected, whatever its score", () => {
  const s = scores([c(0, null, null, null, null), c(1, 0.0, 0.1, 0.02, 0.9), c(2, 0.05, 0.97, 0.01, 0.8), c(3, 0.2, 0.99, 0.5, 0.9), c(4, 0.03, 0.95, 0.01, 0.2)]);
  const selection = selectDirection({ scores: s, numLayers: 10 });
  // Layer 4 has the better behaviour but induces too little (< 0.1 + 0.5 · 0.8 = 0.5); layer 1 breaks the model.
  assert.equal(selection.layer, 2);
  assert.deepEqual(selection.verdicts.map((v) => v.passed), [false, false, true, false, false]);
  assert.match(selection.verdicts[1].reasons[0], /changes 90% of the negative completions \(at most 10% allowed\)/);
  assert.match(selection.verdicts[3].reasons[0], /KL 0.500 > 0.1/);
  assert.match(selection.verdicts[4].reasons[0], /induces too little \(0.20 < 0.50\)/);
  assert.equal(selectDirection({ scores: s, numLayers: 10, criteria: { minUnchanged: 0 } }).layer, 1);
  assert.throws(() => selectDirection({ scores: scores([c(1, 0, 0.1, 0.02, 0.9)]), numLayers: 10 }), /no candidate direction survived.*\n  layer 1: changes 90%/s);
});

test("selection: the induced filter is soft, and ties go to the prior band, then to lower KL — never a wall", () => {
  // Nothing induces: the filter is dropped with a note.
  const none = selectDirection({ scores: scores([c(1, 0.3, 1, 0.01, 0.1), c(2, 0.1, 1, 0.01, 0.1)]), numLayers: 4 });
  assert.equal(none.layer, 2);
  assert.match(none.notes[0], /filter was dropped/);
  // Tied within 0.02: layer 3 (< 0.8 · 4) beats the last index 4; alone, the last index wins.
  assert.equal(selectDirection({ scores: scores([c(3, 0.03, 1, 0.05, 0.9), c(4, 0.02, 1, 0.0, 0.9)]), numLayers: 4 }).layer, 3);
  assert.equal(selectDirection({ scores: scores([c(3, 0.5, 1, 0.05, 0.9), c(4, 0.0, 1, 0.0, 0.9)]), numLayers: 4 }).layer, 4);
});

test("refusal phrases match case-insensitively and with typographic apostrophes", () => {
  assert.equal(isRefusal("SORRY, no."), true);
  assert.equal(isRefusal("I can’t help with that"), true);
  assert.equal(isRefusal("Sure, here is a recipe"), false);
  assert.equal(isRefusal("nope", ["nope"]), true);
});
