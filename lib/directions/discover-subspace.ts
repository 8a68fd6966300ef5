/**
 * k orthogonal directions for one behaviour (MELBO's orthogonal steering vectors; Wollschläger et al.'s refusal
 * cones): after r1 is selected, each step
 *   1. recomputes the per-layer mean differences on the train prompts with r1..rj ablated by the engine's hook — the
 *      positive prompts weighted by how much they still show the behaviour (their signature probability under that
 *      ablation), so the mean follows what is left instead of cancelling it (with every prompt still showing the
 *      behaviour this is the plain mean);
 *   2. orthogonalizes them against r1..rj;
 *   3. scores and selects r(j+1) exactly as the first direction was (signature, damage walls, induced check),
 *      each candidate ablated together with r1..rj.
 * It stops at the requested rank, when no candidate passes the damage walls, or, with rank "auto", when one more
 * direction would not lower the behaviour by at least `minGain`. Every step records the behaviour and the damage left
 * with r1..rj removed, and what its direction alone induces when added to negative prompts.
 */
import { AbliterateError } from "../errors.js";
import type { ForwardModel } from "../engine/load-forward-model.js";
import type { ForwardCompute } from "../engine/run-forward.js";
import { orthonormalizeRows } from "../direction-files/orthonormalize.js";
import type { BehaviourSignature } from "./behaviour-signature.js";
import { forcedPass } from "./forced-scores.js";
import { contrastMeans, forwardSettingsOf, type ForwardSettings } from "./mean-difference.js";
import { signatureProbabilities, signatureRows } from "./edit-scorer.js";
import { scoreCandidates, type CandidateScore, type DamageSettings, type NegativeCompletions } from "./score-candidates.js";
import { selectDirection, type CandidateVerdict, type SelectionCriteria } from "./select-direction.js";

export interface SubspaceStep {
  /** Layer index the direction's mean difference was measured at. */
  layer: number;
  /** Unit vector, orthogonal to the earlier steps'. */
  direction: Float64Array;
  /** Norm of the (orthogonalized) mean difference it came from. */
  norm: number;
  /** Signature probability on the validation positive prompts with this and every earlier direction ablated. */
  behaviour: number;
  unchanged: number;
  kl: number;
  /** Signature probability on negative prompts with this direction alone added at its layer (the seed's check). */
  induced: number;
  /** Later steps: how every candidate fared. */
  verdicts?: CandidateVerdict[];
  candidates?: CandidateScore[];
}

export interface Subspace {
  requested: number | "auto";
  steps: SubspaceStep[];
  /** Why the discovery stopped where it did. */
  stopped: string;
  baseline: { positiveBehaviour: number; negativeBehaviour: number };
  /** cos(ri, rj): ≈ the identity by construction. */
  cosines: number[][];
}

export interface DiscoverSubspaceParams extends ForwardSettings, DamageSettings {
  model: ForwardModel;
  signature: BehaviourSignature;
  train: { positive: number[][]; negative: number[][] };
  validation: { positive: number[][]; negative: number[][] };
  /** The unedited model's completions of validation.negative (ScoreCandidatesParams.negativeCompletions). */
  negativeCompletions?: NegativeCompletions;
  /** The selected first direction: its layer, the raw mean-difference row, and its scores. */
  first: { layer: number; row: Float64Array; score: CandidateScore };
  baseline: { positiveBehaviour: number; negativeBehaviour: number };
  rank: number | "auto";
  layers: number[];
  positions?: number;
  /** Arithmetic of each further direction's contrast means (default `compute`; the pipeline takes directions in fp32). */
  directionCompute?: ForwardCompute;
  criteria?: SelectionCriteria;
  /** rank "auto": the least drop in behaviour one more direction must bring (default 0.02). */
  minGain?: number;
  /** rank "auto": at most this many directions (default 8). */
  maxRank?: number;
  onProgress?: (step: number, done: number, total: number) => void;
}

export const SUBSPACE_DEFAULTS = { minGain: 0.02, maxRank: 8 } as const;

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i += 1) sum += a[i] * b[i];
  return sum;
}

/** row minus its projection on the orthonormal `basis`, twice (one pass loses orthogonality in fp64 for nearby rows). */
function orthogonalize(row: Float64Array, basis: readonly Float64Array[]): Float64Array {
  const out = Float64Array.from(row);
  for (let pass = 0; pass < 2; pass += 1) {
    for (const b of basis) {
      const c = dot(out, b);
      for (let i = 0; i < out.length; i += 1) out[i] -= c * b[i];
    }
  }
  return out;
}

