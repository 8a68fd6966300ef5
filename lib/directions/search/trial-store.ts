/**
 * The search's trials on disk: one JSON line per finished trial, appended and fsynced before the search moves on,
 * after a header line that records the store key (search space + objectives + the caller's input key + seed).
 * Loading the file gives back the exact trials (JSON round-trips doubles), and the sampler is a pure function of
 * them, so a rerun continues exactly where the last run stopped. A process killed mid-write leaves at most a
 * partial last line: it is dropped (and cut from the file), never fatal; the trial it held is simply run again.
 * A store whose key differs is not reused: openTrialStore says which parts differ, and the caller decides
 * (typically: open it again with fresh: true, which replaces it atomically).
 */
import { mkdir, open, readFile, rename, truncate, unlink, writeFile, type FileHandle } from "node:fs/promises";
import { dirname, join } from "node:path";
import { AbliterateError, ErrorCodes } from "../../errors.js";
import { fromFileSystemError } from "../../fs/file-system-error.js";
import { fsyncPath } from "../../fs/fsync-tree.js";
import { canonicalJson } from "./canonical-json.js";
import { dimensionIdentity, paramsProblem, type SearchSpace } from "./search-space.js";
import type { Objective, Trial } from "./trial.js";

export const TRIAL_STORE_FILE = "search-trials.jsonl";
const FORMAT = "abliterate-search-trials";
const VERSION = 1;

export interface StoreKey {
  /** What decides the sampled values of each dimension (names, kinds, bounds, choices; not docs or defaults). */
  space: Record<string, unknown>[];
  objectives: { name: string; definition?: string }[];
  /** The caller's key of everything upstream (model, prompts, candidate directions): a changed input starts afresh. */
  input: string;
  seed: number;
}

export type StoreKeyPart = keyof StoreKey;

export interface TrialStore<P = unknown> {
  readonly path: string;
  readonly key: StoreKey;
  /** Every trial on disk, in order; grows with append. */
  readonly trials: readonly Trial<P>[];
  /** Writes the trial's line and fsyncs it; resolves only once it is durable. */
  append(trial: Trial<P>): Promise<void>;
  close(): Promise<void>;
}

export type OpenTrialStoreResult<P = unknown> =
  | { ok: true; store: TrialStore<P>; resumed: number; droppedPartialLine: boolean }
  | { ok: false; reason: "key-mismatch"; path: string; differs: StoreKeyPart[]; message: string };

export interface OpenTrialStoreParams {
  dir: string;
  space: SearchSpace;
  objectives: readonly Objective[];
  inputKey: string;
  seed: number;
  /** File name inside dir; default TRIAL_STORE_FILE. */
  file?: string;
  /** Start a new store even when one exists (the old one is replaced atomically). */
  fresh?: boolean;
}

export function storeKey(params: { space: SearchSpace; objectives: readonly Objective[]; inputKey: string; seed: number }): StoreKey {
  return {
    space: params.space.dimensions.map(dimensionIdentity),
    objectives: params.objectives.map((objective) => ({ name: objective.name, definition: objective.definition })),
    input: params.inputKey,
    seed: params.seed,
  };
}

function corrupt(path: string, message: string): AbliterateError {
  return new AbliterateError(ErrorCodes.SEARCH_STORE_INVALID, `${message}; remove the file (or rerun with a fresh search) to start over`, { file: path });
}

async function createStore(path: string, key: StoreKey): Promise<void> {
  const temporary = join(dirname(path), `.${process.pid}.${Date.now()}.search-trials.tmp`);
  try {
    await writeFile(temporary, `${JSON.stringify({ format: FORMAT, version: VERSION, key })}\n`);
    await fsyncPath(temporary);
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw fromFileSystemError(error, path);
  }
  // The rename is durable only once the folder's entry is; some filesystems refuse fsync on folders.
  await fsyncPath(dirname(path)).catch(() => undefined);
}

