/**
 * Stage 3, selection: which candidate to cut. `--direction-layer i` takes row i as given; otherwise every candidate
 * in range is scored on the validation prompts through the engine's hooks and the best one that passes the filters
 * is chosen (lib/directions/score-candidates.ts, select-direction.ts).
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { DirectionCandidates } from "../direction-files/write-direction-candidates.js";
import { refusalTokenIds, type RefusalTokens } from "../directions/refusal-tokens.js";
import { scoreCandidates, type CandidateScores } from "../directions/score-candidates.js";
import { candidateLayers, selectDirection, type Selection } from "../directions/select-direction.js";
import type { PipelineEvent } from "./events.js";
import { withStageProgress } from "./forward-events.js";
import type { PipelineContext } from "./pipeline-context.js";
import type { PromptsArtifact } from "./prompts-stage.js";
import { stageKey } from "./stage-store.js";

export interface SelectionArtifact {
  key: string;
  refusalTokens: RefusalTokens;
  scores?: CandidateScores;
  selection: Selection;
  how: "automatic" | "--direction-layer";
}

const ARTIFACT = "selection.json";

export async function* selectionStage(ctx: PipelineContext, prompts: PromptsArtifact, candidates: DirectionCandidates): AsyncGenerator<PipelineEvent, SelectionArtifact> {
  const { options, store } = ctx;
  const key = stageKey({ stage: "selection", directions: store.keyOf("directions"), prompts: prompts.key, range: options.candidateLayers ?? null, layer: options.directionLayer ?? null, maxKl: options.maxKl ?? null });
  if (store.reusable("selection", key, ARTIFACT)) {
    yield { type: "stage", stage: "selection", status: "reused" };
    return store.readJson<SelectionArtifact>(ARTIFACT);
  }
  yield { type: "stage", stage: "selection", status: "start" };
  const model = await ctx.model();
  const refusalTokens = refusalTokenIds(ctx.tokenizer);
  let artifact: SelectionArtifact;
  if (options.directionLayer !== undefined) {
    const layer = options.directionLayer;
    if (!Number.isInteger(layer) || layer < 0 || layer >= candidates.directions.length) {
      throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--direction-layer ${layer} is outside the layer indices 0..${candidates.directions.length - 1}`);
    }
    artifact = { key, refusalTokens, selection: { layer, verdicts: [], notes: [] }, how: "--direction-layer" };
  } else {
    const encode = ctx.encoder();
    const scores = yield* withStageProgress("selection", (onProgress) =>
      scoreCandidates({
        model,
        directions: candidates.directions,
        layers: candidateLayers({ numLayers: model.spec.numLayers, range: options.candidateLayers }),
        harmful: prompts.splits.positive.validation.map(encode),
        harmless: prompts.splits.negative.validation.map(encode),
        refusalTokenIds: refusalTokens.ids,
        ...options.forward,
        onProgress,
      }),
    );
    await store.writeJson("candidate-scores.json", scores);
    const selection = selectDirection({ candidates: scores.candidates, maxKl: options.maxKl });
    artifact = { key, refusalTokens, scores, selection, how: "automatic" };
  }
  await store.invalidate("selection");
  await store.writeJson(ARTIFACT, artifact);
  await store.markDone("selection", key);
  yield { type: "stage", stage: "selection", status: "done", detail: `layer ${artifact.selection.layer}` };
  return artifact;
}
