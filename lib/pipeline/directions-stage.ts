/**
 * Stage 3, directions: mean(positive) − mean(negative) of the residual stream at every layer index 0..L on the
 * train prompts, in fp64 (lib/directions/mean-difference.ts), saved as the candidates file directions.safetensors.
 * The key covers the prompts, how they are encoded, and the model's identity (its file digests), so a rerun on
 * edited weights recomputes them.
 */
import { contrastMeans } from "../directions/mean-difference.js";
import { readDirectionCandidates, writeDirectionCandidates, type DirectionCandidates } from "../direction-files/write-direction-candidates.js";
import type { PipelineEvent } from "./events.js";
import { withStageProgress } from "./forward-events.js";
import type { PipelineContext } from "./pipeline-context.js";
import type { PromptsArtifact } from "./prompts-stage.js";
import { stageKey } from "./stage-store.js";

const ARTIFACT = "directions.safetensors";

export async function* directionsStage(ctx: PipelineContext, prompts: PromptsArtifact): AsyncGenerator<PipelineEvent, DirectionCandidates> {
  const { options, store } = ctx;
  const identity = await ctx.identity();
  const settings = ctx.directionSettings();
  const key = stageKey({ stage: "directions", prompts: prompts.key, encoding: ctx.encodingKey(), model: identity.key, compute: await ctx.computeKey(settings) });
  if (store.reusable("directions", key, ARTIFACT)) {
    yield { type: "stage", stage: "directions", status: "reused" };
    return readDirectionCandidates(store.path(ARTIFACT));
  }
  yield { type: "stage", stage: "directions", status: "start" };
  const encode = ctx.encoder();
  const model = await ctx.model();
  const positive = prompts.splits.positive.train.map(encode);
  const negative = prompts.splits.negative.train.map(encode);
  const means = yield* withStageProgress("directions", (onProgress) =>
    contrastMeans({ model, positive, negative, positions: options.positions, ...settings, onProgress }),
  );
  await store.invalidate("directions");
  await writeDirectionCandidates({
    path: store.path(ARTIFACT),
    // The work dir is the pipeline's own: a stage whose key changed replaces its earlier result.
    force: true,
    means,
    metadata: {
      model: options.modelSource,
      modelRevision: options.source?.commit,
      positivePrompts: prompts.splits.positive.train,
      negativePrompts: prompts.splits.negative.train,
      positiveLabel: ctx.labels.positive,
      negativeLabel: ctx.labels.negative,
      positiveOrigin: prompts.origins.positive,
      negativeOrigin: prompts.origins.negative,
      positions: options.positions ?? 1,
      chatTemplate: options.chatTemplate !== false,
      systemPrompt: options.system,
    },
  });
  await store.markDone("directions", key);
  yield { type: "stage", stage: "directions", status: "done", detail: `${means.directions.length} candidate directions` };
  return readDirectionCandidates(store.path(ARTIFACT));
}
