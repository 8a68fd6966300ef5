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
import type { BehaviourSignature } from "./behaviour-signature.js";
import { completePrompts } from "./complete-prompts.js";
import { defaultMemoryBudget } from "../engine/memory-budget.js";
import { forcedPass, klFromLogSoftmax, rowStreamBytes, type Edit, type ForcedPass, type ForcedPassParams, type ForcedRow, type RowStreams } from "./forced-scores.js";
import { forwardSettingsOf, type ForwardSettings } from "./mean-difference.js";
import { candidateFilters, damageWalls, SELECTION_DEFAULTS, type DamageWalls, type SelectionCriteria } from "./select-direction.js";
import { mean } from "./statistics.js";

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
  onProgress?: (done: number, total: number) => void;
}

export type ScorerRowSet = "positive" | "negative" | "induced";

/** A direction whose norm is this small against the largest candidate's is numerical noise, not a candidate. */
const RELATIVE_NORM_FLOOR = 1e-6;

/** Rows prompt × signature sequence, prompt-major. */
export function signatureRows(prompts: readonly number[][], signature: Pick<BehaviourSignature, "sequences">): ForcedRow[] {
  return prompts.flatMap((prompt) => signature.sequences.map((s) => ({ prompt, continuation: s.tokens })));
}

/** Per prompt, the probability that the completion starts with a signature sequence (they are prefix-free, so the sum). */
export function signatureProbabilities(pass: ForcedPass, prompts: number, sequences: number): number[] {
  return Array.from({ length: prompts }, (_, p) => {
    let sum = 0;
    for (let s = 0; s < sequences; s += 1) sum += Math.exp(pass.logProbs[p * sequences + s].reduce((a, b) => a + b, 0));
    return Math.min(1, sum);
  });
}

/**
 * The damage an edit does on the negative rows, against the unedited pass: mean per-token KL over the first k
 * positions, and the share of rows whose greedy choice is unchanged at every position the unedited model itself
 * reproduces (a near-tie that teacher forcing resolves differently from generation is not counted against the edit).
 * `rows`: how many of the reference's rows the edited pass holds (fewer when it stopped early).
 */
export function damageOf(reference: ForcedPass, edited: ForcedPass, klTokens: number, probabilities?: Float64Array[][]): { kl: number; unchanged: number; rows: number } {
  const tally = damageTally(reference, klTokens, probabilities);
  tally.add(edited, edited.greedyMatches.length);
  return tally.result();
}

/** damageOf() row by row, so a pass that runs in batches can be judged after each. */
function damageTally(reference: ForcedPass, klTokens: number, probabilities?: Float64Array[][]) {
  let rows = 0;
  let unchanged = 0;
  let klSum = 0;
  let klPositions = 0;
  return {
    /** Takes the edited pass's rows up to `upTo` (rows before the last call's are not counted again). */
    add(edited: ForcedPass, upTo: number) {
      for (; rows < upTo; rows += 1) {
        const matches = reference.greedyMatches[rows];
        const k = Math.min(klTokens, reference.distributions[rows].length);
        for (let i = 0; i < k; i += 1) {
          klSum += klFromLogSoftmax(reference.distributions[rows][i], edited.distributions[rows][i], probabilities?.[rows][i]);
          klPositions += 1;
        }
        let same = true;
        for (let i = 0; i < matches.length && matches[i]; i += 1) if (!edited.greedyMatches[rows][i]) same = false;
        if (same) unchanged += 1;
      }
    },
    // The mean as statistics.mean() takes it (a left-to-right sum from 0; NaN for no positions).
    result: () => ({ kl: klSum / klPositions, unchanged: unchanged / rows, rows }),
    seen: () => ({ changed: rows - unchanged, klSum }),
  };
}

/**
 * Whether the damage seen on the first rows fails a wall whatever the remaining rows do: the share unchanged can at
 * best reach (rows − changed) / rows, and the mean KL is at least the KL seen so far over every position (KL ≥ 0).
 * Both are the expressions the walls apply to a whole pass, so a pass cut short by this fails them exactly when the
 * whole pass would have.
 */
export function damageFailsWalls(seen: { changed: number; klSum: number }, total: { rows: number; klPositions: number }, walls: DamageWalls): boolean {
  return !((total.rows - seen.changed) / total.rows >= walls.minUnchanged) || !(seen.klSum / total.klPositions <= walls.maxKl);
}

export interface EditScore {
  /** Mean signature probability on the positive prompts under the edit. */
  behaviour: number;
  /** Mean per-token KL(unedited ‖ edited) on the negative prompts' own completions. */
  kl: number;
  /** Share of negative completions the edit leaves identical. */
  unchanged: number;
}

