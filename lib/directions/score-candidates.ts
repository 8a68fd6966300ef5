/**
 * Scores every candidate direction on the validation prompts through the engine's hooks, by what it does to the
 * model's own behaviour (lib/directions/behaviour-signature.ts) and to the other set:
 * - behaviour: the mean probability, over the positive prompts, that the edited model's completion starts with the
 *   learned signature (teacher-forced, one pass per prompt and sequence), with the direction ablated from every
 *   residual write;
 * - damage: on the negative prompts, teacher-forced on the unedited model's own greedy completion, the mean per-token
 *   KL(unedited ‖ ablated) over its first `klTokens` tokens, and the share of completions the ablation leaves
 *   identical over their first `unchangedTokens` tokens (identical at every position under teacher forcing means
 *   greedy decoding reproduces it exactly);
 * - induced: the signature's mean probability on negative prompts with the (unnormalized) direction added to the
 *   residual stream at its own index (the engine's addition hook), which should move them towards the behaviour.
 */
import type { ForwardModel } from "../engine/load-forward-model.js";
import { createEditScorer, type ScorerRowSet } from "./edit-scorer.js";
import type { ForwardSettings } from "./mean-difference.js";
import type { BehaviourSignature } from "./behaviour-signature.js";
import { candidateFilters, damageWalls, SELECTION_DEFAULTS, type SelectionCriteria } from "./select-direction.js";

export interface CandidateScore {
  /** Layer index of the candidate (row of the `directions` file). */
  layer: number;
  norm: number;
  /** Mean probability of the signature on the positive prompts with the direction ablated (lower: less behaviour). */
  behaviour: number | null;
  /** Mean per-token KL on the negative prompts' own completions, unedited → ablated. */
  kl: number | null;
  /** Share of negative completions left identical by the ablation. */
  unchanged: number | null;
  /** Mean probability of the signature on negative prompts with the direction added; null for a zero direction. */
  induced: number | null;
  /**
   * Negative completions the damage was measured on, when the pass stopped before the rest because these already fail
   * a wall (`kl` and `unchanged` are then theirs alone); absent: all of them.
   */
  damageRows?: number;
  /** Why a candidate was not scored, or not wholly (zero norm, dominated, its damage fails the walls). */
  note?: string;
}

export interface DamageSettings {
  /** Tokens of each negative completion the KL is averaged over (default 4). */
  klTokens?: number;
  /** Tokens of each negative completion that must stay identical for it to count as unchanged (default 16). */
  unchangedTokens?: number;
}

/** Greedy completions of a prompt set: per prompt its ids (EOS, when met, last), each generated up to `tokens`. */
export interface NegativeCompletions {
  ids: number[][];
  tokens: number;
}

export interface CandidateScores {
  /** The unedited model: signature probability on both sets, and the teacher-forced reproduction of its completions. */
  baseline: { positiveBehaviour: number; negativeBehaviour: number; unchanged: number };
  settings: Required<DamageSettings> & { inducedPrompts: number };
  candidates: CandidateScore[];
}

export interface ScoreCandidatesParams extends ForwardSettings, DamageSettings {
  model: ForwardModel;
  directions: Float64Array[];
  layers: number[];
  positive: number[][];
  negative: number[][];
  signature: BehaviourSignature;
  /**
   * The unedited model's greedy completions of the negative prompts, made earlier in this arithmetic (the pipeline's
   * signature pass makes them beside its own): the scorer reads them instead of generating them again, where they
   * are at least unchangedTokens long. On a model that streams, each generation reads every layer once per token.
   */
  negativeCompletions?: NegativeCompletions;
  /** Negative prompts the addition is scored on (default 16). */
  inducedPrompts?: number;
  /** Directions already removed (a subspace's earlier members), ablated together with each candidate. */
  fixedDirections?: readonly Float64Array[];
  /** Norm below which a candidate is noise; default 1e-6 of the largest candidate's. */
  normFloor?: number;
  /**
   * With the selection's criteria: score every candidate's behaviour first, then the damage and induced passes in
   * order of behaviour, and stop once no remaining candidate can be selected (its behaviour is above the tie window
   * of one that passed every filter). A candidate's damage pass also stops once its first rows fail a wall whatever
   * the rest do, and its addition is then not scored. The selection is the same as with everything scored; skipped
   * candidates say so.
   */
  skipDominated?: SelectionCriteria;
  /** With skipDominated: stop damage passes that fail a wall early, as above (default true; false scores them whole). */
  stopFailedDamage?: boolean;
  /**
   * Row sets whose unedited residual streams the scorer keeps (captured during its baseline passes), so an edit that
   * leaves the layers below l alone resumes at l (resumableLayer()); default: the induced rows, then the positive,
   * then the negative ones, each while it fits a quarter of the memory the weights leave in the budget. [] turns
   * the cache off.
   */
  cacheStreams?: readonly ScorerRowSet[];
  /**
   * Edits per pass where the scorer's passes stream their layers (the model does not fit the budget; default:
   * waveSizeFor() of each row set, the smallest); 1 runs one edit a pass. Ignored where the passes run resident.
   */
  waveSize?: number;
  onProgress?: (done: number, total: number) => void;
}


