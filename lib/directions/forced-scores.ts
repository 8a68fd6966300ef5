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
import { runForward, type ForwardAblation, type ForwardAddition } from "../engine/run-forward.js";
import type { ForwardSettings } from "./mean-difference.js";

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
  logitsBudgetFloats?: number;
}

export interface ForcedPass {
  /** Per row, log p(continuation[i] | prompt, continuation[<i]). */
  logProbs: number[][];
  /** Per row, whether the argmax at position i is continuation[i]. */
  greedyMatches: boolean[][];
  /** Per row, the log-softmax at the first keepDistributions positions. */
  distributions: Float32Array[][];
}

/** log Σ exp over one row of logits, and the row's argmax, in one sweep each. */
function rowStatistics(logits: Float32Array, start: number, vocab: number): { logZ: number; argmax: number } {
  let argmax = 0;
  for (let i = 1; i < vocab; i += 1) if (logits[start + i] > logits[start + argmax]) argmax = i;
  const max = logits[start + argmax];
  let sum = 0;
  for (let i = 0; i < vocab; i += 1) sum += Math.exp(logits[start + i] - max);
  return { logZ: max + Math.log(sum), argmax };
}

export async function forcedPass(params: ForcedPassParams): Promise<ForcedPass> {
  const { model, rows } = params;
  const vocab = model.spec.vocabSize;
  const keep = params.keepDistributions ?? 0;
  const budget = params.logitsBudgetFloats ?? 16_000_000;
  const result: ForcedPass = { logProbs: [], greedyMatches: [], distributions: [] };
  let start = 0;
  while (start < rows.length) {
    let end = start;
    let positions = 0;
    while (end < rows.length && (end === start || (positions + rows[end].continuation.length) * vocab <= budget)) {
      positions += rows[end].continuation.length;
      end += 1;
    }
    const batch = rows.slice(start, end);
    // The prompt plus all continuation tokens but the last; the last m positions predict the m continuation tokens.
    const inputs = batch.map((row) => [...row.prompt, ...row.continuation.slice(0, -1)]);
    const output = await runForward({
      model,
      prompts: inputs,
      positions: "none",
      logits: { last: batch.map((row) => row.continuation.length) },
      ablation: params.edit?.ablation,
      addition: params.edit?.addition,
      mode: params.mode,
      maxMemoryBytes: params.maxMemoryBytes,
      threads: params.threads,
    });
    const logits = output.logits!;
    let position = 0;
    for (const row of batch) {
      const logProbs: number[] = [];
      const matches: boolean[] = [];
      const distributions: Float32Array[] = [];
      row.continuation.forEach((token, i) => {
        const offset = (position + i) * vocab;
        const { logZ, argmax } = rowStatistics(logits, offset, vocab);
        logProbs.push(logits[offset + token] - logZ);
        matches.push(argmax === token);
        if (i < keep) distributions.push(Float32Array.from(logits.subarray(offset, offset + vocab), (v) => v - logZ));
      });
      position += row.continuation.length;
      result.logProbs.push(logProbs);
      result.greedyMatches.push(matches);
      result.distributions.push(distributions);
    }
    start = end;
  }
  return result;
}

/** KL(P ‖ Q) of two log-softmax distributions (P: the unedited model), in fp64. */
export function klFromLogSoftmax(reference: Float32Array, edited: Float32Array): number {
  let kl = 0;
  for (let i = 0; i < reference.length; i += 1) {
    const p = Math.exp(reference[i]);
    if (p > 0) kl += p * (reference[i] - edited[i]);
  }
  return Math.max(0, kl);
}
