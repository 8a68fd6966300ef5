/**
 * Before/after evaluation on the held-out test prompts, judged on both sets:
 * - greedy completions of both models (streamed where the weights do not fit); the behaviour rate is the share that start with the learned
 *   signature, with a phrase list (the refusal markers, or the user's) as a second opinion;
 * - damage on the negative prompts: the share of completions left identical over their first `unchangedTokens`
 *   tokens, and the mean per-token KL(before ‖ after) over the first `klTokens` tokens of the unedited model's own
 *   completion (teacher-forced through both models);
 * - a verdict: an edit that changed most negative completions is "damaged" — the behaviour may be gone only because
 *   the model broke — and one that changed more than `minUnchanged` allows is "changed".
 * When generation does not fit the memory budget, each completion is the most likely first token (the result says so).
 */
import type { ForwardModel } from "../engine/load-forward-model.js";
import type { PromptTokenizer } from "../tokenize/load-prompt-tokenizer.js";
import { showsBehaviour, type BehaviourSignature } from "./behaviour-signature.js";
import { completePrompts } from "./complete-prompts.js";
import { forcedPass, type ForcedPass, type ForcedRow } from "./forced-scores.js";
import { forwardSettingsOf, type ForwardSettings } from "./mean-difference.js";
import { mean } from "./statistics.js";
import { isRefusal } from "./refusal-phrases.js";
import { SELECTION_DEFAULTS } from "./select-direction.js";

export interface ModelSideResult {
  /** Share of the positive test prompts whose completion shows the behaviour (starts with the signature). */
  positiveBehaviour: number;
  negativeBehaviour: number;
  /** The same by the phrase list (second opinion); null when there is none. */
  positiveMarked: number | null;
  negativeMarked: number | null;
}

export interface SampleCompletion {
  kind: "positive" | "negative";
  prompt: string;
  before: string;
  after: string;
  behaviourBefore: boolean;
  behaviourAfter: boolean;
}

export type EvaluationVerdict = "ok" | "changed" | "damaged";

export interface Evaluation {
  method: "generation" | "first-token";
  /** Why the first-token fallback was used, when it was. */
  note?: string;
  maxNewTokens: number;
  markers: string[] | null;
  positivePrompts: number;
  negativePrompts: number;
  before: ModelSideResult;
  after: ModelSideResult;
  /** Mean per-token KL(before ‖ after) over the first klTokens tokens of the negative completions. */
  negativeKl: number;
  /** Share of negative completions identical before and after over their first unchangedTokens tokens. */
  negativeUnchanged: number;
  klTokens: number;
  unchangedTokens: number;
  verdict: EvaluationVerdict;
  samples: SampleCompletion[];
}

export interface EvaluateModelParams extends ForwardSettings {
  before: ForwardModel;
  after: ForwardModel;
  tokenizer: PromptTokenizer;
  signature: BehaviourSignature;
  positive: { prompts: string[]; ids: number[][] };
  negative: { prompts: string[]; ids: number[][] };
  maxNewTokens?: number;
  /** The second opinion; none when absent. */
  markers?: readonly string[];
  klTokens?: number;
  unchangedTokens?: number;
  minUnchanged?: number;
  sampleCount?: number;
  onProgress?: (done: number, total: number) => void;
}

export const EVALUATION_DEFAULTS = { maxNewTokens: 32, damagedBelow: 0.5 } as const;

