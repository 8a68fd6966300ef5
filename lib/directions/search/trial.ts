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
  /** One finite value per objective, in the order of `objectives`; all minimized. */
  values: readonly number[];
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
  values: number[];
  /** violation > 0 means infeasible. */
  violation: number;
  feasible: boolean;
  /** Wall-clock seconds the evaluation took. */
  seconds: number;
  payload?: P;
}
