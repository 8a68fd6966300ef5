/**
 * The files of a model folder that apply carries into its output, listed the way it copies them: every entry at
 * the top level except the checkpoint's shards, Python's local-dir bookkeeping and our own record, recursively,
 * links followed (Hub snapshots are links into blobs/). verify compares the two folders over this list, and the
 * weight-file check scans it.
 */
import { readdir, realpath, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { describeSpecialFile } from "../fs/describe-special-file.js";
import { PROVENANCE_FILE } from "../provenance/provenance.js";

/** Never carried into the output: Python's local-dir bookkeeping, and our own record (rewritten fresh). */
export const SKIPPED_TOP_LEVEL = new Set([".cache", ".git", PROVENANCE_FILE]);

/** Bounds on the walk: a link to a huge tree or a loop must end in an error, not in an endless copy or compare. */
const MAX_DEPTH = 32;
const MAX_ENTRIES = 200_000;

/**
 * The paths an output at `outDir` occupies (the folder, its partial folder, its lock and claim files, an old output
 * being replaced): when the output lies inside the model folder (allowed before overlaps were refused), none of
 * them is part of the model.
 */
export function ownOutputPaths(outDir: string): (absolutePath: string) => boolean {
  const out = resolve(outDir);
  return (path) => path === out || path === `${out}.partial` || path === `${out}.lock` || path.startsWith(`${out}.lock.`) || path.startsWith(`${out}.old-`);
}

export interface FolderEntry {
  /** Path relative to the folder, with `/` separators. */
  relative: string;
  path: string;
  /** Undefined for a regular file; otherwise what it is ("a FIFO (named pipe)", …). */
  special?: string;
  size: number;
}

export interface ListFolderFilesParams {
  dir: string;
  /** Top-level names left out (besides SKIPPED_TOP_LEVEL). */
  skipTopLevel?: ReadonlySet<string>;
  /** Absolute paths left out (an output inside the folder and its partial folder and lock). */
  skipPath?: (absolutePath: string) => boolean;
}

/** Every regular (or special) file under `dir`, links followed, in a stable order. */
export async function listFolderFiles(params: ListFolderFilesParams): Promise<FolderEntry[]> {
  const entries: FolderEntry[] = [];
  const visiting = new Set<string>();
  const walk = async (dir: string, prefix: string, depth: number): Promise<void> => {
    const real = await realpath(dir);
    if (visiting.has(real) || depth > MAX_DEPTH) {
      throw new AbliterateError(ErrorCodes.IO, `${visiting.has(real) ? "links back into a folder above it (a loop)" : `is more than ${MAX_DEPTH} folders deep`}; it cannot be copied or compared`, { file: dir });
    }
    visiting.add(real);
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      if (depth === 0 && (SKIPPED_TOP_LEVEL.has(name) || params.skipTopLevel?.has(name))) continue;
      const path = join(dir, name);
      if (params.skipPath?.(resolve(path))) continue;
      const relative = prefix === "" ? name : `${prefix}/${name}`;
      let info;
      try {
        info = await stat(path);
      } catch (cause) {
        const code = (cause as NodeJS.ErrnoException).code;
        throw new AbliterateError(ErrorCodes.IO, `cannot read (${code === "ENOENT" ? "a dangling link" : (code ?? String(cause))})`, { file: path, cause });
      }
      if (info.isDirectory()) {
        await walk(path, relative, depth + 1);
        continue;
      }
      if (entries.length >= MAX_ENTRIES) throw new AbliterateError(ErrorCodes.IO, `holds more than ${MAX_ENTRIES} files`, { file: params.dir });
      const special = info.isFile() ? undefined : (describeSpecialFile(info) ?? "not a regular file");
      entries.push({ relative, path, size: info.size, ...(special ? { special } : {}) });
    }
    visiting.delete(real);
  };
  await walk(params.dir, "", 0);
  return entries;
}
