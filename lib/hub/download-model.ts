/**
 * Downloads what a surgery output needs from a Hub model repo into the shared cache and returns the snapshot
 * folder. Metadata comes through @huggingface/hub (modelInfo for the commit, listFiles for sizes and hashes,
 * fileDownloadInfo for the download URL); the bytes go through downloadBlob, which resumes and verifies, since
 * the library's downloadFileToCacheDir neither resumes, nor checks hashes, nor writes refs/, names snapshots after
 * each file's last commit instead of the repo's commit, and prints to stdout.
 * Nothing the Hub says is trusted as a file name: the listing is checked whole (safe-repo-path.ts) and the
 * indexes' weight_maps are checked against it before a single pointer is linked, and refs/<revision> is written
 * last, once every file is in place, so a refused or failed download never looks like a usable snapshot.
 */
import { readFile, rmdir, rm } from "node:fs/promises";
import { listFiles, modelInfo } from "@huggingface/hub";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { repoCachePaths } from "./cache-paths.js";
import { findCachedSnapshot, requireCachedSnapshot } from "./cached-snapshot.js";
import { existingSize, fetchIntoCache, linkPointer, writeRevisionRef, type CacheFile } from "./cache-file.js";
import { EventChannel } from "../event-channel.js";
import { hubEndpoint, isHubOffline } from "./hub-endpoint.js";
import { toHubError, type HubErrorContext } from "./hub-errors.js";
import { HubHttp, type RetryInfo } from "./hub-http.js";
import { checkListedEntry, checkRevision, describePath } from "./safe-repo-path.js";
import { selectModelFiles, shardsOfIndex } from "./select-model-files.js";

export interface DownloadModelParams {
  repo: string;
  /** Branch, tag, refs/pr/N or commit; default "main". */
  revision?: string;
  token?: string;
  /** Cache root; default HF_HUB_CACHE / HF_HOME/hub / ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** Default: HF_HUB_OFFLINE. */
  offline?: boolean;
  /** Default: HF_ENDPOINT or https://huggingface.co. */
  endpoint?: string;
}

export type DownloadEvent =
  | { type: "resolved"; repo: string; revision: string; commit: string; files: number; bytesToDownload: number; bytesCached: number }
  | { type: "progress"; file: string; bytesDone: number; bytesTotal: number }
  | { type: "file-done"; file: string; bytes: number; cached: boolean }
  | { type: "retry"; url: string; attempt: number; delayMs: number; reason: string }
  | { type: "waiting"; url: string; seconds: number }
  | { type: "resume"; file: string; attempt: number; fromByte: number; reason: string }
  | { type: "offline"; reason: string };

export interface DownloadResult {
  /** The snapshot folder: snapshots/<commit>/ in the cache. */
  dir: string;
  repo: string;
  revision: string;
  commit: string;
  /** True when the network was not used. */
  offline: boolean;
}

type RemoteFile = CacheFile;

