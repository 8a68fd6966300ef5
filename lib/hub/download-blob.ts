/**
 * One file into the cache's blobs/ folder, the way huggingface_hub does it and a little stricter:
 * bytes go to `blobs/<etag>.incomplete`; an interrupted transfer resumes with a Range request from what is
 * already on disk (or restarts when the server ignores the range); the finished file must have the announced
 * size and hash (sha256 for LFS files, the git blob sha1 otherwise) before it is renamed to `blobs/<etag>`.
 * A blob in the cache is therefore always complete and correct.
 */
import { createHash, type Hash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, rename, rm, stat } from "node:fs/promises";
import { HubApiError } from "@huggingface/hub";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { displayUrl, HubNetworkError } from "./hub-http.js";

export interface ExpectedBlob {
  size: number;
  /** sha256 hex for LFS files; the git blob sha1 hex for regular files. */
  hash: string;
  algorithm: "sha256" | "git-sha1";
}

export interface DownloadBlobParams {
  /** Where the bytes are (the resolved download URL). */
  url: string;
  headers: Record<string, string>;
  fetch: typeof fetch;
  blobPath: string;
  expected: ExpectedBlob;
  /** Repo path, for messages. */
  label: string;
  /** How many interrupted transfers to resume before giving up. */
  maxResumes?: number;
  delayMs?: (attempt: number) => number;
  onBytes?: (bytesOnDisk: number) => void;
  onResume?: (info: { attempt: number; from: number; reason: string }) => void;
  /**
   * A Xet-backed file: the bytes from offset `from` on, rebuilt from the CAS (reconstruction, then xorb ranges),
   * instead of a GET of `url`. Resuming asks for the rest from the bytes already on disk, as with a Range.
   */
  openXet?: (from: number) => ReadableStream<Uint8Array>;
}

