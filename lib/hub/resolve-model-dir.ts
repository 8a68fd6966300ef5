/**
 * MODEL → a local folder to read: a folder on disk is used as is; a Hub repo is downloaded into (or found in)
 * the shared cache and its snapshot folder is returned, with where it came from for abliteration.json.
 */
import { stat } from "node:fs/promises";
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { DownloadEvent } from "./download-model.js";
import { resolveHubToken } from "./hub-token.js";
import { parseModelRef } from "./parse-model-ref.js";

export interface ResolvedModel {
  dir: string;
  /** Set when the model came from the Hub. */
  repo?: string;
  revision?: string;
  commit?: string;
}

export interface ResolveModelDirParams {
  model: string;
  /** An explicit token (--token); otherwise HF_TOKEN, then the token file. */
  token?: string;
  cacheDir?: string;
  onEvent?: (event: DownloadEvent) => void;
}

export async function resolveModelDir(params: ResolveModelDirParams): Promise<ResolvedModel> {
  const ref = parseModelRef(params.model);
  if (ref.kind === "local") {
    const info = await stat(ref.dir);
    if (!info.isDirectory()) throw new AbliterateError(ErrorCodes.IO, `${ref.dir} is not a folder`, { file: ref.dir });
    return { dir: ref.dir };
  }
  const { token } = resolveHubToken({ explicit: params.token });
  // Loaded only for Hub models: @huggingface/hub is a good part of the CLI's start-up time.
  const { downloadModel } = await import("./download-model.js");
  const run = downloadModel({ repo: ref.repo, revision: ref.revision, token, cacheDir: params.cacheDir });
  let step = await run.next();
  while (!step.done) {
    params.onEvent?.(step.value);
    step = await run.next();
  }
  const result = step.value;
  return { dir: result.dir, repo: result.repo, revision: result.revision, commit: result.commit };
}
