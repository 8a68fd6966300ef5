/**
 * Picks the candidate direction, as Arditi et al. do: keep candidates whose ablation barely changes harmless
 * behaviour (KL ≤ 0.1) and whose addition induces refusal (log-odds > 0), then take the lowest refusal score.
 * No assumption that the best layer is in the middle: small models often have it early.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { CandidateScore } from "./score-candidates.js";

export const DEFAULT_MAX_KL = 0.1;

/**
 * Layer indices to score: `a:b` (half-open, over indices 0..L), else every index below 0.8·L (the last 20% of
 * layers are left out, as in the paper).
 */
export function candidateLayers(params: { numLayers: number; range?: string }): number[] {
  const { numLayers } = params;
  if (params.range === undefined) {
    return Array.from({ length: numLayers + 1 }, (_, i) => i).filter((i) => i < 0.8 * numLayers);
  }
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
  /** What the report should say about the selection itself (e.g. the induced-refusal filter was switched off). */
  notes: string[];
}

export function selectDirection(params: { candidates: CandidateScore[]; maxKl?: number; requireInducedRefusal?: boolean }): Selection {
  const maxKl = params.maxKl ?? DEFAULT_MAX_KL;
  const requireInduced = params.requireInducedRefusal ?? true;
  const notes = requireInduced ? [] : ["the induced-refusal filter was switched off"];
  const verdicts = params.candidates.map((candidate): CandidateVerdict => {
    const reasons: string[] = [];
    if (candidate.refusalScore === null || candidate.kl === null || candidate.inducedRefusal === null) reasons.push(candidate.note ?? "not scored");
    else {
      if (!(candidate.kl <= maxKl)) reasons.push(`KL ${candidate.kl.toFixed(3)} > ${maxKl}`);
      if (requireInduced && !(candidate.inducedRefusal > 0)) reasons.push(`adding it induces no refusal (log-odds ${candidate.inducedRefusal.toFixed(2)} ≤ 0)`);
    }
    return { layer: candidate.layer, passed: reasons.length === 0, reasons };
  });
  const survivors = params.candidates.filter((_, i) => verdicts[i].passed);
  if (survivors.length === 0) {
    const lines = verdicts.map((v) => `  layer ${v.layer}: ${v.reasons.join("; ")}`);
    throw new AbliterateError(
      ErrorCodes.DIRECTION_DEGENERATE,
      `no candidate direction survived the selection filters (KL ≤ ${maxKl}${requireInduced ? ", induced refusal > 0" : ""}):\n${lines.join("\n")}\n` +
        "Try more or better-separated prompts, --candidate-layers, or pick a layer yourself with --direction-layer.",
    );
  }
  const best = survivors.reduce((a, b) => (b.refusalScore! < a.refusalScore! ? b : a));
  return { layer: best.layer, verdicts, notes };
}
