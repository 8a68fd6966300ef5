/**
 * Node's fs errors carry a code, a syscall and the paths, but they are not AbliterateErrors, so the CLI would report
 * a full disk while copying config files as an internal error with a stack trace. Surgery turns them into IO or
 * DISK_FULL errors naming the file; anything that is not a file-system error is returned unchanged (a bug stays a bug).
 */
import { writeFile } from "node:fs/promises";
import { AbliterateError, ErrorCodes } from "../errors.js";

interface NodeFileSystemError extends Error {
  code?: string;
  syscall?: string;
  path?: string;
  dest?: string;
}

/** `file` names the file when the error does not (writes through a descriptor carry no path). */
export function fromFileSystemError(error: unknown, file?: string): unknown {
  if (error instanceof AbliterateError || !(error instanceof Error)) return error;
  const { code, syscall, path, dest } = error as NodeFileSystemError;
  if (typeof code !== "string" || !(/^E[A-Z0-9]+$/.test(code) || code.startsWith("ERR_FS_"))) return error;
  const full = code === "ENOSPC" || code === "EDQUOT";
  // A full disk is the destination's problem; any other failure of a copy could be either side, and the message names both.
  const named = (full ? (dest ?? path) : (path ?? dest)) ?? file;
  const message = full
    ? `No space left on device (${syscall ?? "write"}${named ? ` ${named}` : ""}); free some space and run again`
    : named && !error.message.includes(named) ? `${named}: ${error.message}` : error.message;
  return new AbliterateError(full ? ErrorCodes.DISK_FULL : ErrorCodes.IO, message, { file: named, cause: error });
}

/** writeFile whose failure names the file (Node's write errors do not). */
export async function writeFileNamingErrors(path: string, data: string | Uint8Array): Promise<void> {
  try {
    await writeFile(path, data);
  } catch (error) {
    throw fromFileSystemError(error, path);
  }
}