/** A direction whose norm is this small against the largest candidate's is numerical noise, not a candidate. */
const RELATIVE_NORM_FLOOR = 1e-6;

export async function scoreCandidates(params: ScoreCandidatesParams): Promise<CandidateScores> {
  const scorer = await createEditScorer(params);
  const largestNorm = Math.max(...params.directions.map((row) => Math.hypot(...row)));
  const floor = params.normFloor ?? RELATIVE_NORM_FLOOR * largestNorm;
  const fixed = params.fixedDirections ?? [];
  const total = params.layers.length;
  let done = 0;
  const tick = () => params.onProgress?.((done += 1), total);
  const ablationOf = (layer: number) => {
    const direction = params.directions[layer];
    const norm = Math.hypot(...direction);
    return { ablation: { directions: [...fixed, direction.map((v) => v / norm)] } };
  };
  const candidates: CandidateScore[] = params.layers.map((layer) => {
    const norm = Math.hypot(...params.directions[layer]);
    if (norm > floor) return { layer, norm, behaviour: null, kl: null, unchanged: null, induced: null };
    const note = fixed.length ? "nothing left here once the earlier directions are removed" : "zero direction (the two sets give the same mean here)";
    return { layer, norm, behaviour: null, kl: null, unchanged: null, induced: null, note };
  });
  const scorable = candidates.filter((c) => c.note === undefined);
  // With the selection's walls, a candidate whose damage already fails one is out: its damage pass stops once that is
  // certain, and its addition is not scored (no filter it could pass would bring it back).
  const early = params.stopFailedDamage !== false;
  const limits = params.skipDominated && early ? damageWalls(params.skipDominated) : undefined;
  const filters = params.skipDominated && candidateFilters(params.skipDominated, scorer.baseline);
  // A wave of candidates' damage passes (one pass per candidate where the scorer's waveSize is 1), then the
  // additions of those whose damage passes the walls.
  const finish = async (wave: CandidateScore[]) => {
    const damage = await scorer.damagesOf(wave.map((c) => ablationOf(c.layer)), limits);
    const scored: CandidateScore[] = [];
    wave.forEach((c, i) => {
      c.kl = damage[i].kl;
      c.unchanged = damage[i].unchanged;
      if (damage[i].rows < params.negative.length) c.damageRows = damage[i].rows;
      if (filters && early && filters.walls(c).length > 0) c.note = "addition not scored: the ablation fails the damage walls";
      else scored.push(c);
    });
    const induced = await scorer.inducedByEach(scored.map((c) => ({ addition: { vector: params.directions[c.layer], point: c.layer } })));
    scored.forEach((c, i) => (c.induced = induced[i]));
  };
  for (const c of candidates) if (c.note !== undefined) tick();
  // Every candidate's behaviour first (in waves where the model does not fit memory: scorer.behavioursOf).
  const behaviours = await scorer.behavioursOf(scorable.map((c) => ablationOf(c.layer)));
  scorable.forEach((c, i) => (c.behaviour = behaviours[i]));
  if (!params.skipDominated) {
    for (const c of scorable) {
      await finish([c]);
      tick();
    }
    return { baseline: scorer.baseline, settings: scorer.settings, candidates };
  }
  // Then the rest in order of behaviour until nothing left can win.
  const { walls, induces } = filters!;
  const tieTolerance = params.skipDominated.tieTolerance ?? SELECTION_DEFAULTS.tieTolerance;
  let winner: number | undefined;
  const dominated = (c: CandidateScore) => winner !== undefined && c.behaviour! > winner + tieTolerance;
  const skip = (c: CandidateScore) => {
    c.note = `not scored further: its behaviour (${c.behaviour!.toFixed(3)}) is above the tie window of a candidate that passed every filter (${winner!.toFixed(3)})`;
  };
  const sorted = [...scorable].sort((a, b) => a.behaviour! - b.behaviour! || a.layer - b.layer);
  for (let next = 0; next < sorted.length; ) {
    // The next candidates still in the running, a wave of them where the model does not fit memory (one otherwise).
    const wave: CandidateScore[] = [];
    while (next < sorted.length && wave.length < scorer.waveSize) {
      const c = sorted[next++];
      if (dominated(c)) {
        skip(c);
        tick();
      } else wave.push(c);
    }
    if (wave.length > 0) await finish(wave);
    for (const c of wave) {
      // A winner found earlier in this wave: what a later candidate it dominates got is dropped, as if never run.
      if (dominated(c)) {
        Object.assign(c, { kl: null, unchanged: null, induced: null });
        delete c.damageRows;
        skip(c);
      }
      tick();
      if (winner === undefined && walls(c).length === 0 && induces(c)) winner = c.behaviour!;
    }
  }
  return { baseline: scorer.baseline, settings: scorer.settings, candidates };
}