function newHasher(expected: ExpectedBlob): Hash {
  const hash = createHash(expected.algorithm === "sha256" ? "sha256" : "sha1");
  // git hashes "blob <size>\0" + content; the size is known up front.
  if (expected.algorithm === "git-sha1") hash.update(`blob ${expected.size}\0`);
  return hash;
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** Hashes the first `length` bytes already on disk (a resumed partial file from an earlier run). */
async function hashPrefix(path: string, length: number, hash: Hash): Promise<void> {
  if (length === 0) return;
  for await (const chunk of createReadStream(path, { start: 0, end: length - 1 })) hash.update(chunk as Buffer);
}

class TransferInterrupted extends Error {}

/** The library's error type for a failed response, so hub-errors.ts translates it like any other call. */
async function apiError(response: Response): Promise<HubApiError> {
  let message = `Api error with status ${response.status}`;
  let data: Record<string, unknown> | undefined;
  try {
    const text = await response.text();
    data = JSON.parse(text) as Record<string, unknown>;
    if (typeof data.error === "string") message = data.error;
  } catch {
    data = undefined;
  }
  const error = new HubApiError(response.url, response.status, response.headers.get("X-Request-Id") ?? undefined, message);
  if (data) error.data = data as HubApiError["data"];
  return error;
}

export async function downloadBlob(params: DownloadBlobParams): Promise<void> {
  const { expected, blobPath, label } = params;
  const incomplete = `${blobPath}.incomplete`;
  const maxResumes = params.maxResumes ?? 5;
  let restartedForIntegrity = false;
  let resumes = 0;

  for (;;) {
    let onDisk = await sizeOf(incomplete);
    if (onDisk > expected.size) {
      await rm(incomplete, { force: true });
      onDisk = 0;
    }
    let hash = newHasher(expected);
    await hashPrefix(incomplete, onDisk, hash);

    try {
      if (onDisk < expected.size) ({ size: onDisk, hash } = await transfer(params, incomplete, onDisk, hash));
    } catch (error) {
      if (!(error instanceof TransferInterrupted) || resumes >= maxResumes) {
        if (error instanceof TransferInterrupted) {
          throw new AbliterateError(ErrorCodes.HUB, `download of ${label} from ${displayUrl(params.url)} kept failing after ${resumes} resumed attempts (${error.message}); run again to resume from ${onDisk} bytes`);
        }
        throw error;
      }
      resumes += 1;
      const from = await sizeOf(incomplete);
      params.onResume?.({ attempt: resumes, from, reason: error.message });
      await new Promise((resolve) => setTimeout(resolve, params.delayMs?.(resumes) ?? 0));
      continue;
    }

    const digest = hash.digest("hex");
    if (onDisk === expected.size && digest === expected.hash) {
      await rename(incomplete, blobPath);
      return;
    }
    // Never keep bytes that do not check out: start over once, then give up loudly.
    await rm(incomplete, { force: true });
    if (restartedForIntegrity) {
      throw new AbliterateError(
        ErrorCodes.HUB_INTEGRITY,
        `downloaded ${label} does not match the Hub's record: expected ${expected.size} bytes with ${expected.algorithm} ${expected.hash}, got ${onDisk} bytes with ${digest}; nothing was kept in the cache`,
        { file: blobPath },
      );
    }
    restartedForIntegrity = true;
  }
}

/** One HTTP transfer appending to the partial file; returns the bytes on disk and the hash covering them. */
async function transfer(params: DownloadBlobParams, incomplete: string, from: number, hash: Hash): Promise<{ size: number; hash: Hash }> {
  if (params.openXet) return writeStream(params, params.openXet(from), incomplete, from, hash);
  const headers: Record<string, string> = { ...params.headers };
  if (from > 0) headers.Range = `bytes=${from}-`;
  let response: Response;
  try {
    response = await params.fetch(params.url, { headers });
  } catch (error) {
    // The Hub's fetch already retried the connection; resuming on top would multiply its retry budget.
    if (error instanceof HubNetworkError) throw error;
    throw new TransferInterrupted(String((error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message));
  }
  if (response.status === 416 && from > 0) {
    // Our partial file does not fit the server's object: drop it and start over.
    await response.body?.cancel();
    await rm(incomplete, { force: true });
    throw new TransferInterrupted("range not satisfiable");
  }
  if (!response.ok) throw await apiError(response);

  let position = from;
  let digest = hash;
  if (from > 0 && response.status === 200) {
    // The server ignored the range and sends the whole file: start the file and the hash over.
    position = 0;
    digest = newHasher(params.expected);
  } else if (from > 0) {
    const range = /^bytes (\d+)-\d+\/\d+$/.exec(response.headers.get("Content-Range") ?? "");
    if (!range || Number(range[1]) !== from) {
      await response.body?.cancel();
      await rm(incomplete, { force: true });
      throw new TransferInterrupted(`unexpected Content-Range ${response.headers.get("Content-Range")}`);
    }
  }
  if (!response.body) throw new TransferInterrupted("empty response body");
  return writeStream(params, response.body, incomplete, position, digest);
}

/** Appends a stream to the partial file from `position`, hashing as it goes. */
async function writeStream(params: DownloadBlobParams, body: ReadableStream<Uint8Array>, incomplete: string, start: number, hash: Hash): Promise<{ size: number; hash: Hash }> {
  let position = start;
  const digest = hash;
  const file = await open(incomplete, position === 0 ? "w" : "a");
  try {
    const reader = body.getReader();
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (error) {
        // The CAS said no (a HubApiError from the reconstruction or a xorb range): not something a resume fixes.
        if (error instanceof HubApiError || error instanceof HubNetworkError) throw error;
        throw new TransferInterrupted(String((error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message));
      }
      if (chunk.done) break;
      await file.write(chunk.value);
      digest.update(chunk.value);
      position += chunk.value.length;
      params.onBytes?.(position);
      if (position > params.expected.size) {
        await reader.cancel();
        break;
      }
    }
  } finally {
    await file.close();
  }
  if (position < params.expected.size) throw new TransferInterrupted(`connection closed after ${position} of ${params.expected.size} bytes`);
  return { size: position, hash: digest };
}
