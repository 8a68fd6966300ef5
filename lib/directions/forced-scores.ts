/**
 * Teacher forcing: each row is a prompt with a continuation appended, run once through the engine (optionally under
 * an edit: the ablation or addition hook), reading the logits at the positions that predict each continuation
 * token. From them:
 * - the log-probability of every continuation token (a signature sequence's likelihood is their sum);
 * - whether the greedy choice at each position is the continuation token (a completion is unchanged by an edit
 *   exactly when it is at every position: greedy decoding would then reproduce it token for token);
 * - the full next-token distributions at the first few positions, for KL against the unedited model.
 * Rows run in batches sized so the logits held at once stay near `logitsBudgetFloats`.
 */
import type { ForwardModel } from "../engine/load-forward-model.js";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { resumableLayer } from "../engine/resumable-layer.js";
import { forwardModeOf, runForward, type ForwardAblation, type ForwardAddition, type ForwardRequest } from "../engine/run-forward.js";
import { forwardSettingsOf, type ForwardSettings } from "./mean-difference.js";

export interface ForcedRow {
  prompt: readonly number[];
  /** At least one token. */
  continuation: readonly number[];
}

export interface Edit {
  ablation?: ForwardAblation;
  addition?: ForwardAddition;
}

export interface ForcedPassParams extends ForwardSettings {
  model: ForwardModel;
  rows: readonly ForcedRow[];
  edit?: Edit;
  /** Keep the log-softmax distributions of the first k positions of each row (for KL). */
  keepDistributions?: number;
  /**
   * The unedited pass of these same rows: instead of keeping this pass's distributions, take each kept position's
   * KL(reference ‖ this pass) straight off the returned logits (`kl`; `distributions` stays empty). The numbers are
   * klFromLogSoftmax's on kept distributions, bit for bit, without a vocabulary-sized copy per position: those
   * copies were the largest JS cost of a search on the bench model, and most of its collector's work.
   */
  klAgainst?: KlReference;
  /**
   * Return each continuation token's log-probability (default true). Off for rows that only need the greedy choice
   * (and the kept distributions): only the first keepDistributions positions' are returned. The engine computes every
   * read position's argmax and log-normalizer (runForward's logitsStats) either way.
   */
  logProbs?: boolean;
  logitsBudgetFloats?: number;
  /** Keep the residual stream of every token at every point (an unedited pass, for later passes to resume from). */
  captureStreams?: boolean;
  /**
   * The unedited streams of these same rows (captureStreams of an earlier pass with the same budget): a pass whose
   * edit leaves the layers below l alone starts at layer l from them instead of recomputing those layers.
   */
  resumeFrom?: RowStreams;
  /**
   * The first batch holds at most this many rows, so `stopWhen` sees them before the rest run. A pass that resumes
   * from captured streams must split its rows as the capturing pass did: give both the same value.
   */
  firstBatchRows?: number;
  /**
   * Checked after each batch with the rows scored so far; true ends the pass there (the result holds those rows).
   * Under forcedPasses, per edit (`edit`: its index): an edit that stops runs no further batch, the others go on.
   */
  stopWhen?: (pass: ForcedPass, rows: number, edit: number) => boolean;
}

/** The kept distributions of an unedited pass, and optionally their exp (computed once where many passes compare). */
export interface KlReference {
  distributions: Float32Array[][];
  probabilities?: Float64Array[][];
}

/** Per batch of a forced pass, [tokens, numLayers + 1, hiddenSize]: every token's stream at every point. */
export interface RowStreams {
  batches: Float32Array[];
}

/** Bytes the streams of these rows take: every token of every row at every point, fp32. */
export function rowStreamBytes(rows: readonly ForcedRow[], numLayers: number, hiddenSize: number): number {
  let tokens = 0;
  for (const row of rows) tokens += row.prompt.length + row.continuation.length - 1;
  return tokens * (numLayers + 1) * hiddenSize * 4;
}

