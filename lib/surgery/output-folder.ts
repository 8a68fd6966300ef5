/**
 * Atomic output (docs/surgery.md § Atomicity): all writing happens in `DIR.partial/`, and only a verified
 * result is renamed to `DIR`. A killed run therefore never leaves a `DIR` that looks complete.
 * - `DIR.lock` keeps two runs from writing the same output (lib/fs/output-lock.ts).
 * - `DIR.partial/` carries a marker file from the moment it is created until just before its rename. A
 *   `DIR.partial` without it, and not left by a dead run whose lock this run took over, is someone else's folder
 *   and is never emptied or removed (an empty one is: there is nothing in it to lose).
 * - `--force` replaces DIR by renaming it to `DIR.old-PID`, renaming the partial folder to DIR, then removing the
 *   old one. A run killed between the two renames leaves no DIR and a `DIR.old-PID`; the next run, holding the
 *   lock, puts it back (or, when DIR exists, removes it as the superseded output).
 * - DIR must not equal, contain or lie inside an input (lib/fs/refuse-output-overlap.ts).
 */
import { closeSync, fsyncSync, openSync } from "node:fs";
import { lstat, mkdir, readdir, readFile, rename, rm, rmdir, unlink, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { checkOutputPath } from "../fs/check-output-path.js";
import { acquireOutputLock } from "../fs/output-lock.js";
import { refuseOutputOverlap, type OutputInput } from "../fs/refuse-output-overlap.js";

export { refuseOutputOverlap, type OutputInput, type RefuseOutputOverlapParams } from "../fs/refuse-output-overlap.js";

/** Written into `DIR.partial/` when it is created; removed just before the partial folder is renamed to DIR. */
export const PARTIAL_MARKER = ".abliterate-partial";

export interface OutputFolder {
  finalDir: string;
  partialDir: string;
  /** What preparing the folder repaired (an interrupted --force run's `DIR.old-PID`), for the caller to show. */
  notes: string[];
  /** Renames the partial folder to the final one (replacing an old output when forced) and releases the lock. */
  commit(): Promise<void>;
  /** Removes the partial folder and releases the lock. */
  abandon(): Promise<void>;
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

async function hasMarker(partialDir: string): Promise<boolean> {
  try {
    const text = await readFile(join(partialDir, PARTIAL_MARKER), "utf8");
    return (JSON.parse(text) as { tool?: unknown }).tool === "abliterate";
  } catch {
    return false;
  }
}

async function writeMarker(partialDir: string): Promise<void> {
  await writeFile(join(partialDir, PARTIAL_MARKER), `${JSON.stringify({ tool: "abliterate", pid: process.pid, created: new Date().toISOString() })}\n`, { flag: "w" });
}

function fsyncFolder(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  } finally {
    closeSync(fd);
  }
}

/**
 * Repairs what a `--force` run killed between its two renames left: `DIR.old-PID` and no DIR. Called while holding
 * the lock, so no live run is in the middle of its own renames. Returns a note per repair.
 */
async function recoverInterruptedReplace(finalDir: string): Promise<string[]> {
  const prefix = `${basename(finalDir)}.old-`;
  const parent = dirname(finalDir);
  const olds: { path: string; mtimeMs: number }[] = [];
  for (const name of await readdir(parent)) {
    if (!name.startsWith(prefix) || !/^\d+$/.test(name.slice(prefix.length))) continue;
    const path = join(parent, name);
    olds.push({ path, mtimeMs: (await lstat(path)).mtimeMs });
  }
  if (olds.length === 0) return [];
  const notes: string[] = [];
  olds.sort((a, b) => b.mtimeMs - a.mtimeMs);
  if (!(await exists(finalDir))) {
    const restored = olds.shift()!;
    await rename(restored.path, finalDir);
    fsyncFolder(parent);
    notes.push(`restored ${finalDir} from ${basename(restored.path)}, which a --force run killed while replacing it left behind`);
  }
  for (const old of olds) {
    await rm(old.path, { recursive: true, force: true });
    notes.push(`removed ${basename(old.path)}, the output a killed --force run had already replaced`);
  }
  return notes;
}

/**
 * Readies `DIR.partial/`: created with the marker when missing; one of ours (marked, or left by the dead run whose
 * lock we took over) is kept (`keepPartial`) or emptied; any other is used only when empty, and otherwise refused
 * untouched.
 */
async function preparePartial(partialDir: string, keepPartial: boolean, leftByDeadRun: boolean): Promise<void> {
  const info = await lstat(partialDir).catch(() => undefined);
  if (info !== undefined) {
    if (!info.isDirectory()) {
      throw new AbliterateError(ErrorCodes.OUTPUT_EXISTS, "exists and is not a folder abliterate made; move it away or remove it", { file: partialDir });
    }
    if (leftByDeadRun || (await hasMarker(partialDir))) {
      // A leftover partial folder is from a killed run; it is never taken as output.
      if (!keepPartial) await rm(partialDir, { recursive: true, force: true });
    } else {
      try {
        await rmdir(partialDir);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== "ENOTEMPTY" && code !== "EEXIST") throw error;
        throw new AbliterateError(
          ErrorCodes.OUTPUT_EXISTS,
          `exists, is not empty and has no ${PARTIAL_MARKER} marker, so abliterate did not make it (or a run was killed before renaming it into place and its lock is gone); it is left untouched: look inside, then move it away or remove it`,
          { file: partialDir },
        );
      }
    }
  }
  await mkdir(partialDir, { recursive: true });
  if (!(await hasMarker(partialDir))) await writeMarker(partialDir);
}

