/**
 * The syntax of an output path, checked before any work starts. Each refused form once did something odd:
 * `--out ""` ran the whole surgery into `./.partial` and then failed on a raw ENOENT; `--out X/.` reported
 * "already exists" and created X (its partial folder was `X/..partial`); a file path ending in `/` is a folder.
 */
import { basename } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";

export interface CheckOutputPathParams {
  path: unknown;
  /** The option that gave the path, for the message (e.g. `--out`). */
  option?: string;
  kind: "folder" | "file";
}

/** Returns the path without trailing slashes, or throws INVALID_ARGUMENT naming the option. */
export function checkOutputPath(params: CheckOutputPathParams): string {
  const option = params.option ?? "--out";
  const refuse = (problem: string): never => {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `${option} ${problem}`);
  };
  if (typeof params.path !== "string") return refuse(`must be a ${params.kind} path`);
  const given = params.path;
  if (given.trim() === "") refuse(`is empty; give the ${params.kind} to write`);
  if (given.includes("\0")) refuse(`${JSON.stringify(given)} contains a NUL byte`);
  const stripped = given.replace(/\/+$/, "");
  if (stripped !== given && params.kind === "file") refuse(`${JSON.stringify(given)} ends with "/", so it names a folder; give a file name`);
  if (stripped === "") refuse(`${JSON.stringify(given)} is the root folder; give a ${params.kind} to create`);
  const last = basename(stripped);
  if (last === "." || last === "..") {
    refuse(`${JSON.stringify(given)} ends in "${last}"; name the ${params.kind} itself (its partial copy and lock are created beside it)`);
  }
  return stripped;
}
