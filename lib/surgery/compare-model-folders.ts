/**
 * verify's check of everything that is not a shard: apply copies every other file of the model byte for byte, so
 * the modified folder must hold exactly those files, identical, plus the tool's own files. A changed config.json,
 * a deleted or edited index, or an extra `evil.py` or extra shard is a failure. The shards themselves are checked
 * numerically (verify-shards.ts); their presence and size are checked there too.
 */
import { open } from "node:fs/promises";
import { PROVENANCE_FILE } from "../provenance/provenance.js";
import { listFolderFiles, ownOutputPaths, type FolderEntry } from "./model-folder-files.js";

/**
 * Top-level files of an output that abliterate itself writes or replaces, and that may therefore differ from the
 * original, be added or be missing: the provenance record, the model card (the one command and push write one),
 * and the one command's report. One list, used by verify; docs/reliability.md repeats it.
 */
export const TOOL_OWNED_FILES: ReadonlySet<string> = new Set([PROVENANCE_FILE, "README.md", "report.html", "report.json"]);

/** Bookkeeping folders of git and huggingface_hub's local-dir downloads: never model content, never compared. */
const BOOKKEEPING = new Set([".git", ".cache"]);

export interface CompareModelFoldersParams {
  originalDir: string;
  modifiedDir: string;
  /** The checkpoint's shard files (top-level names), which the numeric verification covers. */
  shardFiles: ReadonlySet<string>;
}

export interface FolderComparison {
  filesCompared: number;
  failures: string[];
}

const CHUNK = 1 << 20;

/** Byte offset of the first difference of two files of equal size, or -1 when identical. */
async function firstDifference(a: string, b: string, size: number): Promise<number> {
  const [left, right] = await Promise.all([open(a, "r"), open(b, "r")]);
  try {
    const bufferA = Buffer.allocUnsafe(CHUNK);
    const bufferB = Buffer.allocUnsafe(CHUNK);
    for (let position = 0; position < size; position += CHUNK) {
      const length = Math.min(CHUNK, size - position);
      const [readA, readB] = await Promise.all([left.read(bufferA, 0, length, position), right.read(bufferB, 0, length, position)]);
      const n = Math.min(readA.bytesRead, readB.bytesRead);
      for (let i = 0; i < n; i += 1) if (bufferA[i] !== bufferB[i]) return position + i;
      if (n < length) return position + n;
    }
    return -1;
  } finally {
    await Promise.all([left.close(), right.close()]);
  }
}

export async function compareModelFolders(params: CompareModelFoldersParams): Promise<FolderComparison> {
  const skipTopLevel = new Set([...params.shardFiles, ...BOOKKEEPING]);
  const original = await listFolderFiles({ dir: params.originalDir, skipTopLevel, skipPath: ownOutputPaths(params.modifiedDir) });
  const modified = await listFolderFiles({ dir: params.modifiedDir, skipTopLevel });
  const modifiedByName = new Map<string, FolderEntry>(modified.map((entry) => [entry.relative, entry]));
  const originalNames = new Set(original.map((entry) => entry.relative));
  const failures: string[] = [];
  let filesCompared = 0;
  for (const entry of original) {
    if (TOOL_OWNED_FILES.has(entry.relative)) continue;
    const copy = modifiedByName.get(entry.relative);
    if (copy === undefined) {
      failures.push(`${entry.relative}: missing from the modified model (the original has it, and apply copies it unchanged)`);
      continue;
    }
    if (entry.special || copy.special) {
      failures.push(`${entry.relative}: is ${copy.special ?? entry.special} in the ${copy.special ? "modified" : "original"} model, not a regular file`);
      continue;
    }
    filesCompared += 1;
    if (copy.size !== entry.size) {
      failures.push(`${entry.relative}: ${copy.size} bytes, the original's has ${entry.size}; apply copies it unchanged`);
      continue;
    }
    const at = await firstDifference(entry.path, copy.path, entry.size);
    if (at >= 0) failures.push(`${entry.relative}: differs from the original's at byte ${at}; apply copies it unchanged`);
  }
  for (const entry of modified) {
    if (originalNames.has(entry.relative) || TOOL_OWNED_FILES.has(entry.relative)) continue;
    failures.push(`${entry.relative}: is not in the original model; apply writes only the original's files and ${[...TOOL_OWNED_FILES].join(", ")}`);
  }
  return { filesCompared, failures };
}
