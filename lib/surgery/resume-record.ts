/**
 * Reuse of finished work after a killed run (issue: kill-safety). Each shard written into `DIR.partial/` is
 * recorded with a key over everything that determines its bytes: the input shard's identity (size, mtime) and
 * the exact native jobs (offsets, dtype, α, basis bits). A rerun with the same key skips that shard; the final
 * verification still checks every shard against the original, so a reused shard is never trusted blindly.
 */
import { createHash } from "node:crypto";
import { readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { NativeTensorJob } from "../native/addon.js";
import { writeFileNamingErrors } from "../fs/file-system-error.js";
import { PARTIAL_MARKER } from "./output-folder.js";

const RECORD_FILE = ".abliterate-resume.json";

export interface ResumeRecord {
  /** Whether `file` in the partial folder was completed by an earlier run with this exact key. */
  isDone(file: string, key: string): Promise<boolean>;
  markDone(file: string, key: string): Promise<void>;
  /** Removes the record so it never reaches the final output. */
  discard(): Promise<void>;
}

export async function shardKey(inputPath: string, jobs: readonly NativeTensorJob[]): Promise<string> {
  const info = await stat(inputPath);
  const hash = createHash("sha256");
  hash.update(JSON.stringify({ size: info.size, mtimeMs: info.mtimeMs }));
  for (const job of jobs) {
    hash.update(JSON.stringify([job.name, job.offset, job.rows, job.cols, job.dtype, job.dModelAxis, job.rank, job.alpha, job.normPreserving]));
    hash.update(new Uint8Array(job.basis.buffer, job.basis.byteOffset, job.basis.byteLength));
  }
  return hash.digest("hex");
}

export async function openResumeRecord(partialDir: string): Promise<ResumeRecord> {
  const path = join(partialDir, RECORD_FILE);
  let done: Record<string, string> = {};
  try {
    const parsed = JSON.parse(await readFile(path, "utf8")) as unknown;
    if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) done = parsed as Record<string, string>;
  } catch {
    // No record (fresh run) or a torn one (killed while writing it): start from nothing.
  }
  // Anything a killed run left that the record does not vouch for (torn shards, copied files) is removed, so
  // only recorded shards can survive into this run's output.
  for (const entry of await readdir(partialDir)) {
    if (entry !== RECORD_FILE && entry !== PARTIAL_MARKER && !(entry in done)) await rm(join(partialDir, entry), { recursive: true, force: true });
  }
  return {
    async isDone(file, key) {
      if (done[file] !== key) return false;
      return stat(join(partialDir, file)).then(() => true, () => false);
    },
    async markDone(file, key) {
      done = { ...done, [file]: key };
      const temporary = `${path}.tmp`;
      await writeFileNamingErrors(temporary, JSON.stringify(done));
      await rename(temporary, path);
    },
    async discard() {
      await rm(path, { force: true });
    },
  };
}
