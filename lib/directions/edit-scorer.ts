/**
 * The scorer every candidate and search trial is judged by (lib/directions/score-candidates.ts describes the three
 * measures): the unedited model's passes computed once, then per edit a behaviour pass on the positive rows, a
 * damage pass on the negative rows against the unedited model's own completions, and an addition's induced pass,
 * each resuming from cached unedited streams where the edit allows, or run in waves where the model does not fit
 * memory.
 */
import type { ForwardModel } from "../engine/load-forward-model.js";
import type { BehaviourSignature } from "./behaviour-signature.js";
import { completePrompts } from "./complete-prompts.js";
import { defaultMemoryBudget } from "../engine/memory-budget.js";
import { forcedPass, forcedPasses, forcedPassStreams, klFromLogSoftmax, rowStreamBytes, type Edit, type ForcedPass, type ForcedPassParams, type ForcedRow, type KlReference, type RowStreams } from "./forced-scores.js";
import { forwardSettingsOf } from "./mean-difference.js";
import type { CandidateScores, ScoreCandidatesParams } from "./score-candidates.js";
import { damageWalls, type DamageWalls } from "./select-direction.js";
import { mean } from "./statistics.js";

export type ScorerRowSet = "positive" | "negative" | "induced";

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
          klSum += edited.kl ? edited.kl[rows][i] : klFromLogSoftmax(reference.distributions[rows][i], edited.distributions[rows][i], probabilities?.[rows][i]);
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
   * behaviourOf(), damageOf() and inducedBy() of several edits, in order, with the same numbers: `waveSize` edits
   * per pass where the model does not fit memory (a wave: each layer read once for all of them), else one pass each.
   */
  behavioursOf(edits: readonly Edit[]): Promise<number[]>;
  damagesOf(edits: readonly Edit[], walls?: DamageWalls): Promise<{ kl: number; unchanged: number; rows: number }[]>;
  inducedByEach(edits: readonly Edit[]): Promise<number[]>;
  /** Edits one pass carries (1 where the passes run resident: a wave would save no reading there). */
  waveSize: number;
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

/** Most edits one wave carries: past this, the reading a wave saves is a small part of its pass. */
const MAX_WAVE = 16;

/**
 * Edits a pass over these rows carries on a model that does not fit memory: as many as let their own streams and logits
 * (runForward's memory estimate for a wave, taken over all rows as if one batch) stay within a quarter of what the
 * budget leaves beside one layer, at most MAX_WAVE. 1 where the weights fit: resident passes read no layer again.
 */
