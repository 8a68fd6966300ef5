/**
 * What the input model *is*, for the stage keys: every file that changes what the pipeline computes (weights,
 * config, tokenizer, chat template), by size and sha256. A rerun after the weights were edited therefore redoes
 * every stage, whatever the folder is called. Hashing a large model is not free (≈ 0.6 GB/s per core here, the files spread over the cores), so each file's
 * digest is cached in the work dir against its (size, mtime, ctime, inode): an unchanged file is not read again,
 * and any write to it changes ctime, which no user-level call can set back.
 * Files that came from the Hub are named by their sha256 in the cache's blobs/ folder (the download checked it),
 * so for them the blob name is the digest.
 */
import { existsSync, readFileSync } from "node:fs";
import { readdir, readlink, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { sha256Files } from "../fs/sha256-files.js";
import { replaceFileAtomically } from "../fs/replace-file-atomically.js";
import type { ModelSource } from "../provenance/provenance.js";
import { stageKey } from "./stage-store.js";

export interface ModelIdentity {
  /** Hash over the file list below (and the Hub revision, when there is one). */
  key: string;
  files: { name: string; bytes: number; sha256: string }[];
  revision?: { repo?: string; commit?: string };
}

/** Our own results, which a model folder may hold when it is an earlier output; they change nothing we compute. */
const OWN_FILES = new Set(["abliteration.json", "report.json"]);
const RELEVANT = /\.(safetensors|json|model|jinja|txt|tiktoken)$/;

interface CachedDigest {
  bytes: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
  sha256: string;
}

/** A Hub cache snapshot entry is a link to ../../blobs/<sha256> for LFS files; the name is then the content's digest. */
async function blobDigest(path: string): Promise<string | undefined> {
  try {
    const target = await readlink(path);
    const name = basename(target);
    return /^[0-9a-f]{64}$/.test(name) && basename(resolve(path, "..", target, "..")) === "blobs" ? name : undefined;
  } catch {
    return undefined;
  }
}

export async function modelIdentity(params: { modelDir: string; source?: ModelSource; cacheFile?: string }): Promise<ModelIdentity> {
  const cache: Record<string, CachedDigest> = {};
  if (params.cacheFile && existsSync(params.cacheFile)) {
    try {
      Object.assign(cache, JSON.parse(readFileSync(params.cacheFile, "utf8")) as Record<string, CachedDigest>);
    } catch {
      // An unreadable cache only costs a re-hash.
    }
  }
  const fromHub = params.source?.commit !== undefined;
  const files: ModelIdentity["files"] = [];
  const entries = (await readdir(params.modelDir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
  const toHash: { file: ModelIdentity["files"][number]; path: string; digest: CachedDigest }[] = [];
  for (const entry of entries) {
    if (entry.name.startsWith(".") || OWN_FILES.has(entry.name) || !RELEVANT.test(entry.name)) continue;
    const path = join(params.modelDir, entry.name);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) continue;
    const hubDigest = fromHub ? await blobDigest(path) : undefined;
    const cached = cache[resolve(path)];
    const file = { name: entry.name, bytes: info.size, sha256: "" };
    if (hubDigest) file.sha256 = hubDigest;
    else if (cached && cached.bytes === info.size && cached.mtimeMs === info.mtimeMs && cached.ctimeMs === info.ctimeMs && cached.ino === info.ino) file.sha256 = cached.sha256;
    else toHash.push({ file, path, digest: { bytes: info.size, mtimeMs: info.mtimeMs, ctimeMs: info.ctimeMs, ino: info.ino, sha256: "" } });
    files.push(file);
  }
  // The files not hashed before, on every core at once (sha256-files.ts).
  const digests = await sha256Files(toHash.map(({ path, file }) => ({ path, bytes: file.bytes })));
  toHash.forEach(({ file, path, digest }, i) => {
    file.sha256 = digest.sha256 = digests[i];
    cache[resolve(path)] = digest;
  });
  const cacheChanged = toHash.length > 0;
  if (params.cacheFile && cacheChanged) await replaceFileAtomically(params.cacheFile, `${JSON.stringify(cache, null, 2)}\n`);
  const revision = fromHub ? { repo: params.source?.repo, commit: params.source?.commit } : undefined;
  return { key: stageKey({ files, revision }), files, ...(revision ? { revision } : {}) };
}
