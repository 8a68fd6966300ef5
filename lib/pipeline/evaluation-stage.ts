/**
 * Stage 6, evaluation: the unedited model and the edited one (loaded from the folder surgery wrote, before or after
 * its rename) on the held-out test prompts, before and after (lib/directions/evaluate-model.ts). The key covers the
 * surgery's own key, so a different edit is never answered with another edit's figures.
 */
import { evaluateModel, type Evaluation } from "../directions/evaluate-model.js";
import { DEFAULT_REFUSAL_MARKERS } from "../directions/refusal-phrases.js";
import { loadForwardModel } from "../engine/load-forward-model.js";
import type { PipelineEvent } from "./events.js";
import { withStageProgress } from "./forward-events.js";
import type { PipelineContext } from "./pipeline-context.js";
import type { PromptsArtifact } from "./prompts-stage.js";
import type { SelectionArtifact } from "./selection-stage.js";
import type { SignatureArtifact } from "./signature-stage.js";
import { stageKey } from "./stage-store.js";

export interface EvaluationArtifact {
  key: string;
  evaluation: Evaluation;
}

const ARTIFACT = "evaluation.json";

/** The evaluation's second opinion: the user's behaviour markers, else the refusal phrases for a refusal contrast. */
export function secondOpinionMarkers(ctx: PipelineContext): string[] | undefined {
  if (ctx.options.behaviourMarkers) return ctx.options.behaviourMarkers;
  return ctx.refusalContrast ? [...DEFAULT_REFUSAL_MARKERS] : undefined;
}

export function evaluationKey(ctx: PipelineContext, prompts: PromptsArtifact, selection: SelectionArtifact, signature: SignatureArtifact, surgeryKey: string): string {
  const { options } = ctx;
  return stageKey({
    stage: "evaluation",
    prompts: prompts.key,
    selection: selection.key,
    signature: signature.key,
    surgery: surgeryKey,
    encoding: ctx.encodingKey(),
    n: options.maxNewTokens ?? null,
    markers: secondOpinionMarkers(ctx) ?? null,
    minUnchanged: options.minUnchanged ?? null,
  });
}

export async function* evaluationStage(
  ctx: PipelineContext,
  params: { prompts: PromptsArtifact; selection: SelectionArtifact; signature: SignatureArtifact; editedDir: string; surgeryKey: string },
): AsyncGenerator<PipelineEvent, EvaluationArtifact> {
  const { options, store } = ctx;
  const { prompts, selection } = params;
  const key = evaluationKey(ctx, prompts, selection, params.signature, params.surgeryKey);
  if (store.reusable("evaluation", key, ARTIFACT)) {
    yield { type: "stage", stage: "evaluation", status: "reused" };
    return store.readJson<EvaluationArtifact>(ARTIFACT);
  }
  yield { type: "stage", stage: "evaluation", status: "start" };
  const encode = ctx.encoder();
  const before = await ctx.model();
  const after = await loadForwardModel(params.editedDir);
  const evaluation = yield* withStageProgress("evaluation", (onProgress) =>
    evaluateModel({
      before,
      after,
      tokenizer: ctx.tokenizer,
      signature: params.signature.signature,
      positive: { prompts: prompts.splits.positive.test, ids: prompts.splits.positive.test.map(encode) },
      negative: { prompts: prompts.splits.negative.test, ids: prompts.splits.negative.test.map(encode) },
      maxNewTokens: options.maxNewTokens,
      markers: secondOpinionMarkers(ctx),
      minUnchanged: options.minUnchanged,
      ...ctx.scoringSettings(),
      onProgress,
    }),
  );
  const artifact = { key, evaluation };
  await store.invalidate("evaluation");
  await store.writeJson(ARTIFACT, artifact);
  await store.markDone("evaluation", key);
  if (evaluation.note) yield { type: "note", message: evaluation.note };
  yield { type: "stage", stage: "evaluation", status: "done" };
  return artifact;
}
