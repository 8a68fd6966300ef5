/**
 * `abliterate direction` as a library: the one command's prompts and directions stages (the same code, keys and work
 * dir), then the candidates file placed at the requested path by an atomic, fsynced replacement. With a rank it also
 * runs the signature, selection and subspace stages and writes the `subspace` [k, d] file instead. It refuses to
 * overwrite an existing file unless told to, and never writes over what it reads.
 */
import { readFile } from "node:fs/promises";
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { DirectionCandidates } from "../direction-files/write-direction-candidates.js";
import { checkOutputFile, writeOutputFile } from "../fs/write-output-file.js";
import { directionsStage } from "./directions-stage.js";
import type { PipelineEvent } from "./events.js";
import { pipelineInputs, PipelineContext, type DirectionStageOptions } from "./pipeline-context.js";
import { promptsStage, type PromptsArtifact } from "./prompts-stage.js";
import { selectionStage, type SelectionArtifact } from "./selection-stage.js";
import { signatureStage } from "./signature-stage.js";
import { subspaceStage, type SubspaceArtifact } from "./subspace-stage.js";

export interface FindDirectionsParams extends DirectionStageOptions {
  /** Where the candidates file goes. */
  out: string;
  /** Replace an existing file at `out`. */
  force?: boolean;
}

export interface FoundDirections {
  out: string;
  candidates: DirectionCandidates;
  prompts: PromptsArtifact;
  /** With a rank: the signature, the selection and the subspace written to `out` (`subspace` [k, d]). */
  subspace?: SubspaceArtifact;
  selection?: SelectionArtifact;
}

export async function* findDirections(params: FindDirectionsParams): AsyncGenerator<PipelineEvent, FoundDirections> {
  const inputs = pipelineInputs(params);
  // Checked before any forward pass, and again (with the lock) when the file is written.
  await checkOutputFile({ path: params.out, force: params.force, inputs });
  const ctx = new PipelineContext(params);
  const prompts = yield* promptsStage(ctx);
  if (params.rank === undefined) {
    const candidates = yield* directionsStage(ctx, prompts);
    await writeOutputFile({ path: params.out, data: await readFile(ctx.store.path("directions.safetensors")), force: params.force, inputs });
    return { out: params.out, candidates, prompts };
  }
  // With a rank, the one command's judgement too: the learned signature, the selection, the discovered subspace.
  const signature = yield* signatureStage(ctx, prompts);
  const candidates = yield* directionsStage(ctx, prompts);
  const selection = yield* selectionStage(ctx, prompts, signature, candidates);
  if (selection.failed) throw new AbliterateError(ErrorCodes.DIRECTION_DEGENERATE, selection.failed);
  const subspace = yield* subspaceStage(ctx, { prompts, signature, candidates, selection, rank: params.rank });
  await writeOutputFile({ path: params.out, data: await readFile(subspace.file), force: params.force, inputs });
  return { out: params.out, candidates, prompts, subspace, selection };
}
