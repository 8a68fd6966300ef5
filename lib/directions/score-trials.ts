/**
 * Search trials scored through the edit scorer: each point made concrete (search-edit.ts), the damage passes of a
 * wave of points together (one pass over a streamed model's layers for the scorer's wave size), then the behaviour
 * passes of the feasible ones. Damage first: an infeasible trial is never picked and the sampler ranks it by its
 * violation alone, so its behaviour pass would be spent on a number nothing reads.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { DirectionCandidates } from "../direction-files/write-direction-candidates.js";
import type { EditScore, EditScorer } from "./edit-scorer.js";
import { concreteEdit, isNullEdit, type ConcreteEdit, type EditSearchSetup } from "./search-edit.js";
import type { Params } from "./search/search-space.js";
import type { Evaluation } from "./search/trial.js";

/** A trial's scores; `behaviour` null: not measured, the damage having already made the trial infeasible. */
export type TrialScores = Omit<EditScore, "behaviour"> & { behaviour: number | null };

export interface ScoreTrialsParams {
  scorer: EditScorer;
  setup: EditSearchSetup;
  candidates: DirectionCandidates;
  /** The constraint: a trial leaving fewer negative completions unchanged is infeasible by the shortfall. */
  minUnchanged: number;
}

/** concreteEdit's error for a point whose direction does not exist (opposite rows mixed, r ∥ ĥ). */
export function isMissingDirection(error: unknown): boolean {
  return error instanceof AbliterateError && (error.code === ErrorCodes.DIRECTION_DEGENERATE || error.code === ErrorCodes.DIRECTION_NOT_FINITE);
}

/** The point's edit, or its evaluation where there is no edit to score. */
function concreteOrEvaluation(params: ScoreTrialsParams, point: Params): ConcreteEdit | Evaluation<TrialScores> {
  let concrete: ConcreteEdit;
  try {
    concrete = concreteEdit({ point, setup: params.setup, candidates: params.candidates });
  } catch (error) {
    // A point whose direction does not exist (opposite rows mixed) is infeasible, not fatal.
    if (isMissingDirection(error)) return { values: [null, null], violation: 1 };
    throw error;
  }
  // A point whose α are all 0 (every peak ≤ 0, or per-layer peaks only on streams without a direction) is the
  // unedited model: where its behaviour is already below the pick's bar (a model whose distributions are flat where
  // its greedy completions show the signature) it would win at zero damage, and there would be nothing to apply. It
  // is infeasible, like a missing direction.
  if (isNullEdit(concrete.alphas)) return { values: [params.scorer.baseline.positiveBehaviour, 0], violation: 1 };
  return concrete;
}

/** The evaluations of `points`, in order, with the numbers scoring each alone gives. */
export async function scoreTrials(params: ScoreTrialsParams, points: readonly Params[]): Promise<Evaluation<TrialScores>[]> {
  const { scorer, minUnchanged } = params;
  const prepared = points.map((point) => concreteOrEvaluation(params, point));
  const edits = prepared.filter((p): p is ConcreteEdit => "ablation" in p);
  const damages = await scorer.damagesOf(edits.map((concrete) => ({ ablation: concrete.ablation })));
  const violations = damages.map(({ unchanged }) => Math.max(0, minUnchanged - unchanged));
  const feasible = edits.filter((_, i) => !(violations[i] > 0));
  const behaviours = await scorer.behavioursOf(feasible.map((concrete) => ({ ablation: concrete.ablation })));
  return prepared.map((p) => {
    if (!("ablation" in p)) return p;
    const i = edits.indexOf(p);
    const { kl, unchanged } = damages[i];
    const behaviour = violations[i] > 0 ? null : behaviours[feasible.indexOf(p)];
    return { values: [behaviour, kl], violation: violations[i], payload: { behaviour, kl, unchanged } };
  });
}
