/**
 * Choosing one trial of a finished search. Objectives are minimized, objectives[0] is the behaviour score and
 * objectives[1] the damage (trial.ts). Only feasible trials are candidates, except for an explicit trial number.
 *
 * - "min-damage" (the default): the lowest damage among trials with behaviour ≤ maxBehaviour. The behaviour score
 *   is a share in [0, 1] (score-candidates.ts: the mean probability of the learned signature on the positive
 *   prompts), and the default maxBehaviour, 0.05, is the issue's own bar for done: "held-out behaviour ≤ 5 %".
 * - "min-behaviour": the lowest behaviour among trials with damage ≤ maxDamage (default DEFAULT_MAX_KL, 0.1, the
 *   KL the single-layer rule accepts).
 * - "knee": the front point nearest the utopia point (every objective at its best on the front) after scaling each
 *   objective to [0, 1] over the front: a balanced trade-off with no threshold to choose.
 * - "trial": that trial number, feasible or not.
 * When no trial meets a threshold, the result is the trial that comes closest to it (lowest behaviour, or lowest
 * damage), with satisfied: false and a note saying so. Ties go to the other objective, then the lower number.
 */
import { AbliterateError, ErrorCodes } from "../../errors.js";
import { DEFAULT_MAX_KL } from "../select-direction.js";
import { paretoFront } from "./pareto.js";
import { isFeasible, type FeasibleTrial, type Trial } from "./trial.js";

export const DEFAULT_MAX_BEHAVIOUR = 0.05;
export const DEFAULT_MAX_DAMAGE = DEFAULT_MAX_KL;

export type PickPolicy =
  | { kind: "min-damage"; maxBehaviour?: number }
  | { kind: "min-behaviour"; maxDamage?: number }
  | { kind: "knee" }
  | { kind: "trial"; number: number };

export const DEFAULT_PICK_POLICY: PickPolicy = { kind: "min-damage" };

export interface PickResult<P = unknown> {
  /** Undefined only when there is no feasible trial at all. */
  trial?: Trial<P>;
  /** The threshold held (always true for "knee" and "trial" when a trial is returned). */
  satisfied: boolean;
  note: string;
}

const BEHAVIOUR = 0;
const DAMAGE = 1;

function lowest<P>(trials: readonly FeasibleTrial<P>[], first: number, second: number): FeasibleTrial<P> {
  return [...trials].sort((a, b) => a.values[first] - b.values[first] || a.values[second] - b.values[second] || a.number - b.number)[0];
}

function threshold<P>(trials: readonly Trial<P>[], bounded: number, minimized: number, limit: number, names: [string, string]): PickResult<P> {
  const feasible = trials.filter(isFeasible);
  if (feasible.length === 0) return { satisfied: false, note: "no feasible trial" };
  const within = feasible.filter((trial) => trial.values[bounded] <= limit);
  if (within.length > 0) {
    const trial = lowest(within, minimized, bounded);
    return { trial, satisfied: true, note: `trial ${trial.number}: the lowest ${names[1]} with ${names[0]} ≤ ${limit}` };
  }
  const trial = lowest(feasible, bounded, minimized);
  return { trial, satisfied: false, note: `no trial has ${names[0]} ≤ ${limit}; trial ${trial.number} has the lowest ${names[0]} (${trial.values[bounded]})` };
}

export function pick<P>(trials: readonly Trial<P>[], policy: PickPolicy = DEFAULT_PICK_POLICY): PickResult<P> {
  if (trials.length > 0 && trials[0].values.length < 2 && policy.kind !== "trial" && policy.kind !== "knee") {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `the "${policy.kind}" pick needs two objectives (behaviour, damage)`);
  }
  switch (policy.kind) {
    case "min-damage":
      return threshold(trials, BEHAVIOUR, DAMAGE, policy.maxBehaviour ?? DEFAULT_MAX_BEHAVIOUR, ["behaviour", "damage"]);
    case "min-behaviour":
      return threshold(trials, DAMAGE, BEHAVIOUR, policy.maxDamage ?? DEFAULT_MAX_DAMAGE, ["damage", "behaviour"]);
    case "trial": {
      const trial = trials.find((candidate) => candidate.number === policy.number);
      if (!trial) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `there is no trial ${policy.number} (the search has trials 0..${trials.length - 1})`);
      return { trial, satisfied: true, note: `trial ${trial.number}, as asked${trial.feasible ? "" : " (it is infeasible)"}` };
    }
    case "knee": {
      const front = paretoFront(trials);
      if (front.length === 0) return { satisfied: false, note: "no feasible trial" };
      const m = front[0].values.length;
      const low = Array.from({ length: m }, (_, i) => Math.min(...front.map((t) => t.values[i])));
      const high = Array.from({ length: m }, (_, i) => Math.max(...front.map((t) => t.values[i])));
      const distance = (trial: FeasibleTrial<P>) => Math.hypot(...trial.values.map((v, i) => (high[i] > low[i] ? (v - low[i]) / (high[i] - low[i]) : 0)));
      let best = front[0];
      for (const trial of front) if (distance(trial) < distance(best)) best = trial;
      return { trial: best, satisfied: true, note: `trial ${best.number}: the front point nearest the utopia point` };
    }
  }
}
