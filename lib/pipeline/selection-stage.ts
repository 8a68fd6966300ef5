/**
 * Stage 4, selection: which candidate to cut. `--direction-layer i` takes row i as given; otherwise every candidate
 * in range (every index 0..L by default) is scored on the validation prompts through the engine's hooks by the
 * learned signature and the damage to the negative set, and the best one that passes the filters is chosen
 * (lib/directions/score-candidates.ts, select-direction.ts).
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { DirectionCandidates } from "../direction-files/write-direction-candidates.js";
import { scoreCandidates, type CandidateScores } from "../directions/score-candidates.js";
import { candidateLayers, selectDirection, type Selection } from "../directions/select-direction.js";
import type { PipelineEvent } from "./events.js";
import { withStageProgress } from "./forward-events.js";
import type { PipelineContext } from "./pipeline-context.js";
import type { PromptsArtifact } from "./prompts-stage.js";
import type { SignatureArtifact } from "./signature-stage.js";
import { stageKey } from "./stage-store.js";

export interface SelectionArtifact {
  key: string;
  scores?: CandidateScores;
  selection: Selection;
  how: "automatic" | "--direction-layer";
  /**
   * No candidate passed the walls: the message says why, and `selection.layer` is only the lowest-behaviour
   * candidate. The single-layer rule then has nothing to apply; the search may still find a partial edit that does.
   */
  failed?: string;
}

const ARTIFACT = "selection.json";

export async function* selectionStage(ctx: PipelineContext, prompts: PromptsArtifact, signature: SignatureArtifact, candidates: DirectionCandidates): AsyncGenerator<PipelineEvent, SelectionArtifact> {
  const { options, store } = ctx;
  const key = stageKey({
    stage: "selection",
    directions: store.keyOf("directions"),
    signature: signature.key,
    prompts: prompts.key,
    range: options.candidateLayers ?? null,
    layer: options.directionLayer ?? null,
    maxKl: options.maxKl ?? null,
    minUnchanged: options.minUnchanged ?? null,
  });
  if (store.reusable("selection", key, ARTIFACT)) {
    yield { type: "stage", stage: "selection", status: "reused" };
    return store.readJson<SelectionArtifact>(ARTIFACT);
  }
  yield { type: "stage", stage: "selection", status: "start" };
  const model = await ctx.model();
  let artifact: SelectionArtifact;
  if (options.directionLayer !== undefined) {
    const layer = options.directionLayer;
    if (!Number.isInteger(layer) || layer < 0 || layer >= candidates.directions.length) {
      throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--direction-layer ${layer} is outside the layer indices 0..${candidates.directions.length - 1}`);
    }
    artifact = { key, selection: { layer, verdicts: [], notes: [] }, how: "--direction-layer" };
  } else {
    const encode = ctx.encoder();
    const scores = yield* withStageProgress("selection", (onProgress) =>
      scoreCandidates({
        model,
        directions: candidates.directions,
        layers: candidateLayers({ numLayers: model.spec.numLayers, range: options.candidateLayers }),
        positive: prompts.splits.positive.validation.map(encode),
        negative: prompts.splits.negative.validation.map(encode),
        signature: signature.signature,
        negativeCompletions: signature.negativeValidation,
        skipDominated: { maxKl: options.maxKl, minUnchanged: options.minUnchanged },
        ...ctx.scoringSettings(),
        onProgress,
      }),
    );
    await store.writeJson("candidate-scores.json", scores);
    try {
      const selection = selectDirection({ scores, numLayers: model.spec.numLayers, criteria: { maxKl: options.maxKl, minUnchanged: options.minUnchanged } });
      artifact = { key, scores, selection, how: "automatic" };
    } catch (error) {
      if (!(error instanceof AbliterateError) || error.code !== ErrorCodes.DIRECTION_DEGENERATE) throw error;
      const scored = scores.candidates.filter((c) => c.behaviour !== null);
      if (scored.length === 0) throw error;
      const lowest = scored.reduce((a, b) => (b.behaviour! < a.behaviour! ? b : a));
      artifact = { key, scores, selection: { layer: lowest.layer, verdicts: [], notes: [] }, how: "automatic", failed: error.message };
    }
  }
  await store.invalidate("selection");
  await store.writeJson(ARTIFACT, artifact);
  await store.markDone("selection", key);
  yield { type: "stage", stage: "selection", status: "done", detail: `layer ${artifact.selection.layer}` };
  return artifact;
}