export interface EditScorer {
  baseline: CandidateScores["baseline"];
  settings: CandidateScores["settings"];
  /** Behaviour and damage of an edit expressed through the engine's hooks (no weights written). */
  score(edit: Edit): Promise<EditScore>;
  /** The behaviour part of score() alone (one pass). */
  behaviourOf(edit: Edit): Promise<number>;
  /**
   * The damage part of score() alone (one pass). With `walls`, the pass may stop once the rows scored fail one
   * whatever the rest do (damageFailsWalls); `rows` then says how many of the negative prompts it measured.
   */
  damageOf(edit: Edit, walls?: DamageWalls): Promise<{ kl: number; unchanged: number; rows: number }>;
  /** The signature's mean probability on the negative prompts under an edit (e.g. the direction added). */
  inducedBy(edit: Edit): Promise<number>;
  /** Bytes of unedited streams kept per row set (absent: not cached). */
  cachedStreamBytes: Partial<Record<ScorerRowSet, number>>;
  /**
   * Seconds the unedited model's pass of each set took, at the scorer's creation: about what an edit's pass of that
   * set costs from the first layer on (the search sizes its trial count with them).
   */
  passSeconds: Record<ScorerRowSet, number>;
}

/** The cache's share of the memory the weights leave in the budget: the passes' own activations need the rest. */
const STREAM_CACHE_SHARE = 0.25;

/** Whether the passes hold every layer's weights at once; a model that does not fit runs layer by layer. */
function weightsFit(model: ForwardModel, budgetBytes: number): boolean {
  return model.totalBytes <= budgetBytes / 2;
}

function streamCacheLimit(model: ForwardModel, budgetBytes: number): number {
  // Streamed, the passes hold about one layer of weights.
  const weights = weightsFit(model, budgetBytes) ? model.totalBytes : Math.max(0, ...model.layerBytes);
  return Math.max(0, budgetBytes - weights) * STREAM_CACHE_SHARE;
}

/**
 * The rows the damage pass scores on their own before the rest: enough that a candidate changing all of them fails
 * the unchanged wall, and at least a quarter, so one that changes half of the completions fails on them too.
 */
function firstDamageRows(rows: number, walls: DamageWalls): number {
  let deciding = 1;
  while (deciding < rows && !damageFailsWalls({ changed: deciding, klSum: 0 }, { rows, klPositions: 1 }, walls)) deciding += 1;
  return Math.max(deciding, Math.ceil(rows / 4));
}

/**
 * exp of each log-probability, in fp64. A plain loop: Float64Array.from(logp, Math.exp) took 835 ms for the 2.4 M
 * entries of 19 rows × 4 positions × 32 000 tokens, the loop 94 ms; with a 150 000-token vocabulary and 64 rows that
 * would be 13 s per scorer.
 */
function probabilitiesOf(logp: Float32Array): Float64Array {
  const out = new Float64Array(logp.length);
  for (let i = 0; i < logp.length; i += 1) out[i] = Math.exp(logp[i]);
  return out;
}

/**
 * The unedited passes every edit is judged against, computed once: the negative prompts' own greedy completions and
 * their teacher-forced distributions, and the signature's probability on both sets. Each score() then costs two
 * teacher-forced passes (positive × signature sequences, and negative × own completion).
 */