export async function discoverSubspace(params: DiscoverSubspaceParams): Promise<Subspace> {
  const { model, signature } = params;
  const settings = forwardSettingsOf(params);
  const minGain = params.minGain ?? SUBSPACE_DEFAULTS.minGain;
  const maxRank = params.rank === "auto" ? (params.maxRank ?? SUBSPACE_DEFAULTS.maxRank) : params.rank;
  const firstNorm = Math.hypot(...params.first.row);
  const s = params.first.score;
  const steps: SubspaceStep[] = [
    { layer: params.first.layer, direction: params.first.row.map((v) => v / firstNorm), norm: firstNorm, behaviour: s.behaviour!, unchanged: s.unchanged!, kl: s.kl!, induced: s.induced! },
  ];
  let stopped = `reached the requested rank ${maxRank}`;
  while (steps.length < maxRank) {
    const previous = steps[steps.length - 1];
    if (params.rank === "auto" && previous.behaviour <= minGain) {
      stopped = `the behaviour left with ${steps.length} direction(s) removed (${previous.behaviour.toFixed(3)}) is below what one more could measurably lower (${minGain})`;
      break;
    }
    const basis = steps.map((step) => step.direction);
    const ablation = { directions: basis };
    const step = steps.length + 1;
    // What is left of the behaviour, prompt by prompt, weighs each positive prompt's contribution to the mean.
    const rows = signatureRows(params.train.positive, signature);
    const left = signatureProbabilities(await forcedPass({ model, rows, edit: { ablation }, ...settings }), params.train.positive.length, signature.sequences.length);
    if (!(left.reduce((a, b) => a + b, 0) > 1e-6 * left.length)) {
      stopped = `no train prompt shows the behaviour any more with ${steps.length} direction(s) removed`;
      break;
    }
    const means = await contrastMeans({
      model,
      positive: params.train.positive,
      negative: params.train.negative,
      positiveWeights: left,
      positions: params.positions,
      ablation,
      ...settings,
      compute: params.directionCompute ?? settings.compute,
      onProgress: (done, total) => params.onProgress?.(step, done, total + params.layers.length),
    });
    const candidates = means.directions.map((row) => orthogonalize(row, basis));
    const scores = await scoreCandidates({
      model,
      directions: candidates,
      layers: params.layers,
      positive: params.validation.positive,
      negative: params.validation.negative,
      signature,
      fixedDirections: basis,
      normFloor: 1e-3 * firstNorm,
      klTokens: params.klTokens,
      unchangedTokens: params.unchangedTokens,
      negativeCompletions: params.negativeCompletions,
      ...settings,
      onProgress: (done) => params.onProgress?.(step, params.train.positive.length + params.train.negative.length + done, params.train.positive.length + params.train.negative.length + params.layers.length),
    });
    let chosen;
    try {
      chosen = selectDirection({ scores, numLayers: model.spec.numLayers, criteria: params.criteria });
    } catch (error) {
      if (!(error instanceof AbliterateError)) throw error;
      stopped = `no candidate for direction ${step} passed the damage filters`;
      break;
    }
    const score = scores.candidates.find((c) => c.layer === chosen.layer)!;
    if (params.rank === "auto" && !(previous.behaviour - score.behaviour! >= minGain)) {
      stopped = `direction ${step} would lower the behaviour only from ${previous.behaviour.toFixed(3)} to ${score.behaviour!.toFixed(3)} (less than ${minGain})`;
      break;
    }
    const row = candidates[chosen.layer];
    const norm = Math.hypot(...row);
    const d = row.length;
    const unit = orthonormalizeRows([...basis, row], "subspace").slice(basis.length * d, (basis.length + 1) * d);
    steps.push({ layer: chosen.layer, direction: unit, norm, behaviour: score.behaviour!, unchanged: score.unchanged!, kl: score.kl!, induced: score.induced!, verdicts: chosen.verdicts, candidates: scores.candidates });
  }
  const cosines = steps.map((a) => steps.map((b) => dot(a.direction, b.direction)));
  return { requested: params.rank, steps, stopped, baseline: params.baseline, cosines };
}
