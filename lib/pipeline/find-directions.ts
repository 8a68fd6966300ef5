/**
 * `abliterate direction` as a library: the one command's prompts and directions stages (the same code, keys and work
 * dir), then the candidates file placed at the requested path by an atomic, fsynced replacement. It refuses to
 * overwrite an existing file unless told to, and never writes over the model's own files.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, resolve, sep } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { DirectionCandidates } from "../direction-files/write-direction-candidates.js";
import { replaceFileAtomically } from "../fs/replace-file-atomically.js";
import { directionsStage } from "./directions-stage.js";
import type { PipelineEvent } from "./events.js";
import { PipelineContext, type DirectionStageOptions } from "./pipeline-context.js";
import { promptsStage, type PromptsArtifact } from "./prompts-stage.js";

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
}

export async function* findDirections(params: FindDirectionsParams): AsyncGenerator<PipelineEvent, FoundDirections> {
  const out = resolve(params.out);
  const model = resolve(params.modelDir);
  if (out === model || out.startsWith(model + sep)) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--out ${params.out} is inside the model folder ${params.modelDir}; write the directions elsewhere`, { file: params.out });
  }
  if (!params.force && existsSync(out)) {
    throw new AbliterateError(ErrorCodes.OUTPUT_EXISTS, "already exists; pass --force to replace it", { file: params.out });
  }
  if (!existsSync(dirname(out))) throw new AbliterateError(ErrorCodes.IO, `the folder ${dirname(params.out)} does not exist`, { file: params.out });
  const ctx = new PipelineContext(params);
  const prompts = yield* promptsStage(ctx);
  const candidates = yield* directionsStage(ctx, prompts);
  await replaceFileAtomically(out, await readFile(ctx.store.path("directions.safetensors")));
  return { out: params.out, candidates, prompts };
}
