/**
 * The Pareto front and the pick policies on hand-made trials whose answers are worked out by hand below.
 * Objectives are minimized: values[0] is behaviour, values[1] damage.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { AbliterateError, ErrorCodes } from "../../lib/errors.js";
import { paretoFront } from "../../lib/directions/search/pareto.js";
import { DEFAULT_MAX_BEHAVIOUR, DEFAULT_MAX_DAMAGE, pick } from "../../lib/directions/search/pick-trial.js";
import type { Trial } from "../../lib/directions/search/trial.js";

function trial(number: number, behaviour: number, damage: number, violation = 0): Trial {
  return { number, params: { x: number }, values: [behaviour, damage], violation, feasible: violation === 0, seconds: 1 };
}

//  t0 (0.50, 0.01)  t1 (0.20, 0.03)  t2 (0.04, 0.20)  t3 (0.02, 0.60)  front, in behaviour order t3 t2 t1 t0
//  t4 (0.30, 0.30)  dominated by t1;  t5 (0, 0) infeasible;  t6 = t2's values, a later duplicate
const TRIALS = [trial(0, 0.5, 0.01), trial(1, 0.2, 0.03), trial(2, 0.04, 0.2), trial(3, 0.02, 0.6), trial(4, 0.3, 0.3), trial(5, 0, 0, 1.5), trial(6, 0.04, 0.2)];

test("the front holds the feasible non-dominated trials (duplicates included), sorted by behaviour then damage then number", () => {
  assert.deepEqual(paretoFront(TRIALS).map((t) => t.number), [3, 2, 6, 1, 0]);
  assert.deepEqual(paretoFront([]), []);
  assert.deepEqual(paretoFront([trial(0, 0, 0, 2)]), [], "an infeasible trial is never on the front");
});

test("min-damage: the lowest damage with behaviour ≤ X (default 0.05); below every trial, the lowest behaviour, unsatisfied", () => {
  assert.equal(DEFAULT_MAX_BEHAVIOUR, 0.05);
  const chosen = pick(TRIALS);
  assert.equal(chosen.trial?.number, 2, "t2 and t3 have behaviour ≤ 0.05; t2 has the lower damage, and the lower number of t2 / t6");
  assert.equal(chosen.satisfied, true);
  assert.equal(pick(TRIALS, { kind: "min-damage", maxBehaviour: 0.25 }).trial?.number, 1);
  assert.equal(pick(TRIALS, { kind: "min-damage", maxBehaviour: 1 }).trial?.number, 0);
  const none = pick(TRIALS, { kind: "min-damage", maxBehaviour: 0.01 });
  assert.equal(none.trial?.number, 3);
  assert.equal(none.satisfied, false);
  assert.match(none.note, /no trial has behaviour ≤ 0\.01; trial 3 has the lowest behaviour/);
});

test("min-behaviour: the lowest behaviour with damage ≤ Y (default DEFAULT_MAX_DAMAGE = 0.1)", () => {
  assert.equal(DEFAULT_MAX_DAMAGE, 0.1);
  assert.equal(pick(TRIALS, { kind: "min-behaviour" }).trial?.number, 1);
  assert.equal(pick(TRIALS, { kind: "min-behaviour", maxDamage: 0.02 }).trial?.number, 0);
  assert.equal(pick(TRIALS, { kind: "min-behaviour", maxDamage: 0.25 }).trial?.number, 2);
  const none = pick(TRIALS, { kind: "min-behaviour", maxDamage: 0.001 });
  assert.deepEqual([none.trial?.number, none.satisfied], [0, false]);
});

test("knee: the front point nearest the utopia point once each objective is scaled to [0, 1] over the front", () => {
  // Front ranges: behaviour [0.02, 0.5], damage [0.01, 0.6]. Scaled distances to (0, 0):
  //   t3 (0, 1) → 1;  t2 (0.02/0.48, 0.19/0.59) → 0.3249;  t1 (0.18/0.48, 0.02/0.59) → 0.3765;  t0 (1, 0) → 1.
  assert.equal(pick(TRIALS, { kind: "knee" }).trial?.number, 2);
  // Moving t1 to (0.1, 0.02) brings it to (0.08/0.48, 0.01/0.59) → 0.1675: now the knee.
  const moved = TRIALS.map((t) => (t.number === 1 ? trial(1, 0.1, 0.02) : t));
  assert.equal(pick(moved, { kind: "knee" }).trial?.number, 1);
  assert.equal(pick([trial(9, 0.3, 0.3)], { kind: "knee" }).trial?.number, 9, "a one-point front is its own knee");
});

test("an explicit trial number picks that trial, feasible or not; an unknown one is an INVALID_ARGUMENT", () => {
  const infeasible = pick(TRIALS, { kind: "trial", number: 5 });
  assert.equal(infeasible.trial?.number, 5);
  assert.match(infeasible.note, /infeasible/);
  assert.equal(pick(TRIALS, { kind: "trial", number: 4 }).trial?.number, 4, "a dominated trial can be asked for");
  assert.throws(() => pick(TRIALS, { kind: "trial", number: 99 }), (error: unknown) => error instanceof AbliterateError && error.code === ErrorCodes.INVALID_ARGUMENT && /no trial 99/.test(error.message));
});

test("with no feasible trial every threshold policy says so and returns no trial", () => {
  const infeasible = [trial(0, 0, 0, 1), trial(1, 0.1, 0.1, 2)];
  for (const policy of [{ kind: "min-damage" }, { kind: "min-behaviour" }, { kind: "knee" }] as const) {
    const result = pick(infeasible, policy);
    assert.deepEqual([result.trial, result.satisfied, result.note], [undefined, false, "no feasible trial"]);
  }
});
