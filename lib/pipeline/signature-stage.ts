/**
 * Stage 2, signature: greedy completions of the unedited model on the train split of both sets, and the behaviour
 * signature learned from them (lib/directions/behaviour-signature.ts). With --behaviour-markers the user's phrases
 * decide which completions show the behaviour; for refusal contrasts the built-in refusal phrases are a prior that
 * counts only where the model produces them.
 */
import { learnSignature, type BehaviourSignature } from "../directions/behaviour-signature.js";
import { completePrompts } from "../directions/complete-prompts.js";
import type { NegativeCompletions } from "../directions/score-candidates.js";
import { DEFAULT_REFUSAL_MARKERS, isRefusal, REFUSAL_OPENINGS } from "../directions/refusal-phrases.js";
import type { PipelineEvent } from "./events.js";
import { withStageProgress } from "./forward-events.js";
import type { PipelineContext } from "./pipeline-context.js";
import type { PromptsArtifact } from "./prompts-stage.js";
import { stageKey } from "./stage-store.js";

export interface SignatureArtifact {
  key: string;
  signature: BehaviourSignature;
  /** How the completions were made: greedy generation, or the first token only (model too large to generate). */
  method: "generation" | "first-token";
  tokens: number;
  /**
   * The same pass's greedy completions of the negative validation prompts (with method "generation"): every scorer of
   * the run (selection, search, subspace) judges edits against them, and read from here none generates them again.
   * Absent in work dirs from before it.
   */
  negativeValidation?: NegativeCompletions;
}

const ARTIFACT = "signature.json";
export const DEFAULT_SIGNATURE_TOKENS = 24;

/** Phrases that count as evidence for the behaviour where the model produces them: the refusal lists, for refusal. */
export function priorPhrases(ctx: PipelineContext): readonly string[] {
  return ctx.refusalContrast ? [...REFUSAL_OPENINGS, ...DEFAULT_REFUSAL_MARKERS] : [];
}

export async function* signatureStage(ctx: PipelineContext, prompts: PromptsArtifact): AsyncGenerator<PipelineEvent, SignatureArtifact> {
  const { options, store } = ctx;
  const tokens = options.signatureTokens ?? DEFAULT_SIGNATURE_TOKENS;
  const identity = await ctx.identity();
  const settings = ctx.scoringSettings();
  const key = stageKey({ stage: "signature", prompts: prompts.key, encoding: ctx.encodingKey(), model: identity.key, compute: await ctx.computeKey(settings), tokens, markers: options.behaviourMarkers ?? null, priors: priorPhrases(ctx) });
  if (store.reusable("signature", key, ARTIFACT)) {
    yield { type: "stage", stage: "signature", status: "reused" };
    return store.readJson<SignatureArtifact>(ARTIFACT);
  }
  yield { type: "stage", stage: "signature", status: "start" };
  const encode = ctx.encoder();
  const model = await ctx.model();
  const positive = prompts.splits.positive.train.map(encode);
  const negative = prompts.splits.negative.train.map(encode);
  // The scorers' reference completions ride in the same pass: on a model that streams, a generation of its own
  // would read every layer once per token again, and two or three scorers each made one.
  const negativeValidation = prompts.splits.negative.validation.map(encode);
  const completions = yield* withStageProgress("signature", (onProgress) =>
    completePrompts({ model, prompts: [...positive, ...negative, ...negativeValidation], maxNewTokens: tokens, ...settings, onProgress }),
  );
  const decode = (ids: number[]) => ctx.tokenizer.decode(ids, { skipSpecialTokens: true });
  const positiveIds = completions.ids.slice(0, positive.length);
  const negativeIds = completions.ids.slice(positive.length, positive.length + negative.length);
  const markers = options.behaviourMarkers;
  const signature = learnSignature({
    positive: positiveIds,
    negative: negativeIds,
    decode,
    ...(markers ? { labels: { positive: positiveIds.map((ids) => isRefusal(decode(ids), markers)), negative: negativeIds.map((ids) => isRefusal(decode(ids), markers)) } } : {}),
    priorPhrases: priorPhrases(ctx),
    names: ctx.labels,
  });
  const artifact: SignatureArtifact = {
    key,
    signature,
    method: completions.method,
    tokens,
    ...(completions.method === "generation" ? { negativeValidation: { ids: completions.ids.slice(positive.length + negative.length), tokens } } : {}),
  };
  await store.invalidate("signature");
  await store.writeJson(ARTIFACT, artifact);
  await store.markDone("signature", key);
  if (completions.method === "first-token") yield { type: "note", message: "the model does not fit the memory budget for generation: the signature was learned from first tokens only" };
  const shown = signature.sequences.slice(0, 4).map((s) => JSON.stringify(s.text)).join(", ");
  yield {
    type: "stage",
    stage: "signature",
    status: "done",
    detail: `${signature.sequences.length} opening(s) such as ${shown}: ${(100 * signature.coverage).toFixed(0)}% of ${ctx.labels.positive} and ${(100 * signature.leak).toFixed(0)}% of ${ctx.labels.negative} completions`,
  };
  return artifact;
}
