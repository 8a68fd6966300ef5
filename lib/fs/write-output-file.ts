/**
 * The one way a command writes a single output file (`activations --out`, `direction --out`): the same rules as
 * apply's output folder.
 * - The path is checked first (not empty, not a folder), and refused when it overlaps an input.
 * - An existing file is replaced only with `force`; a folder, FIFO or device never is.
 * - `PATH.lock` keeps two runs from writing it at once.
 * - The bytes go to a temporary name beside it, are fsynced, renamed over PATH, and the folder is fsynced, so a
 *   reader sees the old file or the whole new one, and a crash cannot leave a torn file under PATH.
 */
import { randomBytes } from "node:crypto";
import { lstat, mkdir, open, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { checkOutputPath } from "./check-output-path.js";
import { describeSpecialFile } from "./describe-special-file.js";
import { fromFileSystemError } from "./file-system-error.js";
import { fsyncPath } from "./fsync-tree.js";
import { acquireOutputLock, isProcessAlive } from "./output-lock.js";
import { refuseOutputOverlap, type OutputInput } from "./refuse-output-overlap.js";

export interface WriteOutputFileParams {
  path: string;
  /** The whole content, or its parts in order. */
  data: Uint8Array | readonly Uint8Array[];
  /** Replace an existing file. */
  force?: boolean;
  /** What the command read (the model folder, prompt files, …): the output may not overlap any of them. */
  inputs?: readonly OutputInput[];
  /** The option that named the path, for messages (default `--out`). */
  option?: string;
}

const TEMPORARY_INFIX = ".tmp-";

/** Temporary files of dead runs (`PATH.tmp-PID-RANDOM`); called while holding the lock, so none is live. */
async function removeDeadTemporaries(path: string): Promise<void> {
  const prefix = `${basename(path)}${TEMPORARY_INFIX}`;
  const entries = await readdir(dirname(path)).catch(() => [] as string[]);
  for (const name of entries) {
    const match = name.startsWith(prefix) ? /^(\d+)-[0-9a-f]{8}$/.exec(name.slice(prefix.length)) : null;
    if (match && (Number(match[1]) === process.pid || !isProcessAlive(Number(match[1])))) await rm(join(dirname(path), name), { force: true });
  }
}

export type CheckOutputFileParams = Omit<WriteOutputFileParams, "data">;

async function refuseExisting(path: string, force: boolean | undefined, option: string): Promise<void> {
  const existing = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT" || error.code === "ENOTDIR") return undefined;
    throw fromFileSystemError(error, path);
  });
  if (!existing) return;
  const special = describeSpecialFile(existing);
  if (special) throw new AbliterateError(ErrorCodes.OUTPUT_EXISTS, `is ${special}, not a file; ${option} must name a file`, { file: path });
  if (!force) throw new AbliterateError(ErrorCodes.OUTPUT_EXISTS, "already exists; pass --force to replace it", { file: path });
}

/**
 * The checks writeOutputFile makes before writing, without writing: a command calls it before hours of work, so
 * an output it could never write fails at once. Returns the path as it will be written.
 */
export async function checkOutputFile(params: CheckOutputFileParams): Promise<string> {
  const option = params.option ?? "--out";
  const path = checkOutputPath({ path: params.path, option, kind: "file" });
  await refuseOutputOverlap({ output: path, inputs: params.inputs ?? [], option });
  await refuseExisting(path, params.force, option);
  return path;
}

export async function writeOutputFile(params: WriteOutputFileParams): Promise<void> {
  const option = params.option ?? "--out";
  const path = checkOutputPath({ path: params.path, option, kind: "file" });
  await refuseOutputOverlap({ output: path, inputs: params.inputs ?? [], option });
  try {
    await mkdir(dirname(path), { recursive: true });
  } catch (error) {
    throw fromFileSystemError(error, dirname(path));
  }
  const lock = (() => {
    try {
      return acquireOutputLock({ target: path });
    } catch (error) {
      throw fromFileSystemError(error, path);
    }
  })();
  const temporary = `${path}${TEMPORARY_INFIX}${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    await refuseExisting(path, params.force, option);
    await removeDeadTemporaries(path);
    const handle = await open(temporary, "wx");
    try {
      for (const part of params.data instanceof Uint8Array ? [params.data] : params.data) {
        let written = 0;
        while (written < part.byteLength) written += (await handle.write(part, written, part.byteLength - written)).bytesWritten;
      }
      await handle.sync();
    } catch (error) {
      throw fromFileSystemError(error, path);
    } finally {
      await handle.close();
    }
    await rename(temporary, path);
    // The rename is durable only once the folder's entry is on disk; some filesystems refuse fsync on folders.
    await fsyncPath(dirname(path)).catch(() => undefined);
  } catch (error) {
    await rm(temporary, { force: true });
    throw fromFileSystemError(error, path);
  } finally {
    lock.release();
  }
}