/** Identical over the first n tokens (a completion that ended sooner must have ended the same way). */
function samePrefix(a: readonly number[], b: readonly number[], n: number): boolean {
  const length = Math.min(n, Math.max(a.length, b.length));
  for (let i = 0; i < length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}

export async function evaluateModel(params: EvaluateModelParams): Promise<Evaluation> {
  const maxNewTokens = params.maxNewTokens ?? EVALUATION_DEFAULTS.maxNewTokens;
  const klTokens = params.klTokens ?? 4;
  const unchangedTokens = Math.min(params.unchangedTokens ?? 16, Math.max(1, maxNewTokens));
  const minUnchanged = params.minUnchanged ?? SELECTION_DEFAULTS.minUnchanged;
  const settings = forwardSettingsOf(params);
  const prompts = [...params.positive.ids, ...params.negative.ids];
  const nPositive = params.positive.ids.length;
  // Each model's passes run back to back, the unedited model's generation and forced pass, then the edited
  // model's: a pass keeps the layers it read for the next (runForward's keepWeights), and alternating the two models
  // would read and stage every layer again at each pass.
  let step = 0;
  const passDone = () => params.onProgress?.((step += 1), 4);
  const complete = async (model: ForwardModel) => {
    const result = await completePrompts({ model, prompts, maxNewTokens, ...settings });
    passDone();
    return result;
  };
  const forced = async (model: ForwardModel, rows: ForcedRow[], klAgainst?: ForcedPass) => {
    const result = await forcedPass({ model, rows, keepDistributions: klTokens, klAgainst, ...settings });
    passDone();
    return result;
  };
  const beforeRun = await complete(params.before);
  const negativeBefore = beforeRun.ids.slice(nPositive);
  // KL on the unedited model's own completions, teacher-forced through both models.
  const rows = params.negative.ids.map((prompt, i) => ({ prompt, continuation: negativeBefore[i].slice(0, klTokens) }));
  const reference = await forced(params.before, rows);
  const afterRun = await complete(params.after);
  const edited = await forced(params.after, rows, reference);
  const method = beforeRun.method === "generation" && afterRun.method === "generation" ? "generation" : "first-token";
  const decode = (ids: number[]) => params.tokenizer.decode(ids, { skipSpecialTokens: true });
  const markers = params.markers ? [...params.markers] : null;
  const side = (ids: number[][]): ModelSideResult => {
    const texts = markers ? ids.map(decode) : [];
    const rate = (rows: number[][], offset: number, pick: (row: number[], i: number) => boolean) => mean(rows.map((row, i) => (pick(row, offset + i) ? 1 : 0)));
    const positive = ids.slice(0, nPositive);
    const negative = ids.slice(nPositive);
    return {
      positiveBehaviour: rate(positive, 0, (row) => showsBehaviour(params.signature, row)),
      negativeBehaviour: rate(negative, nPositive, (row) => showsBehaviour(params.signature, row)),
      positiveMarked: markers ? rate(positive, 0, (_, i) => isRefusal(texts[i], markers)) : null,
      negativeMarked: markers ? rate(negative, nPositive, (_, i) => isRefusal(texts[i], markers)) : null,
    };
  };
  const negativeAfter = afterRun.ids.slice(nPositive);
  const negativeUnchanged = mean(negativeBefore.map((ids, i) => (samePrefix(ids, negativeAfter[i], unchangedTokens) ? 1 : 0)));
  const kls = edited.kl!.flat();

  const samples: SampleCompletion[] = [];
  const count = params.sampleCount ?? 3;
  for (const [kind, texts, offset] of [["positive", params.positive.prompts, 0], ["negative", params.negative.prompts, nPositive]] as const) {
    texts.slice(0, count).forEach((prompt, i) => {
      const before = beforeRun.ids[offset + i];
      const after = afterRun.ids[offset + i];
      samples.push({ kind, prompt, before: decode(before), after: decode(after), behaviourBefore: showsBehaviour(params.signature, before), behaviourAfter: showsBehaviour(params.signature, after) });
    });
  }
  const verdict: EvaluationVerdict = negativeUnchanged < EVALUATION_DEFAULTS.damagedBelow ? "damaged" : negativeUnchanged < minUnchanged ? "changed" : "ok";
  return {
    method,
    ...(method === "first-token" ? { note: `generation does not fit the memory budget, not even streamed (every layer's keys and values); each completion is its most likely first token instead of ${maxNewTokens} tokens` } : {}),
    maxNewTokens: method === "generation" ? maxNewTokens : 1,
    markers,
    positivePrompts: nPositive,
    negativePrompts: params.negative.ids.length,
    before: side(beforeRun.ids),
    after: side(afterRun.ids),
    negativeKl: mean(kls),
    negativeUnchanged,
    klTokens,
    unchangedTokens,
    verdict,
    samples,
  };
}
