/**
 * Picks the candidate direction by what it does, on both sets:
 * - filters (walls): the ablation must leave at least `minUnchanged` of the negative completions identical and keep
 *   their KL ≤ `maxKl` — a candidate that removes the behaviour by breaking the model is rejected, whatever its
 *   behaviour score;
 * - a soft filter: adding the direction should move the negative prompts at least halfway from their own behaviour
 *   rate to the positive prompts' (Arditi et al.'s "induces refusal", generalized); it is dropped, with a note, when no
 *   candidate passes it;
 * - then the lowest behaviour score wins. Scores within `tieTolerance` of the best count as tied, and ties go to the
 *   paper's prior (layers before the last 20 %), then to the lower KL. The prior is never a wall: in small models the
 *   working index can be the last one.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { CandidateScore, CandidateScores } from "./score-candidates.js";

export const SELECTION_DEFAULTS = { maxKl: 0.1, minUnchanged: 0.9, tieTolerance: 0.02, priorFraction: 0.8 } as const;
/** Kept for callers that still import it: the KL wall's default. */
export const DEFAULT_MAX_KL = SELECTION_DEFAULTS.maxKl;

/** Layer indices to score: `a:b` (half-open, over indices 0..L), else every index 0..L. */
export function candidateLayers(params: { numLayers: number; range?: string }): number[] {
  const { numLayers } = params;
  if (params.range === undefined) return Array.from({ length: numLayers + 1 }, (_, i) => i);
  const match = /^\s*(\d*)\s*:\s*(\d*)\s*$/.exec(params.range);
  if (!match) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--candidate-layers must be a half-open range a:b (e.g. 4:20); got "${params.range}"`);
  const start = match[1] === "" ? 0 : Number(match[1]);
  const end = match[2] === "" ? numLayers + 1 : Number(match[2]);
  if (start >= end || end > numLayers + 1) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--candidate-layers ${params.range} is empty or outside the layer indices 0..${numLayers}`);
  }
  return Array.from({ length: end - start }, (_, i) => start + i);
}

export interface CandidateVerdict {
  layer: number;
  passed: boolean;
  /** Why it was filtered out (empty when it passed). */
  reasons: string[];
}

export interface Selection {
  layer: number;
  verdicts: CandidateVerdict[];
  /** What the report should say about the selection itself (e.g. the induced-behaviour filter was dropped). */
  notes: string[];
}

export interface SelectionCriteria {
  maxKl?: number;
  minUnchanged?: number;
  tieTolerance?: number;
}

/** The two damage walls, defaults filled in. */
export interface DamageWalls {
  maxKl: number;
  minUnchanged: number;
}

export function damageWalls(criteria?: SelectionCriteria): DamageWalls {
  return { maxKl: criteria?.maxKl ?? SELECTION_DEFAULTS.maxKl, minUnchanged: criteria?.minUnchanged ?? SELECTION_DEFAULTS.minUnchanged };
}

const pct = (value: number) => `${(100 * value).toFixed(0)}%`;

/** The filters of one candidate: why the walls reject it (empty: it passes them), and whether it induces enough. */
export function candidateFilters(criteria: SelectionCriteria | undefined, baseline: CandidateScores["baseline"]): { walls: (c: CandidateScore) => string[]; induces: (c: CandidateScore) => boolean; inducedBar: number } {
  const { maxKl, minUnchanged } = damageWalls(criteria);
  const inducedBar = baseline.negativeBehaviour + 0.5 * (baseline.positiveBehaviour - baseline.negativeBehaviour);
  const walls = (c: CandidateScore): string[] => {
    if (c.behaviour === null || c.kl === null || c.unchanged === null) return [c.note ?? "not scored"];
    // A damage pass that stopped early measured its first rows only, which already decide the wall.
    const measured = c.damageRows === undefined ? "" : `; measured on the first ${c.damageRows} negative completions, which decide it`;
    const reasons: string[] = [];
    if (!(c.unchanged >= minUnchanged)) reasons.push(`changes ${pct(1 - c.unchanged)} of the negative completions (at most ${pct(1 - minUnchanged)} allowed${measured})`);
    if (!(c.kl <= maxKl)) reasons.push(c.damageRows === undefined ? `KL ${c.kl.toFixed(3)} > ${maxKl}` : `KL ${c.kl.toFixed(3)} > ${maxKl} (${measured.slice(2)})`);
    return reasons;
  };
  return { walls, induces: (c) => c.induced !== null && c.induced >= inducedBar, inducedBar };
}

export function selectDirection(params: { scores: CandidateScores; numLayers: number; criteria?: SelectionCriteria }): Selection {
  const { maxKl, minUnchanged } = damageWalls(params.criteria);
  const tieTolerance = params.criteria?.tieTolerance ?? SELECTION_DEFAULTS.tieTolerance;
  const { baseline, candidates } = params.scores;
  const { walls, induces, inducedBar } = candidateFilters(params.criteria, baseline);
  const requireInduced = candidates.some((c) => walls(c).length === 0 && induces(c));
  const notes: string[] = [];
  if (!requireInduced && candidates.some((c) => walls(c).length === 0)) {
    notes.push(`no candidate that passed the damage filters also induced the behaviour when added (≥ ${inducedBar.toFixed(2)}), so that filter was dropped`);
  }
  const verdicts = candidates.map((c): CandidateVerdict => {
    const reasons = walls(c);
    if (reasons.length === 0 && requireInduced && !induces(c)) reasons.push(c.induced === null ? (c.note ?? "addition not scored") : `adding it induces too little (${c.induced.toFixed(2)} < ${inducedBar.toFixed(2)})`);
    return { layer: c.layer, passed: reasons.length === 0, reasons };
  });
  const survivors = candidates.filter((_, i) => verdicts[i].passed);
  if (survivors.length === 0) {
    const lines = verdicts.map((v) => `  layer ${v.layer}: ${v.reasons.join("; ")}`);
    throw new AbliterateError(
      ErrorCodes.DIRECTION_DEGENERATE,
      `no candidate direction survived the selection filters (negative completions unchanged ≥ ${pct(minUnchanged)}, KL ≤ ${maxKl}):\n${lines.join("\n")}\n` +
        "Try more or better-separated prompts, --candidate-layers, looser --min-unchanged / --max-kl, or pick a layer yourself with --direction-layer.",
    );
  }
  const best = Math.min(...survivors.map((c) => c.behaviour!));
  const prior = (c: CandidateScore) => (c.layer < SELECTION_DEFAULTS.priorFraction * params.numLayers ? 0 : 1);
  const tied = survivors.filter((c) => c.behaviour! <= best + tieTolerance);
  tied.sort((a, b) => prior(a) - prior(b) || a.kl! - b.kl! || a.behaviour! - b.behaviour! || a.layer - b.layer);
  return { layer: tied[0].layer, verdicts, notes };
}