/** The stream entering `layer` for every token of one batch, out of its [tokens, points, d] capture. */
function streamAt(batch: Float32Array, points: number, d: number, layer: number): Float32Array {
  const tokens = batch.length / (points * d);
  const out = new Float32Array(tokens * d);
  for (let t = 0; t < tokens; t += 1) out.set(batch.subarray((t * points + layer) * d, (t * points + layer + 1) * d), t * d);
  return out;
}

export interface ForcedPass {
  /** Per row, log p(continuation[i] | prompt, continuation[<i]) (only the kept positions' with logProbs: false). */
  logProbs: number[][];
  /** Per row, whether the argmax at position i is continuation[i]. */
  greedyMatches: boolean[][];
  /** Per row, the log-softmax at the first keepDistributions positions (none with klAgainst). */
  distributions: Float32Array[][];
  /** With klAgainst: per row, KL(reference ‖ this pass) at each of the first keepDistributions positions. */
  kl?: number[][];
  /** With captureStreams. */
  streams?: RowStreams;
  /** The layer the pass started at (absent or 0: the whole stack ran). */
  startLayer?: number;
  /** Tokens the engine ran, past shared inputs and shared prefixes. */
  tokensRun: number;
}

/**
 * The engine's inputs for a batch of rows: the prompt plus all continuation tokens but the last (the last m positions
 * predict the m continuation tokens). Rows with the same input (one-token openings of one prompt, or openings that
 * differ only in their last token) share one run of it and read their logits off it: prefix sharing alone would
 * still run its last token once per row (and `share` false, as with reusePrefix false, runs every row).
 * `firstPosition[r]`: where row r's logits start among the run's.
 */
export function distinctInputs(batch: readonly ForcedRow[], share: boolean): { inputs: number[][]; last: number[]; firstPosition: number[] } {
  const inputs: number[][] = [];
  const last: number[] = [];
  const runOf = new Map<string, number>();
  const runs = batch.map((row) => {
    const input = [...row.prompt, ...row.continuation.slice(0, -1)];
    const key = input.join(",");
    let run = share ? runOf.get(key) : undefined;
    if (run === undefined) {
      run = inputs.push(input) - 1;
      last.push(0);
      runOf.set(key, run);
    }
    last[run] = Math.max(last[run], row.continuation.length);
    return run;
  });
  const runStart: number[] = [];
  let position = 0;
  for (const count of last) {
    runStart.push(position);
    position += count;
  }
  // A row reads the last m of its run's positions, m its own continuation's length.
  const firstPosition = batch.map((row, r) => runStart[runs[r]] + last[runs[r]] - row.continuation.length);
  return { inputs, last, firstPosition };
}

export async function forcedPass(params: ForcedPassParams): Promise<ForcedPass> {
  return (await forcedPasses({ ...params, edits: [params.edit ?? {}] }))[0];
}

/** One batch of a forced pass: its rows [start, end), the distinct inputs the engine runs, and what it reads back. */
interface ForcedBatch {
  start: number;
  end: number;
  inputs: number[][];
  last: number[];
  firstPosition: number[];
  picks: { rows: number[]; tokens: number[] };
  /** Read position → its row among the whole logits rows returned. */
  whole: Map<number, number>;
}

type BatchParams = Pick<ForcedPassParams, "model" | "rows" | "keepDistributions" | "logProbs" | "logitsBudgetFloats" | "firstBatchRows" | "reusePrefix">;

/**
 * The batches of a forced pass, each held to about logitsBudgetFloats of logits (every edit's pass splits its rows
 * the same way: the same rows together give the same numbers; a wave holds one batch's logits per edit, which
 * runForward's memory estimate counts).
 */