export async function* downloadModel(params: DownloadModelParams): AsyncGenerator<DownloadEvent, DownloadResult> {
  const { repo } = params;
  const revision = params.revision ?? "main";
  checkRevision(revision);
  const endpoint = params.endpoint ?? hubEndpoint();
  if (params.offline ?? isHubOffline()) {
    const cached = requireCachedSnapshot({ repo, revision, cacheDir: params.cacheDir });
    return { dir: cached.dir, repo, revision, commit: cached.commit, offline: true };
  }

  const events = new EventChannel<DownloadEvent>();
  const http = new HubHttp({ onRetry: (info: RetryInfo) => events.push({ type: "retry", ...info }), onWaiting: (info) => events.push({ type: "waiting", ...info }) });
  const context: HubErrorContext = { repo, revision, endpoint, token: params.token, action: "download", http };
  const credentials = { accessToken: params.token, hubUrl: endpoint, fetch: http.fetch };
  const paths = repoCachePaths({ repo, cacheDir: params.cacheDir });

  let commit: string;
  try {
    commit = (yield* events.until(modelInfo({ name: repo, revision, additionalFields: ["sha"], ...credentials }))).sha;
  } catch (error) {
    const translated = toHubError(error, context);
    // Like huggingface_hub: when the Hub cannot be reached at all, a complete cached snapshot still serves.
    if (translated.status === undefined && translated.code === ErrorCodes.HUB) {
      const cached = findCachedSnapshot({ repo, revision, cacheDir: params.cacheDir });
      if (!("missing" in cached)) {
        yield { type: "offline", reason: translated.message };
        return { dir: cached.dir, repo, revision, commit: cached.commit, offline: true };
      }
    }
    throw translated;
  }
  if (typeof commit !== "string" || !/^[0-9a-f]{40}$/.test(commit)) {
    throw new AbliterateError(ErrorCodes.HUB, `the Hub answered no commit for ${repo}@${revision}`);
  }
  const listing = new Map<string, RemoteFile>();
  try {
    const collect = async () => {
      for await (const entry of listFiles({ repo, revision: commit, recursive: true, ...credentials })) {
        const file = checkListedEntry(entry, `${repo}@${revision}`);
        if (!file) continue;
        if (listing.has(file.path)) {
          throw new AbliterateError(ErrorCodes.HUB_UNSAFE_LISTING, `the Hub's file listing of ${repo}@${revision} names ${describePath(file.path)} twice; the repo was refused and nothing was written to the cache`);
        }
        listing.set(file.path, {
          path: file.path,
          size: file.size,
          etag: file.etag,
          expected: file.lfs ? { size: file.lfs.size, hash: file.lfs.oid, algorithm: "sha256" } : { size: file.size, hash: file.etag, algorithm: "git-sha1" },
        });
      }
    };
    yield* events.until(collect());
  } catch (error) {
    throw toHubError(error, context);
  }

  const selection = selectModelFiles([...listing.keys()], `${repo}@${revision}`);
  /** Into blobs/ (verified); answers whether it was downloaded now. Linking is left to the caller. */
  const fetchBlob = async function* (file: RemoteFile, done: { bytes: number }, total: number): AsyncGenerator<DownloadEvent, boolean> {
    const blob = paths.blob(file.etag);
    if ((await existingSize(blob)) !== file.size) {
      const start = done.bytes;
      const work = fetchIntoCache({
        paths,
        repo: { type: "model", name: repo },
        commit,
        file,
        token: params.token,
        endpoint,
        http,
        onBytes: (onDisk) => {
          done.bytes = start + onDisk;
          events.push({ type: "progress", file: file.path, bytesDone: done.bytes, bytesTotal: total }, (queued) => queued.type === "progress");
        },
        onResume: ({ attempt, from, reason }) => events.push({ type: "resume", file: file.path, attempt, fromByte: from, reason }),
      });
      try {
        yield* events.until(work);
      } catch (error) {
        throw toHubError(error, { ...context, path: file.path });
      }
      done.bytes = start + file.size;
      return true;
    }
    return false;
  };
  const fetchFile = async function* (file: RemoteFile, done: { bytes: number }, total: number): AsyncGenerator<DownloadEvent> {
    if ((await existingSize(paths.pointer(commit, file.path))) === file.size) {
      yield { type: "file-done", file: file.path, bytes: file.size, cached: true };
      return;
    }
    yield* fetchBlob(file, done, total);
    await linkPointer(paths, commit, file);
    yield { type: "file-done", file: file.path, bytes: file.size, cached: false };
  };

  // Indexes first: they say which shards to fetch. Their weight_maps are checked before anything is linked; a
  // refused index takes back the blobs and folders this run made for it.
  const needed = selection.files.map((path) => listing.get(path)!);
  const indexFiles = selection.indexes.map((path) => listing.get(path)!);
  const counter = { bytes: 0 };
  const hadRepoDir = (await existingSize(paths.repoDir)) !== undefined;
  const hadBlobsDir = (await existingSize(paths.blobsDir)) !== undefined;
  const fetchedIndexes: string[] = [];
  try {
    for (const index of indexFiles) {
      if (yield* fetchBlob(index, counter, index.size)) fetchedIndexes.push(paths.blob(index.etag));
    }
    for (const index of indexFiles) {
      const blob = paths.blob(index.etag);
      for (const shard of shardsOfIndex(await readFile(blob, "utf8"), `${repo}@${revision}/${index.path}`)) {
        const file = listing.get(shard);
        if (!file) throw new AbliterateError(ErrorCodes.INDEX_INVALID, `${index.path} in ${repo}@${revision} names shard ${describePath(shard)}, which the repo does not have`);
        if (!needed.includes(file)) needed.push(file);
      }
    }
  } catch (error) {
    for (const blob of fetchedIndexes) await rm(blob, { force: true });
    if (!hadBlobsDir) await rmdir(paths.blobsDir).catch(() => undefined);
    if (!hadRepoDir) await rmdir(paths.repoDir).catch(() => undefined);
    throw error;
  }
  for (const index of indexFiles) {
    if ((await existingSize(paths.pointer(commit, index.path))) !== index.size) await linkPointer(paths, commit, index);
    yield { type: "file-done", file: index.path, bytes: index.size, cached: !fetchedIndexes.includes(paths.blob(index.etag)) };
  }

  let bytesCached = 0;
  let bytesToDownload = 0;
  for (const file of needed) {
    const cached = (await existingSize(paths.pointer(commit, file.path))) === file.size || (await existingSize(paths.blob(file.etag))) === file.size;
    if (cached) bytesCached += file.size;
    else bytesToDownload += file.size;
  }
  yield { type: "resolved", repo, revision, commit, files: needed.length + indexFiles.length, bytesToDownload, bytesCached };

  const progress = { bytes: 0 };
  for (const file of needed) yield* fetchFile(file, progress, bytesToDownload);
  await writeRevisionRef(paths, revision, commit);
  yield* events.drain();
  return { dir: paths.snapshot(commit), repo, revision, commit, offline: false };
}