function parseTrial<P>(line: string, lineNumber: number, expectedNumber: number, path: string, space: SearchSpace, objectives: number): Trial<P> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw corrupt(path, `line ${lineNumber} is not JSON`);
  }
  const trial = value as Trial<P>;
  const problem =
    typeof value !== "object" || value === null ? "not an object"
    : trial.number !== expectedNumber ? `trial number ${String(trial.number)} where ${expectedNumber} was expected`
    : typeof trial.params !== "object" || trial.params === null ? "no params"
    : paramsProblem(space, trial.params) ??
      (!Array.isArray(trial.values) || trial.values.length !== objectives || !trial.values.every((v) => Number.isFinite(v) || (v === null && trial.violation > 0))
        ? `values must be ${objectives} finite numbers (null only on an infeasible trial)`
      : !(Number.isFinite(trial.violation) && trial.violation >= 0) || trial.feasible !== !(trial.violation > 0) ? "violation / feasible do not agree"
      : !(Number.isFinite(trial.seconds) && trial.seconds >= 0) ? "seconds is not a duration"
      : undefined);
  if (problem !== undefined) throw corrupt(path, `line ${lineNumber}: ${problem}`);
  return trial;
}

export async function openTrialStore<P = unknown>(params: OpenTrialStoreParams): Promise<OpenTrialStoreResult<P>> {
  const path = join(params.dir, params.file ?? TRIAL_STORE_FILE);
  const key = storeKey(params);
  let bytes: Buffer | undefined;
  if (!params.fresh) {
    try {
      bytes = await readFile(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw fromFileSystemError(error, path);
    }
  }
  const trials: Trial<P>[] = [];
  let droppedPartialLine = false;
  if (bytes === undefined) {
    await mkdir(params.dir, { recursive: true }).catch((error: unknown) => {
      throw fromFileSystemError(error, params.dir);
    });
    await createStore(path, key);
  } else {
    const end = bytes.lastIndexOf(0x0a) + 1;
    const lines = bytes.subarray(0, end).toString("utf8").split("\n").slice(0, -1);
    if (lines.length === 0) throw corrupt(path, "the file has no header line");
    let header: { format?: unknown; version?: unknown; key?: StoreKey };
    try {
      header = JSON.parse(lines[0]);
    } catch {
      throw corrupt(path, "the header line is not JSON");
    }
    if (header?.format !== FORMAT || header.version !== VERSION || typeof header.key !== "object" || header.key === null) {
      throw corrupt(path, `the header is not a version-${VERSION} ${FORMAT} header`);
    }
    const recorded = header.key;
    const differs = (Object.keys(key) as StoreKeyPart[]).filter((part) => canonicalJson(recorded[part]) !== canonicalJson(key[part]));
    if (differs.length > 0) {
      return { ok: false, reason: "key-mismatch", path, differs, message: `${path} holds trials of a different search (${differs.join(", ")} changed); it was not reused` };
    }
    for (let i = 1; i < lines.length; i += 1) trials.push(parseTrial<P>(lines[i], i + 1, i - 1, path, params.space, params.objectives.length));
    if (end < bytes.length) {
      droppedPartialLine = true;
      try {
        await truncate(path, end);
      } catch (error) {
        throw fromFileSystemError(error, path);
      }
      await fsyncPath(path);
    }
  }

  let handle: FileHandle;
  try {
    handle = await open(path, "a");
  } catch (error) {
    throw fromFileSystemError(error, path);
  }
  let queue: Promise<void> = Promise.resolve();
  const store: TrialStore<P> = {
    path,
    key,
    trials,
    append(trial: Trial<P>): Promise<void> {
      const write = async (): Promise<void> => {
        if (trial.number !== trials.length) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `trial ${trial.number} appended where trial ${trials.length} comes next`, { file: path });
        const line = `${JSON.stringify({ number: trial.number, params: trial.params, values: trial.values, violation: trial.violation, feasible: trial.feasible, seconds: trial.seconds, payload: trial.payload })}\n`;
        try {
          await handle.write(line);
          await handle.sync();
        } catch (error) {
          throw fromFileSystemError(error, path);
        }
        trials.push(trial);
      };
      const result = queue.then(write);
      queue = result.catch(() => undefined);
      return result;
    },
    async close(): Promise<void> {
      await queue;
      await handle.close();
    },
  };
  return { ok: true, store, resumed: trials.length, droppedPartialLine };
}