export function waveSizeFor(model: ForwardModel, rows: readonly ForcedRow[], budgetBytes: number, logitsBudgetFloats = 16_000_000): number {
  if (weightsFit(model, budgetBytes)) return 1;
  const { hiddenSize: d, vocabSize } = model.spec;
  let tokens = 0;
  let positions = 0;
  for (const row of rows) {
    tokens += row.prompt.length + row.continuation.length - 1;
    positions += row.continuation.length;
  }
  const logitsRows = Math.min(positions, Math.max(1, Math.floor(logitsBudgetFloats / vocabSize)));
  const perEdit = 4 * (2 * tokens * d + logitsRows * (vocabSize + d));
  const room = (budgetBytes - Math.max(0, ...model.layerBytes)) / 4;
  return Math.max(1, Math.min(MAX_WAVE, Math.floor(room / perEdit)));
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
  // Greedy decoding is the same token by token whatever the length asked for, so longer completions made earlier
  // give these rows exactly (their first unchangedTokens).
  const given = params.negativeCompletions;
  const completions = given && given.tokens >= unchangedTokens && given.ids.length === params.negative.length
    ? given.ids
    : (await completePrompts({ model, prompts: params.negative, maxNewTokens: unchangedTokens, ...settings })).ids;
  const negativeRows: ForcedRow[] = params.negative.map((prompt, i) => ({ prompt, continuation: completions[i].slice(0, unchangedTokens) }));
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
  // An edited pass of the negative rows takes its KL against the unedited one as it reads its logits (set below).
  let against: KlReference | undefined;
  const klAgainstOf = (set: ScorerRowSet) => (set === "negative" ? against : undefined);
  const run = (set: ScorerRowSet, edit?: Edit, keepDistributions = 0, stopWhen?: ForcedPassParams["stopWhen"]) =>
    forcedPass({ model, rows: rowsOf[set], edit, keepDistributions, klAgainst: klAgainstOf(set), logProbs: keepDistributions === 0, resumeFrom: streams[set], firstBatchRows: firstBatchRows[set], stopWhen, ...settings });
  // Passes go in waves only where they stream their layers (a resident pass reads none again, and a wave would only
  // add its other edits' activations); the size is the smallest any set's rows allow.
  const keepOf = (set: ScorerRowSet) => (set === "negative" ? klTokens : 0);
  const streamsEverywhere = (Object.keys(rowsOf) as ScorerRowSet[]).every((set) =>
    forcedPassStreams({ model, rows: rowsOf[set], edits: 1, keepDistributions: keepOf(set), logProbs: keepOf(set) === 0, firstBatchRows: firstBatchRows[set], ...settings }),
  );
  const waveSize = !streamsEverywhere
    ? 1
    : params.waveSize !== undefined
      ? Math.max(1, Math.floor(params.waveSize))
      : Math.min(...Object.values(rowsOf).map((rows) => waveSizeFor(model, rows, budgetBytes)));
  const behaviourOfPass = (pass: ForcedPass) => mean(signatureProbabilities(pass, params.positive.length, sequences));
  const reference = await baselineRun("negative", klTokens);
  const probabilities = reference.distributions.map((positions) => positions.map(probabilitiesOf));
  against = { distributions: reference.distributions, probabilities };
  const damageTotal = { rows: negativeRows.length, klPositions: reference.distributions.reduce((n, positions) => n + Math.min(klTokens, positions.length), 0) };
  // A set's passes under several edits: waves of waveSize, or one pass each (from the cached streams) where that is 1.
  const runEach = async (set: ScorerRowSet, edits: readonly Edit[], keepDistributions = 0, stopWhen?: ForcedPassParams["stopWhen"]) => {
    const passes: ForcedPass[] = [];
    for (let first = 0; first < edits.length; first += waveSize) {
      const wave = edits.slice(first, first + waveSize);
      const stop = stopWhen && ((pass: ForcedPass, rows: number, e: number) => stopWhen(pass, rows, first + e));
      if (wave.length === 1) passes.push(await run(set, wave[0], keepDistributions, stop && ((pass, rows) => stop(pass, rows, 0))));
      else passes.push(...(await forcedPasses({ model, rows: rowsOf[set], edits: wave, keepDistributions, klAgainst: klAgainstOf(set), logProbs: keepDistributions === 0, firstBatchRows: firstBatchRows[set], stopWhen: stop, ...settings })));
    }
    return passes;
  };
  const damages = async (edits: readonly Edit[], walls?: DamageWalls) => {
    const tallies = edits.map(() => damageTally(reference, klTokens, probabilities));
    const stopWhen = walls && ((pass: ForcedPass, rows: number, e: number) => {
      tallies[e].add(pass, rows);
      return damageFailsWalls(tallies[e].seen(), damageTotal, walls);
    });
    const passes = await runEach("negative", edits, klTokens, stopWhen);
    return passes.map((edited, e) => {
      tallies[e].add(edited, edited.greedyMatches.length);
      return tallies[e].result();
    });
  };
  const damage = async (edit: Edit, walls?: DamageWalls) => (await damages([edit], walls))[0];
  const inducedOfPass = (pass: ForcedPass) => mean(signatureProbabilities(pass, inducedPrompts.length, sequences));
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
    behaviourOf: async (edit) => behaviourOfPass(await run("positive", edit)),
    behavioursOf: async (edits) => (await runEach("positive", edits)).map(behaviourOfPass),
    damagesOf: damages,
    inducedByEach: async (edits) => (await runEach("induced", edits)).map(inducedOfPass),
    waveSize,
    damageOf: damage,
    inducedBy: async (edit) => inducedOfPass(await run("induced", edit)),
  };
}

