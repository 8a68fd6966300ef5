/**
 * MODEL arguments are local folders or Hub repo ids. Local folders are used as they are; Hub ids are resolved by
 * lib/hub (download into the shared cache) once that module is wired in.
 */
import { stat } from "node:fs/promises";
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { ModelSource } from "../surgery/provenance.js";
import type { ProgressDisplay } from "./progress.js";

export interface ResolvedModelArgument {
  dir: string;
  source?: ModelSource;
}

export async function resolveModelArgument(params: { model: string; token?: string; display: ProgressDisplay }): Promise<ResolvedModelArgument> {
  const info = await stat(params.model).catch(() => undefined);
  if (info?.isDirectory()) return { dir: params.model };
  throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `model "${params.model}" is not a local folder`);
}
