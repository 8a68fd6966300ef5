/**
 * Fetches the data files of one split of a Hub dataset (`org/name[:split]`) into the shared cache, laid out as
 * huggingface_hub does for datasets (`datasets--org--name/{blobs,snapshots,refs}`), so either tool reuses the
 * other's download. A thin caller of the code models use: the repo is `{ type: "dataset", name }` for the cache
 * paths (cache-paths.ts), the snapshot lookup (cached-snapshot.ts) and the download (cache-file.ts: resumable,
 * hash-checked, Xet-aware). What is dataset-specific here is only which files make up a split. Offline
 * (HF_HUB_OFFLINE), only the cache is read.
 */
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { datasetInfo, listFiles } from "@huggingface/hub";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { repoCachePaths, type HubRepo } from "./cache-paths.js";
import { fetchIntoCache, linkPointer, writeRevisionRef } from "./cache-file.js";
import { findSnapshotFolder } from "./cached-snapshot.js";
import { hubEndpoint, isHubOffline } from "./hub-endpoint.js";
import { toHubError } from "./hub-errors.js";
import { HubHttp, HubNetworkError } from "./hub-http.js";
import { resolveHubToken } from "./hub-token.js";
import { isValidRepoId } from "./parse-model-ref.js";
import { checkListedEntry, checkRevision } from "./safe-repo-path.js";

export const DATA_FILE_EXTENSIONS = [".parquet", ".jsonl", ".json", ".csv", ".txt"];

export interface DatasetRef {
  repo: string;
  split: string;
  /** Rows [start, end) of the split, from `split[start:end]` as in the datasets library. */
  slice?: { start?: number; end?: number };
}

/**
 * `org/name`, `org/name:split` (default split "train") or `org/name:split[start:end]` (either bound may be left
 * out); undefined when `text` is not of that form.
 */
export function parseDatasetRef(text: string): DatasetRef | undefined {
  const match = /^([^:\s]+\/[^:\s]+?)(?::([A-Za-z0-9_.-]+)(?:\[(\d*):(\d*)\])?)?$/.exec(text);
  if (!match || !isValidRepoId(match[1])) return undefined;
  const ref: DatasetRef = { repo: match[1], split: match[2] ?? "train" };
  if (match[3] || match[4]) {
    ref.slice = { ...(match[3] ? { start: Number(match[3]) } : {}), ...(match[4] ? { end: Number(match[4]) } : {}) };
  }
  return ref;
}

/** `split` or `split[start:end]`, as the user would write it. */
export function splitLabel(ref: DatasetRef): string {
  return ref.slice ? `${ref.split}[${ref.slice.start ?? ""}:${ref.slice.end ?? ""}]` : ref.split;
}

/** Split names the datasets library recognizes in file and folder names. */
const KNOWN_SPLITS = ["train", "test", "validation", "valid", "dev", "eval"];

/** `data/train-00000-of-00001.parquet`, `train/0000.parquet`, `train.csv` name the split train. */
function namesSplit(path: string, split: string): boolean {
  return path.split("/").some((part) => part === split || part.startsWith(`${split}-`) || part.startsWith(`${split}.`));
}

/** The data files of `split` among a repo's paths: those naming the split, else the only data file. */
export function splitFiles(paths: string[], ref: DatasetRef): string[] {
  const data = paths.filter((path) => DATA_FILE_EXTENSIONS.some((ext) => path.toLowerCase().endsWith(ext)) && !/(^|\/)\./.test(path));
  const named = data.filter((path) => namesSplit(path, ref.split));
  if (named.length > 0) return named.sort();
  if (data.length === 1 && ref.split === "train") return data;
  throw new AbliterateError(
    ErrorCodes.HUB_NOT_FOUND,
    `dataset ${ref.repo} has no data file for split "${ref.split}" (data files: ${data.slice(0, 10).join(", ") || "none"}); name the split as ${ref.repo}:SPLIT`,
  );
}

