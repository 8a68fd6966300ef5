/**
 * Stage 5, evaluation: the unedited model and the edited one (loaded from the folder surgery wrote, before or after
 * its rename) on the held-out test prompts, before and after (lib/directions/evaluate-model.ts). The key covers the
 * surgery's own key, so a different edit is never answered with another edit's figures.
 */
import { evaluateModel, type Evaluation } from "../directions/evaluate-model.js";
import { loadForwardModel } from "../engine/load-forward-model.js";
import type { PipelineEvent } from "./events.js";
import { withStageProgress } from "./forward-events.js";
import type { PipelineContext } from "./pipeline-context.js";
import type { PromptsArtifact } from "./prompts-stage.js";
import type { SelectionArtifact } from "./selection-stage.js";
import { stageKey } from "./stage-store.js";

export interface EvaluationArtifact {
  key: string;
  evaluation: Evaluation;
}

const ARTIFACT = "evaluation.json";

export function evaluationKey(ctx: PipelineContext, prompts: PromptsArtifact, selection: SelectionArtifact, surgeryKey: string): string {
  const { options } = ctx;
  return stageKey({ stage: "evaluation", prompts: prompts.key, selection: selection.key, surgery: surgeryKey, encoding: ctx.encodingKey(), n: options.maxNewTokens ?? null, markers: options.refusalMarkers ?? null });
}

export async function* evaluationStage(ctx: PipelineContext, params: { prompts: PromptsArtifact; selection: SelectionArtifact; editedDir: string; surgeryKey: string }): AsyncGenerator<PipelineEvent, EvaluationArtifact> {
  const { options, store } = ctx;
  const { prompts, selection } = params;
  const key = evaluationKey(ctx, prompts, selection, params.surgeryKey);
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
      harmful: { prompts: prompts.splits.positive.test, ids: prompts.splits.positive.test.map(encode) },
      harmless: { prompts: prompts.splits.negative.test, ids: prompts.splits.negative.test.map(encode) },
      refusalTokenIds: selection.refusalTokens.ids,
      maxNewTokens: options.maxNewTokens,
      markers: options.refusalMarkers,
      ...options.forward,
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
