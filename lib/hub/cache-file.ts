/**
 * One file of a Hub repo (model or dataset) into the shared cache, as huggingface_hub lays it out: the bytes
 * into blobs/<etag> through downloadBlob (resumed, size and hash checked, Xet-aware), the pointer
 * snapshots/<commit>/<path> as a relative symlink to it, and refs/<revision> once everything is in place.
 * Both downloads (download-model.ts, download-dataset-files.ts) go through these, so the cache has one writer.
 */
import { mkdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import { dirname, relative } from "node:path";
import { fileDownloadInfo } from "@huggingface/hub";
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { HubRepo, RepoCachePaths } from "./cache-paths.js";
import { downloadBlob, type ExpectedBlob } from "./download-blob.js";
import type { HubHttp } from "./hub-http.js";
import { xetOpener } from "./xet-download.js";

export interface CacheFile {
  path: string;
  size: number;
  /** The blob's name: the LFS sha256, else the git blob sha1. */
  etag: string;
  expected: ExpectedBlob;
}

export interface FetchIntoCacheParams {
  paths: RepoCachePaths;
  repo: HubRepo;
  commit: string;
  file: CacheFile;
  token?: string;
  endpoint: string;
  http: HubHttp;
  onBytes?: (bytesOnDisk: number) => void;
  onResume?: (info: { attempt: number; from: number; reason: string }) => void;
}

export async function existingSize(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}

function sameOrigin(url: string, endpoint: string): boolean {
  try {
    return new URL(url).origin === new URL(endpoint).origin;
  } catch {
    return false;
  }
}

/** blobs/<etag>, downloaded unless it is there with the right size; answers whether it was downloaded now. */
export async function fetchIntoCache(params: FetchIntoCacheParams): Promise<boolean> {
  const { paths, repo, file } = params;
  const blob = paths.blob(file.etag);
  if ((await existingSize(blob)) === file.size) return false;
  await mkdir(paths.blobsDir, { recursive: true });
  const credentials = { accessToken: params.token, hubUrl: params.endpoint, fetch: params.http.fetch };
  const info = await fileDownloadInfo({ repo, path: file.path, revision: params.commit, ...credentials });
  const label = `${repo.type === "dataset" ? "dataset " : ""}${repo.name}`;
  if (!info) throw new AbliterateError(ErrorCodes.HUB_NOT_FOUND, `file ${file.path} not found in ${label}@${params.commit} (404)`);
  await downloadBlob({
    url: info.url,
    // The token goes to the Hub only: a CDN link on another host is signed, and needs no credential.
    headers: params.token && sameOrigin(info.url, params.endpoint) ? { Authorization: `Bearer ${params.token}` } : {},
    fetch: params.http.fetch,
    blobPath: blob,
    expected: file.expected,
    openXet: xetOpener(info, { token: params.token, fetch: params.http.fetch }),
    label: `${repo.name}/${file.path}`,
    delayMs: (attempt) => params.http.delayFor(attempt),
    onBytes: params.onBytes,
    onResume: params.onResume,
  });
  return true;
}

/** snapshots/<commit>/<path> → ../../blobs/<etag>, relative as huggingface_hub makes it. */
export async function linkPointer(paths: RepoCachePaths, commit: string, file: Pick<CacheFile, "path" | "etag">): Promise<string> {
  const pointer = paths.pointer(commit, file.path);
  await mkdir(dirname(pointer), { recursive: true });
  await rm(pointer, { force: true });
  await symlink(relative(dirname(pointer), paths.blob(file.etag)), pointer);
  return pointer;
}

/** refs/<revision> ← commit, for a branch or tag (a commit needs no ref). Written last. */
export async function writeRevisionRef(paths: RepoCachePaths, revision: string, commit: string): Promise<void> {
  if (revision === commit) return;
  await mkdir(dirname(paths.ref(revision)), { recursive: true });
  await writeFile(paths.ref(revision), commit);
}