function cachedSplit(ref: DatasetRef, repo: HubRepo, revision: string, cacheDir: string | undefined): { files: string[]; commit: string } | undefined {
  const found = findSnapshotFolder({ repo, revision, cacheDir });
  if ("missing" in found) return undefined;
  const { dir: snapshot, commit } = found;
  const paths: string[] = [];
  const walk = (dir: string, prefix: string) => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (!existsSync(full)) continue;
      if (statSync(full).isDirectory()) walk(full, `${prefix}${name}/`);
      else paths.push(`${prefix}${name}`);
    }
  };
  walk(snapshot, "");
  let files: string[];
  try {
    files = splitFiles(paths, ref);
  } catch {
    return undefined;
  }
  // A snapshot holds only what was fetched, so "the only data file" may be another split's: train must not be
  // answered with the test file a previous run fetched.
  const foreign = files.some((path) => !namesSplit(path, ref.split) && KNOWN_SPLITS.some((other) => other !== ref.split && namesSplit(path, other)));
  if (foreign) return undefined;
  return { files: files.map((path) => join(snapshot, ...path.split("/"))), commit };
}

export interface DownloadDatasetParams {
  ref: DatasetRef;
  revision?: string;
  /** Else HF_TOKEN, HUGGING_FACE_HUB_TOKEN or the token file, as for models. */
  token?: string;
  cacheDir?: string;
  offline?: boolean;
  endpoint?: string;
}

/** Local paths of the split's data files, and the dataset commit they come from. */
export async function downloadDatasetFiles(params: DownloadDatasetParams): Promise<{ files: string[]; commit: string }> {
  const { ref } = params;
  const revision = params.revision ?? "main";
  checkRevision(revision);
  const repo: HubRepo = { type: "dataset", name: ref.repo };
  const paths = repoCachePaths({ repo, cacheDir: params.cacheDir });
  const repoDir = paths.repoDir;
  if (params.offline ?? isHubOffline()) {
    const cached = cachedSplit(ref, repo, revision, params.cacheDir);
    if (!cached) {
      throw new AbliterateError(ErrorCodes.HUB_OFFLINE, `HF_HUB_OFFLINE is set and dataset ${ref.repo} (split ${ref.split}) is not in the cache ${repoDir}`);
    }
    return cached;
  }
  const endpoint = params.endpoint ?? hubEndpoint();
  const { token } = resolveHubToken({ explicit: params.token });
  const http = new HubHttp();
  const credentials = { accessToken: token, hubUrl: endpoint, fetch: http.fetch };
  const context = { repo: ref.repo, revision, endpoint, token, action: "download" as const, http };
  try {
    const commit = (await datasetInfo({ name: ref.repo, revision, additionalFields: ["sha"], ...credentials })).sha;
    if (typeof commit !== "string" || !/^[0-9a-f]{40}$/.test(commit)) throw new AbliterateError(ErrorCodes.HUB, `the Hub answered no commit for dataset ${ref.repo}@${revision}`);
    const listing = new Map<string, NonNullable<ReturnType<typeof checkListedEntry>>>();
    for await (const entry of listFiles({ repo, revision: commit, recursive: true, ...credentials })) {
      const file = checkListedEntry(entry, `dataset ${ref.repo}@${revision}`);
      if (file) listing.set(file.path, file);
    }
    const wanted = splitFiles([...listing.keys()], ref);
    const files: string[] = [];
    for (const path of wanted) {
      const file = listing.get(path)!;
      const expected = file.lfs ? { size: file.size, hash: file.lfs.oid, algorithm: "sha256" as const } : { size: file.size, hash: file.etag, algorithm: "git-sha1" as const };
      await fetchIntoCache({ paths, repo, commit, file: { path, size: file.size, etag: file.etag, expected }, token, endpoint, http });
      files.push(await linkPointer(paths, commit, file));
    }
    await writeRevisionRef(paths, revision, commit);
    return { files, commit };
  } catch (error) {
    // Our own refusals (a hostile listing, a missing split, bytes that do not check out) already say what is
    // wrong; a Hub that could not be reached is handled below, with the cache as the fallback.
    if (error instanceof AbliterateError && !(error instanceof HubNetworkError)) throw error;
    const translated = toHubError(error, context);
    // toHubError speaks of models: a dataset's page is under /datasets/.
    let message = translated.message.split(`${endpoint}/${ref.repo}`).join(`${endpoint}/datasets/${ref.repo}`);
    if (translated.status === undefined && translated.code === ErrorCodes.HUB) {
      // Unreachable Hub: a complete cached copy still serves, as for models.
      const cached = cachedSplit(ref, repo, revision, params.cacheDir);
      if (cached) return cached;
      message = `${message.replace(/; if the model is already in the cache.*$/s, "")}, and the cache ${repoDir} does not hold its split "${ref.split}"`;
    }
    throw new AbliterateError(translated.code, `dataset ${ref.repo}: ${message}`, { status: translated.status, cause: translated });
  }
}