function forcedBatches(params: BatchParams): ForcedBatch[] {
  const { rows } = params;
  const vocab = params.model.spec.vocabSize;
  const keep = params.keepDistributions ?? 0;
  const wantLogProbs = params.logProbs ?? true;
  const budget = params.logitsBudgetFloats ?? 16_000_000;
  const batches: ForcedBatch[] = [];
  for (let start = 0; start < rows.length; ) {
    let end = start;
    let positions = 0;
    const rowLimit = start === 0 && params.firstBatchRows !== undefined ? Math.max(1, params.firstBatchRows) : Infinity;
    while (end < rows.length && end - start < rowLimit && (end === start || (positions + rows[end].continuation.length) * vocab <= budget)) {
      positions += rows[end].continuation.length;
      end += 1;
    }
    const batch = rows.slice(start, end);
    const { inputs, last, firstPosition } = distinctInputs(batch, params.reusePrefix !== false);
    // The engine returns each read position's argmax and log-normalizer, the one logit a log-probability needs, and
    // whole rows only where a distribution is kept: every returned byte is external memory the collector counts
    // (39 mark-compacts in a profiled selection on the bench model, most of them asked for by returned logits).
    const picks = { rows: [] as number[], tokens: [] as number[] };
    const whole = new Map<number, number>();
    batch.forEach((row, r) => {
      row.continuation.forEach((token, i) => {
        const at = firstPosition[r] + i;
        if (wantLogProbs || i < keep) {
          picks.rows.push(at);
          picks.tokens.push(token);
        }
        if (i < keep && !whole.has(at)) whole.set(at, whole.size);
      });
    });
    batches.push({ start, end, inputs, last, firstPosition, picks, whole });
    start = end;
  }
  return batches;
}

/** The engine request of one batch under its first edit, the others as a wave. */
function batchRequest(params: BatchParams & ForwardSettings, batch: ForcedBatch, edits: readonly Edit[]): ForwardRequest {
  return {
    model: params.model,
    prompts: batch.inputs,
    positions: "none",
    logits: { last: batch.last },
    logitsStats: true,
    logitsPicks: batch.picks,
    wholeLogitsRows: [...batch.whole.keys()],
    ablation: edits[0].ablation,
    addition: edits[0].addition,
    wave: edits.length > 1 ? edits.slice(1) : undefined,
    ...forwardSettingsOf(params),
  };
}

/**
 * Whether every batch of a forced pass under `edits` edits would stream its layers (runForward's mode), without
 * running it: where they would, a wave reads each layer once for all its edits; where the weights stay in memory it
 * saves nothing and only adds the other edits' activations.
 */
export function forcedPassStreams(params: Omit<ForcedPassParams, "edit"> & { edits: number }): boolean {
  const edits: Edit[] = Array.from({ length: params.edits }, () => ({}));
  return forcedBatches(params).every((batch) => forwardModeOf(batchRequest(params, batch, edits)).mode === "streamed");
}

/**
 * forcedPass() under several edits at once, one result per edit, each equal to its own forcedPass(): every batch
 * runs as one engine pass with the edits still going as a wave (runForward's `wave`), so a model that does not fit
 * memory reads its layers once per batch for all of them instead of once per edit. With more than one edit: no
 * resumeFrom or captureStreams.
 */
