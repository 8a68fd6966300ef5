/**
 * Writes a whole file so that a reader sees either the old content or the new, never a torn mix, and so that the new
 * content is on disk when the call returns: write a temporary file beside it, fsync it, rename it over the target,
 * fsync the folder. Used for stage results in a work dir and for the results the pipeline replaces inside a finished
 * output folder (docs/surgery.md § Atomicity).
 */
import { randomBytes } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fromFileSystemError } from "./file-system-error.js";
import { fsyncPath } from "./fsync-tree.js";

export async function replaceFileAtomically(path: string, data: string | Uint8Array): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  try {
    const handle = await open(temporary, "wx");
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => undefined);
    throw fromFileSystemError(error, path);
  }
  // Some filesystems refuse fsync on folders; the rename is then as durable as they make it.
  await fsyncPath(dirname(path)).catch(() => undefined);
}
