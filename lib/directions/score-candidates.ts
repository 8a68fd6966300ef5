/**
 * Scores every candidate direction on the validation prompts, with the engine's hooks (Arditi et al. § 3):
 * - refusal score: mean refusal log-odds at the first generated position of the harmful prompts, with the
 *   direction ablated from every residual write (embedding, attention, MLP);
 * - KL: mean KL(unmodified ‖ ablated) of the next-token distribution at the last position of the harmless prompts;
 * - induced refusal: mean refusal log-odds of the harmless prompts with the (unnormalized) direction added to the
 *   residual stream at its own index, at every position (the engine's addition hook).
 */
import type { ForwardModel } from "../engine/load-forward-model.js";
import { runForward } from "../engine/run-forward.js";
import type { ForwardSettings } from "./mean-difference.js";
import { klDivergence, mean, refusalLogOdds } from "./next-token-statistics.js";

export interface CandidateScore {
  /** Layer index of the candidate (row of the `directions` file). */
  layer: number;
  norm: number;
  /** Mean refusal log-odds on harmful prompts with the direction ablated (lower: less refusal). */
  refusalScore: number | null;
  /** Mean KL on harmless prompts, unmodified → ablated. */
  kl: number | null;
  /** Mean refusal log-odds on harmless prompts with the direction added; null for a zero direction. */
  inducedRefusal: number | null;
  /** Why a candidate was not scored (zero norm). */
  note?: string;
}

export interface CandidateScores {
  /** Refusal log-odds of the unmodified model: harmful and harmless validation prompts. */
  baseline: { harmfulRefusal: number; harmlessRefusal: number };
  candidates: CandidateScore[];
}

export interface ScoreCandidatesParams extends ForwardSettings {
  model: ForwardModel;
  directions: Float64Array[];
  layers: number[];
  harmful: number[][];
  harmless: number[][];
  refusalTokenIds: number[];
  onProgress?: (done: number, total: number) => void;
}

/** A direction whose norm is this small against the mean activations is numerical noise, not a candidate. */
const RELATIVE_NORM_FLOOR = 1e-6;

export async function scoreCandidates(params: ScoreCandidatesParams): Promise<CandidateScores> {
  const { model, harmful, harmless } = params;
  const vocab = model.spec.vocabSize;
  const refusal = new Set(params.refusalTokenIds);
  const settings = { mode: params.mode, maxMemoryBytes: params.maxMemoryBytes, threads: params.threads };
  const both = [...harmful, ...harmless];
  const base = await runForward({ model, prompts: both, positions: "none", logits: "last", ...settings });
  const baseLogits = base.logits!;
  const refusalOf = (logits: Float32Array, rows: number[]) => mean(rows.map((row) => refusalLogOdds(logits, row, vocab, refusal)));
  const harmfulRows = harmful.map((_, i) => i);
  const harmlessRows = harmless.map((_, i) => harmful.length + i);
  const baseline = { harmfulRefusal: refusalOf(baseLogits, harmfulRows), harmlessRefusal: refusalOf(baseLogits, harmlessRows) };

  const largestNorm = Math.max(...params.directions.map((row) => Math.hypot(...row)));
  const candidates: CandidateScore[] = [];
  let done = 0;
  for (const layer of params.layers) {
    const direction = params.directions[layer];
    const norm = Math.hypot(...direction);
    if (!(norm > RELATIVE_NORM_FLOOR * largestNorm)) {
      candidates.push({ layer, norm, refusalScore: null, kl: null, inducedRefusal: null, note: "zero direction (the two sets give the same mean here)" });
      params.onProgress?.((done += 1), params.layers.length);
      continue;
    }
    const unit = direction.map((v) => v / norm);
    const ablated = await runForward({ model, prompts: both, positions: "none", logits: "last", ablation: { directions: [unit] }, ...settings });
    const logits = ablated.logits!;
    const refusalScore = refusalOf(logits, harmfulRows);
    const kl = mean(harmlessRows.map((row) => klDivergence(baseLogits, logits, row, vocab)));
    const added = await runForward({ model, prompts: harmless, positions: "none", logits: "last", addition: { vector: direction, point: layer }, ...settings });
    const inducedRefusal = refusalOf(added.logits!, harmless.map((_, i) => i));
    candidates.push({ layer, norm, refusalScore, kl, inducedRefusal });
    params.onProgress?.((done += 1), params.layers.length);
  }
  return { baseline, candidates };
}
