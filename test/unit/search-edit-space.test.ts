/**
 * The abliteration search space: strength profiles against their closed form (peak, linear fall-off, floor, band,
 * off), the interpolated direction at integer and fractional indices, and the declarative space with its decoding.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { AbliterateError, ErrorCodes } from "../../lib/errors.js";
import { decodeEdit, editAlphas, editSearchSpace, EDIT_DEFAULTS } from "../../lib/directions/search/edit-space.js";
import { interpolateDirection } from "../../lib/directions/search/interpolate-direction.js";
import { profileAlphas, type StrengthProfile } from "../../lib/directions/search/profile-alphas.js";
import { defaultParams, validateSpace } from "../../lib/directions/search/search-space.js";
import { suggestTrial } from "../../lib/directions/search/suggest-trial.js";

function assertClose(actual: ArrayLike<number>, expected: readonly number[], tolerance = 1e-15, label = "") {
  assert.equal(actual.length, expected.length, label);
  for (let i = 0; i < expected.length; i += 1) assert.ok(Math.abs(actual[i] - expected[i]) <= tolerance, `${label}[${i}]: ${actual[i]} vs ${expected[i]}`);
}

const profile = (overrides: Partial<StrengthProfile>): StrengthProfile => ({ peak: 1, position: 4, floor: 0.2, distance: 2, outside: "floor", ...overrides });

test("profileAlphas: the peak, a linear fall-off to the floor over the distance, the floor beyond", () => {
  // δ = |l − 4|: α = 1 at δ 0, 1 − 0.8 · ½ = 0.6 at δ 1, the floor 0.2 from δ 2 on.
  assertClose(profileAlphas(profile({}), 10), [0.2, 0.2, 0.2, 0.6, 1, 0.6, 0.2, 0.2, 0.2, 0.2]);
  // A fractional peak at 4.5 over 1.5 layers: δ ½ → 1 − 0.8 / 3, δ 1.5 → the floor 0.2.
  assertClose(profileAlphas(profile({ position: 4.5, distance: 1.5 }), 8), [0.2, 0.2, 0.2, 0.2, 1 - 0.8 / 3, 1 - 0.8 / 3, 0.2, 0.2]);
  // A peak at the last layer falls off on one side only: δ = 5 … 0, a quarter of the gap 1 per layer, the floor at δ ≥ 4.
  assertClose(profileAlphas(profile({ position: 5, peak: 1.5, floor: 0.5, distance: 4 }), 6), [0.5, 0.5, 0.75, 1, 1.25, 1.5]);
});

test("profileAlphas: outside 'zero' is a band (heretic's kernel); floor = peak edits the band uniformly; peak 0 is off", () => {
  assertClose(profileAlphas(profile({ outside: "zero" }), 10), [0, 0, 0.2, 0.6, 1, 0.6, 0.2, 0, 0, 0]);
  assertClose(profileAlphas(profile({ peak: 0.8, floor: 0.8, position: 6, distance: 1, outside: "zero" }), 10), [0, 0, 0, 0, 0, 0.8, 0.8, 0.8, 0, 0]);
  // distance 0: the peak layer only.
  assertClose(profileAlphas(profile({ distance: 0, outside: "zero" }), 6), [0, 0, 0, 0, 1, 0]);
  assertClose(profileAlphas(profile({ distance: 0 }), 6), [0.2, 0.2, 0.2, 0.2, 1, 0.2]);
  for (const outside of ["floor", "zero"] as const) assertClose(profileAlphas(profile({ peak: 0, floor: 0, outside }), 7), [0, 0, 0, 0, 0, 0, 0]);
});

test("interpolateDirection: row i normalized at integer i; the normalized mix of the unit rows in between", () => {
  const rows = [[3, 4, 0], [0, 0, 2], [1, -1, 0]];
  assertClose(interpolateDirection(rows, 0), [0.6, 0.8, 0]);
  assertClose(interpolateDirection(rows, 1), [0, 0, 1]);
  assertClose(interpolateDirection(rows, 2), [Math.SQRT1_2, -Math.SQRT1_2, 0]);
  // i = ½: (½ (0.6, 0.8, 0) + ½ (0, 0, 1)) = (0.3, 0.4, 0.5), of norm √0.5: the raw norms 5 and 2 do not weigh in.
  assertClose(interpolateDirection(rows, 0.5), [0.3 / Math.sqrt(0.5), 0.4 / Math.sqrt(0.5), 0.5 / Math.sqrt(0.5)]);
  // i = 1.25: ¾ (0, 0, 1) + ¼ (1, −1, 0)/√2 = (0.25/√2, −0.25/√2, 0.75), of norm √(0.0625 + 0.5625).
  const n = Math.sqrt(0.0625 + 0.5625);
  assertClose(interpolateDirection(rows, 1.25), [0.25 / Math.SQRT2 / n, -0.25 / Math.SQRT2 / n, 0.75 / n]);
  const unit = interpolateDirection(rows, 0.37);
  assert.ok(Math.abs(Math.hypot(...unit) - 1) < 1e-15);
  // Huge and tiny rows normalize without overflow or underflow.
  assertClose(interpolateDirection([[3e200, 4e200], [3e-200, 4e-200]], 1), [0.6, 0.8]);
  assertClose(interpolateDirection([[3e200, 4e200], [3e-200, 4e-200]], 0), [0.6, 0.8]);
});

test("interpolateDirection refuses what it cannot interpolate, with the matching error code", () => {
  const code = (fn: () => unknown, expected: string) => assert.throws(fn, (error: unknown) => error instanceof AbliterateError && error.code === expected);
  code(() => interpolateDirection([[1, 0], [0, 1]], 1.5), ErrorCodes.INVALID_ARGUMENT);
  code(() => interpolateDirection([[1, 0], [0, 1]], -0.1), ErrorCodes.INVALID_ARGUMENT);
  code(() => interpolateDirection([[1, 0], [0, 1]], NaN), ErrorCodes.INVALID_ARGUMENT);
  code(() => interpolateDirection([[1, 0], [-2, 0]], 0.5), ErrorCodes.DIRECTION_DEGENERATE);
  code(() => interpolateDirection([[0, 0], [1, 0]], 0), ErrorCodes.DIRECTION_DEGENERATE);
  code(() => interpolateDirection([[1, NaN], [1, 0]], 0.5), ErrorCodes.DIRECTION_NOT_FINITE);
  code(() => interpolateDirection([[1, 0], [1, 0, 0]], 0.5), ErrorCodes.DIRECTION_DIMENSION);
});

test("editSearchSpace lists the documented dimensions with their ranges; options narrow, fix or drop them", () => {
  const space = editSearchSpace({ numLayers: 24 });
  validateSpace(space);
  const byName = new Map(space.dimensions.map((d) => [d.name, d]));
  assert.deepEqual([...byName.keys()], [
    "directionIndex", "directionScope", "projection", "normPreserving", "embed.peak",
    "attn.peak", "attn.position", "attn.floor", "attn.distance", "attn.outside",
    "mlp.peak", "mlp.position", "mlp.floor", "mlp.distance", "mlp.outside",
  ]);
  assert.deepEqual(byName.get("directionIndex"), { kind: "float", name: "directionIndex", low: 0, high: 24, log: false, default: 12, doc: "fractional candidate row of the direction" });
  assert.deepEqual(byName.get("attn.position"), { kind: "float", name: "attn.position", low: 0, high: 23, log: false, default: 11.5, doc: "attn: the layer of the peak" });
  const distance = byName.get("mlp.distance");
  assert.ok(distance?.kind === "float" && distance.log && distance.low === 1 && distance.high === 24);
  const embedPeak = byName.get("embed.peak");
  assert.ok(embedPeak?.kind === "float" && embedPeak.low === -0.5 && embedPeak.high === 1.5);
  const scope = byName.get("directionScope");
  assert.ok(scope?.kind === "categorical" && scope.choices.join() === "global,per-layer");

  const narrowed = editSearchSpace({ numLayers: 24, components: ["attn"], scopes: ["global"], normPreserving: [true], directionIndexRange: [8, 16], maxRank: 4, omit: ["attn.outside"] });
  assert.deepEqual(narrowed.dimensions.map((d) => d.name), ["directionIndex", "projection", "attn.peak", "attn.position", "attn.floor", "attn.distance", "rank"]);
  const rank = narrowed.dimensions.at(-1);
  assert.ok(rank?.kind === "int" && rank.low === 1 && rank.high === 4);
  assert.throws(() => editSearchSpace({ numLayers: 0 }), /numLayers/);
});

test("decodeEdit: peaks below 0 are exactly 0 (off), floor = fraction × peak, fixed and left-out dimensions take their values", () => {
  const options = { numLayers: 6 };
  const edit = decodeEdit(
    {
      directionIndex: 2.5, directionScope: "per-layer", projection: "projected", normPreserving: true, "embed.peak": -0.3,
      "attn.peak": 1.2, "attn.position": 3, "attn.floor": 0.5, "attn.distance": 2, "attn.outside": "zero",
      "mlp.peak": -0.1, "mlp.position": 1, "mlp.floor": 1, "mlp.distance": 3, "mlp.outside": "floor",
    },
    options,
  );
  assert.deepEqual(edit.profiles.embed, { peak: 0, position: 0, floor: 0, distance: 0, outside: "floor" });
  assert.deepEqual(edit.profiles.attn, { peak: 1.2, position: 3, floor: 0.6, distance: 2, outside: "zero" });
  assert.equal(edit.profiles.mlp.peak, 0);
  assert.deepEqual([edit.directionIndex, edit.directionScope, edit.projection, edit.normPreserving, edit.rank], [2.5, "per-layer", "projected", true, 1]);
  const alphas = editAlphas(edit, 6);
  assert.equal(alphas.embed, 0);
  assertClose(alphas.attn, [0, 0.6, 0.9, 1.2, 0.9, 0.6]);
  assertClose(alphas.mlp, [0, 0, 0, 0, 0, 0]);

  // The defaults of every dimension: a uniform full-strength edit of every writer (Arditi et al.'s).
  const space = editSearchSpace(options);
  const plain = decodeEdit(defaultParams(space), options);
  const plainAlphas = editAlphas(plain, 6);
  assert.equal(plainAlphas.embed, 1);
  assertClose(plainAlphas.attn, [1, 1, 1, 1, 1, 1]);
  assertClose(plainAlphas.mlp, [1, 1, 1, 1, 1, 1]);
  assert.deepEqual([plain.directionScope, plain.projection, plain.normPreserving], [EDIT_DEFAULTS.directionScope, EDIT_DEFAULTS.projection, EDIT_DEFAULTS.normPreserving]);
  // Fixed by a one-choice option, or left out: the decoded edit still has the value.
  assert.equal(decodeEdit({}, { numLayers: 6, normPreserving: [true] }).normPreserving, true);
  assert.equal(decodeEdit({}, { numLayers: 6, components: ["attn"] }).profiles.mlp.peak, 0, "a component not searched is not edited");
});

test("sampled edits decode to valid profiles: 0 ≤ floor ≤ peak, and some peaks exactly 0", () => {
  const options = { numLayers: 12 };
  const space = editSearchSpace(options);
  let off = 0;
  for (let n = 0; n < 60; n += 1) {
    const edit = decodeEdit(suggestTrial({ space, trials: [], seed: n }), options);
    for (const p of Object.values(edit.profiles)) {
      assert.ok(p.peak >= 0 && p.floor >= 0 && p.floor <= p.peak, JSON.stringify(p));
      if (p.peak === 0) off += 1;
    }
    assert.ok(edit.directionIndex >= 0 && edit.directionIndex <= 12);
  }
  // Prior mass at 0: 0.25 (embed) + 2 × 1/7 (attn, mlp) per trial, ≈ 32 of 180 profiles.
  assert.ok(off >= 15 && off <= 50, `${off} of 180 profiles off`);
});