export async function createEditScorer(params: Omit<ScoreCandidatesParams, "directions" | "layers" | "onProgress" | "fixedDirections" | "normFloor">): Promise<EditScorer> {
  const { model, signature } = params;
  const klTokens = params.klTokens ?? 4;
  const unchangedTokens = params.unchangedTokens ?? 16;
  const settings = forwardSettingsOf(params);
  const sequences = signature.sequences.length;
  const inducedPrompts = params.negative.slice(0, params.inducedPrompts ?? 16);
  // The unedited model's own completions of the negative prompts are what an edit must leave alone.
  const completions = await completePrompts({ model, prompts: params.negative, maxNewTokens: unchangedTokens, ...settings });
  const negativeRows: ForcedRow[] = params.negative.map((prompt, i) => ({ prompt, continuation: completions.ids[i].slice(0, unchangedTokens) }));
  const positiveRows = signatureRows(params.positive, signature);
  const inducedRows = signatureRows(inducedPrompts, signature);
  // The negative rows need only the greedy choice at each position and the distributions of the first klTokens.
  const rowsOf: Record<ScorerRowSet, ForcedRow[]> = { positive: positiveRows, negative: negativeRows, induced: inducedRows };
  // Which sets keep their unedited streams: in the order asked, each while the whole cache fits its limit.
  const cachedStreamBytes: Partial<Record<ScorerRowSet, number>> = {};
  const budgetBytes = params.maxMemoryBytes ?? defaultMemoryBudget();
  let room = streamCacheLimit(model, budgetBytes);
  for (const set of params.cacheStreams ?? (["induced", "positive", "negative"] as const)) {
    const bytes = rowStreamBytes(rowsOf[set], model.spec.numLayers, model.spec.hiddenSize);
    if (bytes <= room) {
      cachedStreamBytes[set] = bytes;
      room -= bytes;
    }
  }
  const streams: Partial<Record<ScorerRowSet, RowStreams>> = {};
  // With the selection's walls, the damage pass runs its first rows alone: a candidate that breaks the model fails a
  // wall on them and the rest never run. Only where the weights stay in memory: streamed, the split would read every
  // layer once more for each candidate that passes (the logits budget's own batches still let the pass stop early).
  const firstBatchRows: Partial<Record<ScorerRowSet, number>> = {};
  if (params.skipDominated && params.stopFailedDamage !== false && weightsFit(model, budgetBytes)) firstBatchRows.negative = firstDamageRows(negativeRows.length, damageWalls(params.skipDominated));
  // The unedited pass of a set, keeping its streams when that set is cached.
  const passSeconds: Record<ScorerRowSet, number> = { positive: 0, negative: 0, induced: 0 };
  const baselineRun = async (set: ScorerRowSet, keepDistributions = 0) => {
    const began = performance.now();
    const pass = await forcedPass({ model, rows: rowsOf[set], keepDistributions, logProbs: keepDistributions === 0, captureStreams: cachedStreamBytes[set] !== undefined, firstBatchRows: firstBatchRows[set], ...settings });
    if (pass.streams) streams[set] = pass.streams;
    passSeconds[set] = (performance.now() - began) / 1000;
    return pass;
  };
  const run = (set: ScorerRowSet, edit?: Edit, keepDistributions = 0, stopWhen?: ForcedPassParams["stopWhen"]) =>
    forcedPass({ model, rows: rowsOf[set], edit, keepDistributions, logProbs: keepDistributions === 0, resumeFrom: streams[set], firstBatchRows: firstBatchRows[set], stopWhen, ...settings });
  const reference = await baselineRun("negative", klTokens);
  const probabilities = reference.distributions.map((positions) => positions.map(probabilitiesOf));
  const damageTotal = { rows: negativeRows.length, klPositions: reference.distributions.reduce((n, positions) => n + Math.min(klTokens, positions.length), 0) };
  const damage = async (edit: Edit, walls?: DamageWalls) => {
    const tally = damageTally(reference, klTokens, probabilities);
    const stopWhen = walls && ((pass: ForcedPass, rows: number) => {
      tally.add(pass, rows);
      return damageFailsWalls(tally.seen(), damageTotal, walls);
    });
    const edited = await run("negative", edit, klTokens, stopWhen);
    tally.add(edited, edited.greedyMatches.length);
    return tally.result();
  };
  const baseline = {
    positiveBehaviour: mean(signatureProbabilities(await baselineRun("positive"), params.positive.length, sequences)),
    negativeBehaviour: mean(signatureProbabilities(await baselineRun("induced"), inducedPrompts.length, sequences)),
    unchanged: mean(reference.greedyMatches.map((m) => (m.every(Boolean) ? 1 : 0))),
  };
  reference.streams = undefined;
  return {
    baseline,
    cachedStreamBytes,
    passSeconds,
    settings: { klTokens, unchangedTokens, inducedPrompts: inducedPrompts.length },
    score: async (edit) => {
      const behaviour = mean(signatureProbabilities(await run("positive", edit), params.positive.length, sequences));
      const { kl, unchanged } = await damage(edit);
      return { behaviour, kl, unchanged };
    },
    behaviourOf: async (edit) => mean(signatureProbabilities(await run("positive", edit), params.positive.length, sequences)),
    damageOf: damage,
    inducedBy: async (edit) => mean(signatureProbabilities(await run("induced", edit), inducedPrompts.length, sequences)),
  };
}

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
  const finish = async (c: CandidateScore) => {
    const damage = await scorer.damageOf(ablationOf(c.layer), limits);
    c.kl = damage.kl;
    c.unchanged = damage.unchanged;
    if (damage.rows < params.negative.length) c.damageRows = damage.rows;
    if (filters && early && filters.walls(c).length > 0) c.note = "addition not scored: the ablation fails the damage walls";
    else c.induced = await scorer.inducedBy({ addition: { vector: params.directions[c.layer], point: c.layer } });
    tick();
  };
  for (const c of candidates) if (c.note !== undefined) tick();
  if (!params.skipDominated) {
    for (const c of scorable) {
      c.behaviour = await scorer.behaviourOf(ablationOf(c.layer));
      await finish(c);
    }
    return { baseline: scorer.baseline, settings: scorer.settings, candidates };
  }
  // Behaviour first, then the rest in order of behaviour until nothing left can win.
  for (const c of scorable) c.behaviour = await scorer.behaviourOf(ablationOf(c.layer));
  const { walls, induces } = filters!;
  const tieTolerance = params.skipDominated.tieTolerance ?? SELECTION_DEFAULTS.tieTolerance;
  let winner: number | undefined;
  for (const c of [...scorable].sort((a, b) => a.behaviour! - b.behaviour! || a.layer - b.layer)) {
    if (winner !== undefined && c.behaviour! > winner + tieTolerance) {
      c.note = `not scored further: its behaviour (${c.behaviour!.toFixed(3)}) is above the tie window of a candidate that passed every filter (${winner.toFixed(3)})`;
      tick();
      continue;
    }
    await finish(c);
    if (winner === undefined && walls(c).length === 0 && induces(c)) winner = c.behaviour!;
  }
  return { baseline: scorer.baseline, settings: scorer.settings, candidates };
}
