/**
 * What the search records. Every objective is minimized. By convention objectives[0] is the behaviour score (the
 * learned signature on validation positives; lower = less of the behaviour left) and objectives[1] the damage (KL
 * on validation negatives); the pick policies (pick-trial.ts) rely on that order, the sampler does not.
 */
import type { Params } from "./search-space.js";

export interface Objective {
  /** A short stable name ("behaviour", "damage"). */
  name: string;
  /** What is measured and how (prompt set, token count, ...): part of the store key, so a changed measure starts afresh. */
  definition?: string;
}

/** What `evaluate` returns for one point. */
export interface Evaluation<P = unknown> {
  /**
   * One finite value per objective, in the order of `objectives`; all minimized. An infeasible trial (violation > 0)
   * may leave any of them null, not measured: the sampler ranks infeasible trials by their violation alone, and none
   * is ever on the front nor picked, so a caller need not pay for a measurement nothing reads.
   */
  values: readonly (number | null)[];
  /**
   * How far the trial breaks the constraints (e.g. damage above the cap: damage − cap); 0 or absent when feasible.
   * Infeasible trials stay in the history, inform the sampler (as optuna's constrained TPE does), and are never on
   * the Pareto front nor picked.
   */
  violation?: number;
  /** Anything the caller wants kept with the trial (per-prompt scores, the α table); stored as JSON. */
  payload?: P;
}

export interface Trial<P = unknown> {
  /** 0-based, in the order trials finished; equal to the trial's line in the store minus the header. */
  number: number;
  params: Params;
  /** Finite numbers on a feasible trial; an infeasible one may hold null for what was not measured. */
  values: (number | null)[];
  /** violation > 0 means infeasible. */
  violation: number;
  feasible: boolean;
  /** Wall-clock seconds the evaluation took. */
  seconds: number;
  payload?: P;
}

/** A feasible trial: every value measured. */
export type FeasibleTrial<P = unknown> = Omit<Trial<P>, "values" | "feasible"> & { values: number[]; feasible: true };

export function isFeasible<P>(trial: Trial<P>): trial is FeasibleTrial<P> {
  return trial.feasible;
}

/** A trial's value for display: "not measured" where an infeasible trial left it null. */
export function formatValue(value: number | null, digits: number): string {
  return value === null ? "not measured" : value.toFixed(digits);
}
