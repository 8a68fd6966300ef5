/**
 * Fetches the data files of one split of a Hub dataset (`org/name[:split]`) into the shared cache, laid out as
 * huggingface_hub does for datasets (`datasets--org--name/{blobs,snapshots,refs}`), so either tool reuses the
 * other's download. Metadata goes through @huggingface/hub; bytes through lib/hub's downloadBlob (resumable,
 * hash-checked). Offline (HF_HUB_OFFLINE), only the cache is read.
 */
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { datasetInfo, fileDownloadInfo, listFiles } from "@huggingface/hub";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { hubCacheRoot } from "./cache-paths.js";
import { downloadBlob } from "./download-blob.js";
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

function datasetCacheDir(repo: string, cacheDir?: string): string {
  return join(cacheDir ?? hubCacheRoot(), ["datasets", ...repo.split("/")].join("--"));
}

function cachedSplit(ref: DatasetRef, repoDir: string, revision: string): { files: string[]; commit: string } | undefined {
  const refFile = join(repoDir, "refs", ...revision.split("/"));
  const commit = /^[0-9a-f]{40}$/.test(revision) ? revision : existsSync(refFile) ? readFileSync(refFile, "utf8").trim() : undefined;
  if (!commit || !/^[0-9a-f]{40}$/.test(commit)) return undefined;
  const snapshot = join(repoDir, "snapshots", commit);
  if (!existsSync(snapshot)) return undefined;
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
  const repoDir = datasetCacheDir(ref.repo, params.cacheDir);
  if (params.offline ?? isHubOffline()) {
    const cached = cachedSplit(ref, repoDir, revision);
    if (!cached) {
      throw new AbliterateError(ErrorCodes.HUB_OFFLINE, `HF_HUB_OFFLINE is set and dataset ${ref.repo} (split ${ref.split}) is not in the cache ${repoDir}`);
    }
    return cached;
  }
  const endpoint = params.endpoint ?? hubEndpoint();
  const { token } = resolveHubToken({ explicit: params.token });
  const http = new HubHttp();
  const repo = { type: "dataset" as const, name: ref.repo };
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
      const blob = join(repoDir, "blobs", file.etag);
      const pointer = join(repoDir, "snapshots", commit, ...path.split("/"));
      if (!existsSync(blob) || statSync(blob).size !== file.size) {
        await mkdir(dirname(blob), { recursive: true });
        const info = await fileDownloadInfo({ repo, path, revision: commit, ...credentials });
        if (!info) throw new AbliterateError(ErrorCodes.HUB_NOT_FOUND, `file ${path} not found in dataset ${ref.repo}@${commit} (404)`);
        await downloadBlob({
          url: info.url,
          headers: token && new URL(info.url).origin === new URL(endpoint).origin ? { Authorization: `Bearer ${token}` } : {},
          fetch: http.fetch,
          blobPath: blob,
          expected: file.lfs ? { size: file.size, hash: file.lfs.oid, algorithm: "sha256" } : { size: file.size, hash: file.etag, algorithm: "git-sha1" },
          label: `${ref.repo}/${path}`,
          delayMs: (attempt) => http.delayFor(attempt),
        });
      }
      await mkdir(dirname(pointer), { recursive: true });
      await rm(pointer, { force: true });
      await symlink(relative(dirname(pointer), blob), pointer);
      files.push(pointer);
    }
    if (revision !== commit) {
      const refFile = join(repoDir, "refs", ...revision.split("/"));
      await mkdir(dirname(refFile), { recursive: true });
      await writeFile(refFile, commit);
    }
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
      const cached = cachedSplit(ref, repoDir, revision);
      if (cached) return cached;
      message = `${message.replace(/; if the model is already in the cache.*$/s, "")}, and the cache ${repoDir} does not hold its split "${ref.split}"`;
    }
    throw new AbliterateError(translated.code, `dataset ${ref.repo}: ${message}`, { status: translated.status, cause: translated });
  }
}