export interface PrepareOutputFolderParams {
  finalDir: string;
  force?: boolean;
  /**
   * Keep a leftover `DIR.partial/` from a killed run so finished shards can be reused. It is still never taken as
   * output: only a run that verifies every shard renames it.
   */
  keepPartial?: boolean;
  /** What the run reads (the model, the direction file, …); DIR may not overlap any of them. */
  inputs?: readonly OutputInput[];
  /** The option that named DIR, for messages (default `--out`). */
  option?: string;
}

export async function prepareOutputFolder(params: PrepareOutputFolderParams): Promise<OutputFolder> {
  const finalDir = checkOutputPath({ path: params.finalDir, option: params.option, kind: "folder" });
  await refuseOutputOverlap({ output: finalDir, inputs: params.inputs ?? [], option: params.option });
  const partialDir = `${finalDir}.partial`;
  await mkdir(dirname(finalDir), { recursive: true });
  const lock = acquireOutputLock({ target: finalDir });
  const release = async () => lock.release();
  let notes: string[];
  try {
    notes = await recoverInterruptedReplace(finalDir);
    if (!params.force && (await exists(finalDir))) {
      const repaired = notes.length > 0 ? ` (${notes.join("; ")})` : "";
      throw new AbliterateError(ErrorCodes.OUTPUT_EXISTS, `output folder already exists${repaired}; pass --force to replace it`, { file: finalDir });
    }
    await preparePartial(partialDir, params.keepPartial ?? false, lock.tookOverStale);
  } catch (error) {
    await release();
    throw error;
  }
  return {
    finalDir,
    partialDir,
    notes,
    async commit() {
      // The marker leaves just before the rename, so DIR never carries it; the folder's fsync comes after the
      // rename (same folder, now DIR), keeping the gap between the two to a few syscalls. A run killed in that gap
      // still holds the lock, so the next run takes it over and knows the unmarked partial folder is ours.
      const replacing = await exists(finalDir);
      const old = `${finalDir}.old-${process.pid}`;
      await unlink(join(partialDir, PARTIAL_MARKER)).catch(() => undefined);
      if (replacing) await rename(finalDir, old);
      await rename(partialDir, finalDir);
      fsyncFolder(finalDir);
      fsyncFolder(dirname(finalDir));
      if (replacing) await rm(old, { recursive: true, force: true });
      await release();
    },
    async abandon() {
      await rm(partialDir, { recursive: true, force: true });
      await release();
    },
  };
}

