/**
 * Atomic output (DESIGN.md § Streaming, Atomicity): all writing happens in `DIR.partial/`, and only a verified
 * result is renamed to `DIR`. A killed run therefore never leaves a `DIR` that looks complete.
 * A lock file beside DIR keeps two runs from writing the same output.
 */
import { closeSync, fsyncSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { mkdir, rename, rm, stat, open } from "node:fs/promises";
import { dirname } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";

export interface OutputFolder {
  finalDir: string;
  partialDir: string;
  /** Renames the partial folder to the final one (replacing an old output when forced) and releases the lock. */
  commit(): Promise<void>;
  /** Removes the partial folder and releases the lock. */
  abandon(): Promise<void>;
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function acquireLock(lockPath: string, finalDir: string): void {
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      const fd = openSync(lockPath, "wx");
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      let owner = NaN;
      try {
        owner = Number.parseInt(readFileSync(lockPath, "utf8"), 10);
      } catch {
        // Unreadable lock: treat as stale below.
      }
      if (Number.isInteger(owner) && owner !== process.pid && processAlive(owner)) {
        throw new AbliterateError(ErrorCodes.OUTPUT_LOCKED, `another abliterate run (pid ${owner}) is writing this output; wait for it or remove ${lockPath} if it is gone`, { file: finalDir });
      }
      // A stale lock from a killed run: take it over.
      try {
        unlinkSync(lockPath);
      } catch {
        // Someone else removed it meanwhile; retry.
      }
    }
  }
  throw new AbliterateError(ErrorCodes.OUTPUT_LOCKED, `could not take the lock ${lockPath}`, { file: finalDir });
}

export interface PrepareOutputFolderParams {
  finalDir: string;
  force?: boolean;
  /**
   * Keep a leftover `DIR.partial/` from a killed run so finished shards can be reused. It is still never taken as
   * output: only a run that verifies every shard renames it.
   */
  keepPartial?: boolean;
}

export async function prepareOutputFolder(params: PrepareOutputFolderParams): Promise<OutputFolder> {
  const finalDir = params.finalDir.replace(/\/+$/, "");
  const partialDir = `${finalDir}.partial`;
  const lockPath = `${finalDir}.lock`;
  await mkdir(dirname(finalDir), { recursive: true });
  acquireLock(lockPath, finalDir);
  const release = () => rm(lockPath, { force: true });
  try {
    if (!params.force && (await exists(finalDir))) {
      throw new AbliterateError(ErrorCodes.OUTPUT_EXISTS, "output folder already exists; pass --force to replace it", { file: finalDir });
    }
    // A leftover partial folder is from a killed run; it is never taken as output.
    if (!params.keepPartial) await rm(partialDir, { recursive: true, force: true });
    await mkdir(partialDir, { recursive: true });
  } catch (error) {
    await release();
    throw error;
  }
  return {
    finalDir,
    partialDir,
    async commit() {
      const handle = await open(partialDir, "r");
      await handle.sync().catch(() => undefined);
      await handle.close();
      if (await exists(finalDir)) {
        const old = `${finalDir}.old-${process.pid}`;
        await rename(finalDir, old);
        await rename(partialDir, finalDir);
        await rm(old, { recursive: true, force: true });
      } else {
        await rename(partialDir, finalDir);
      }
      const parent = openSync(dirname(finalDir), "r");
      try {
        fsyncSync(parent);
      } catch {
        // Some filesystems refuse fsync on directories; the rename is still atomic.
      } finally {
        closeSync(parent);
      }
      await release();
    },
    async abandon() {
      await rm(partialDir, { recursive: true, force: true });
      await release();
    },
  };
}
