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
import { hubCacheRoot } from "../hub/cache-paths.js";
import { downloadBlob } from "../hub/download-blob.js";
import { hubEndpoint, isHubOffline } from "../hub/hub-endpoint.js";
import { toHubError } from "../hub/hub-errors.js";
import { HubHttp } from "../hub/hub-http.js";
import { isValidRepoId } from "../hub/parse-model-ref.js";
import { checkListedEntry, checkRevision } from "../hub/safe-repo-path.js";

export const DATA_FILE_EXTENSIONS = [".parquet", ".jsonl", ".json", ".csv", ".txt"];

export interface DatasetRef {
  repo: string;
  split: string;
}

/** `org/name` or `org/name:split` (default split "train"); undefined when `text` is not of that form. */
export function parseDatasetRef(text: string): DatasetRef | undefined {
  const match = /^([^:\s]+\/[^:\s]+?)(?::([A-Za-z0-9_.-]+))?$/.exec(text);
  if (!match || !isValidRepoId(match[1])) return undefined;
  return { repo: match[1], split: match[2] ?? "train" };
}

/** The data files of `split` among a repo's paths: those naming the split, else the only data file. */
export function splitFiles(paths: string[], ref: DatasetRef): string[] {
  const data = paths.filter((path) => DATA_FILE_EXTENSIONS.some((ext) => path.toLowerCase().endsWith(ext)) && !/(^|\/)\./.test(path));
  const named = data.filter((path) => path.split("/").some((part) => part === ref.split || part.startsWith(`${ref.split}-`) || part.startsWith(`${ref.split}.`)));
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
  try {
    return { files: splitFiles(paths, ref).map((path) => join(snapshot, ...path.split("/"))), commit };
  } catch {
    return undefined;
  }
}

export interface DownloadDatasetParams {
  ref: DatasetRef;
  revision?: string;
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
  const http = new HubHttp();
  const repo = { type: "dataset" as const, name: ref.repo };
  const credentials = { accessToken: params.token, hubUrl: endpoint, fetch: http.fetch };
  const context = { repo: ref.repo, revision, endpoint, token: params.token, action: "download" as const, http };
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
          headers: params.token && new URL(info.url).origin === new URL(endpoint).origin ? { Authorization: `Bearer ${params.token}` } : {},
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
    if (error instanceof AbliterateError) throw error;
    const translated = toHubError(error, context);
    if (translated.status === undefined && translated.code === ErrorCodes.HUB) {
      // Unreachable Hub: a complete cached copy still serves, as for models.
      const cached = cachedSplit(ref, repoDir, revision);
      if (cached) return cached;
    }
    throw new AbliterateError(translated.code, `dataset ${ref.repo}: ${translated.message}`, { status: translated.status, cause: error });
  }
}