export async function forcedPasses(params: Omit<ForcedPassParams, "edit"> & { edits: readonly Edit[] }): Promise<ForcedPass[]> {
  const { model, edits } = params;
  if (edits.length === 0) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "forcedPasses needs at least one edit");
  if (edits.length > 1 && (params.resumeFrom || params.captureStreams)) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "a wave of edits runs from the embedding and keeps no streams: no resumeFrom or captureStreams");
  }
  const vocab = model.spec.vocabSize;
  const keep = params.keepDistributions ?? 0;
  const wantLogProbs = params.logProbs ?? true;
  const { numLayers, hiddenSize } = model.spec;
  const startLayer = params.resumeFrom ? resumableLayer({ ...edits[0], numLayers }) : 0;
  const against = params.klAgainst;
  const results: ForcedPass[] = edits.map(() => ({ logProbs: [], greedyMatches: [], distributions: [], ...(against ? { kl: [] } : {}), startLayer, tokensRun: 0 }));
  const result = results[0];
  if (params.captureStreams) result.streams = { batches: [] };
  const batches = forcedBatches(params);
  if (startLayer > 0 && params.resumeFrom!.batches.length !== batches.length) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `resumeFrom holds ${params.resumeFrom!.batches.length} batches: not the streams of these rows under this logits budget`);
  }
  // The edits whose pass goes on (stopWhen ends an edit's pass after a batch).
  let going = edits.map((_, e) => e);
  for (const [index, batch] of batches.entries()) {
    if (going.length === 0) break;
    const cached = startLayer > 0 ? params.resumeFrom!.batches[index] : undefined;
    const output = await runForward({
      ...batchRequest(params, batch, going.map((e) => edits[e])),
      positions: params.captureStreams ? "all" : "none",
      resumeFrom: cached ? { layer: startLayer, hidden: streamAt(cached, numLayers + 1, hiddenSize, startLayer) } : undefined,
    });
    result.streams?.batches.push(output.hidden);
    const tokensRun = batch.inputs.reduce((n, input) => n + input.length, 0) - output.sharedTokens;
    [output, ...(output.wave ?? [])].forEach((lane, e) => {
      const logits = lane.logits!;
      const argmaxOf = lane.logitsArgmax!;
      const logZOf = lane.logitsLogZ!;
      const picked = lane.pickedLogits!;
      const into = results[going[e]];
      into.tokensRun += tokensRun;
      let pick = 0;
      params.rows.slice(batch.start, batch.end).forEach((row, r) => {
        const position = batch.firstPosition[r];
        const logProbs: number[] = [];
        const matches: boolean[] = [];
        const distributions: Float32Array[] = [];
        const kls: number[] = [];
        row.continuation.forEach((token, i) => {
          matches.push(argmaxOf[position + i] === token);
          if (wantLogProbs || i < keep) {
            const logZ = logZOf[position + i];
            logProbs.push(picked[pick++] - logZ);
            if (i < keep) {
              const offset = batch.whole.get(position + i)! * vocab;
              if (against) {
                const at = batch.start + r;
                kls.push(klFromLogits(against.distributions[at][i], logits, offset, logZ, against.probabilities?.[at][i]));
              } else {
                const distribution = new Float32Array(vocab);
                for (let v = 0; v < vocab; v += 1) distribution[v] = logits[offset + v] - logZ;
                distributions.push(distribution);
              }
            }
          }
        });
        into.logProbs.push(logProbs);
        into.greedyMatches.push(matches);
        into.distributions.push(distributions);
        into.kl?.push(kls);
      });
    });
    const stopWhen = params.stopWhen;
    if (batch.end < params.rows.length && stopWhen) going = going.filter((e) => !stopWhen(results[e], batch.end, e));
  }
  return results;
}

/**
 * KL(P ‖ Q) of two log-softmax distributions (P: the unedited model), in fp64. `probabilities` (exp of the
 * reference) may be given when the same reference is compared many times (every search trial).
 */
export function klFromLogSoftmax(reference: Float32Array, edited: Float32Array, probabilities?: Float64Array): number {
  // Under logZ 0 each entry is already fp32, so klFromLogits reads it unchanged: one sum for both.
  return klFromLogits(reference, edited, 0, 0, probabilities);
}

/**
 * KL(P ‖ Q) where Q is the log-softmax of logits[offset, offset + vocab) under logZ, without building it: each entry
 * is rounded to fp32 as a kept distribution stores it, so the sum is klFromLogSoftmax's on that distribution.
 */
export function klFromLogits(reference: Float32Array, logits: Float32Array, offset: number, logZ: number, probabilities?: Float64Array): number {
  let kl = 0;
  for (let i = 0; i < reference.length; i += 1) {
    const p = probabilities ? probabilities[i] : Math.exp(reference[i]);
    if (p > 0) kl += p * (reference[i] - Math.fround(logits[offset + i] - logZ));
  }
  return Math.max(0, kl);
}
