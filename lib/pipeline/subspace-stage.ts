/**
 * Stage 4b, subspace (`--rank k` or `--rank auto`, when k ≠ 1): from the selected first direction, further
 * orthogonal directions for the same behaviour (lib/directions/discover-subspace.ts), saved as subspace.safetensors
 * (`subspace` [k, d]), which the surgery then applies as one rank-k edit.
 */
import type { DirectionCandidates } from "../direction-files/write-direction-candidates.js";
import { writeSubspaceFile } from "../direction-files/write-subspace.js";
import { discoverSubspace, type Subspace } from "../directions/discover-subspace.js";
import { scoreCandidates } from "../directions/score-candidates.js";
import { candidateLayers } from "../directions/select-direction.js";
import type { PipelineEvent } from "./events.js";
import { withStageProgress } from "./forward-events.js";
import type { PipelineContext } from "./pipeline-context.js";
import type { PromptsArtifact } from "./prompts-stage.js";
import type { SelectionArtifact } from "./selection-stage.js";
import type { SignatureArtifact } from "./signature-stage.js";
import { stageKey } from "./stage-store.js";

export interface SubspaceArtifact {
  key: string;
  subspace: Omit<Subspace, "steps"> & { steps: (Omit<Subspace["steps"][number], "direction"> & { direction: number[] })[] };
  /** The file surgery applies. */
  file: string;
}

const ARTIFACT = "subspace.json";
export const SUBSPACE_FILE = "subspace.safetensors";

export async function* subspaceStage(
  ctx: PipelineContext,
  params: { prompts: PromptsArtifact; signature: SignatureArtifact; candidates: DirectionCandidates; selection: SelectionArtifact; rank: number | "auto" },
): AsyncGenerator<PipelineEvent, SubspaceArtifact> {
  const { options, store } = ctx;
  const { prompts, signature, selection } = params;
  const key = stageKey({ stage: "subspace", selection: selection.key, signature: signature.key, directions: store.keyOf("directions") ?? null, rank: params.rank, prompts: prompts.key, positions: options.positions ?? 1 });
  if (store.reusable("subspace", key, ARTIFACT) && store.reusable("subspace", key, SUBSPACE_FILE)) {
    yield { type: "stage", stage: "subspace", status: "reused" };
    return store.readJson<SubspaceArtifact>(ARTIFACT);
  }
  yield { type: "stage", stage: "subspace", status: "start" };
  const model = await ctx.model();
  const encode = ctx.encoder();
  const layer = selection.selection.layer;
  const validation = { positive: prompts.splits.positive.validation.map(encode), negative: prompts.splits.negative.validation.map(encode) };
  const settings = ctx.scoringSettings();
  // With --direction-layer the first direction was not scored; score it the same way.
  let scores = selection.scores;
  if (!scores?.candidates.some((c) => c.layer === layer && c.behaviour !== null)) {
    scores = await scoreCandidates({ model, directions: params.candidates.directions, layers: [layer], ...validation, signature: signature.signature, negativeCompletions: signature.negativeValidation, ...settings });
  }
  const first = scores.candidates.find((c) => c.layer === layer)!;
  const subspace = yield* withStageProgress("subspace", (onProgress) =>
    discoverSubspace({
      model,
      signature: signature.signature,
      train: { positive: prompts.splits.positive.train.map(encode), negative: prompts.splits.negative.train.map(encode) },
      validation,
      negativeCompletions: signature.negativeValidation,
      first: { layer, row: params.candidates.directions[layer], score: first },
      baseline: scores!.baseline,
      rank: params.rank,
      layers: candidateLayers({ numLayers: model.spec.numLayers, range: options.candidateLayers }),
      positions: options.positions,
      directionCompute: ctx.directionSettings().compute,
      criteria: { maxKl: options.maxKl, minUnchanged: options.minUnchanged },
      ...settings,
      onProgress: (_step, done, total) => onProgress(done, total),
    }),
  );
  await store.invalidate("subspace");
  await writeSubspaceFile({
    path: store.path(SUBSPACE_FILE),
    rows: subspace.steps.map((s) => s.direction),
    directions: subspace.steps.map((s) => ({ layer: s.layer, behaviour: s.behaviour, unchanged: s.unchanged, kl: s.kl, induced: s.induced })),
    metadata: { model: options.modelSource, stopped: subspace.stopped },
  });
  const artifact: SubspaceArtifact = { key, subspace: { ...subspace, steps: subspace.steps.map((s) => ({ ...s, direction: Array.from(s.direction) })) }, file: store.path(SUBSPACE_FILE) };
  await store.writeJson(ARTIFACT, artifact);
  await store.markDone("subspace", key);
  const left = subspace.steps.map((s) => s.behaviour.toFixed(3)).join(" → ");
  yield { type: "stage", stage: "subspace", status: "done", detail: `rank ${subspace.steps.length} (layers ${subspace.steps.map((s) => s.layer).join(", ")}); behaviour left ${left}; stopped: ${subspace.stopped}` };
  return artifact;
}
