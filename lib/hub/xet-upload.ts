/**
 * Uploads large files through Xet, following the upload protocol (huggingface.co/docs/xet/upload-protocol):
 * content-defined chunks and their hashes (@huggingface/xetchunk-wasm, the chunker @huggingface/hub uses),
 * deduplication against this upload and against the CAS (global dedup queries), new chunks packed into xorbs of
 * at most 64 MiB, one xorb in memory at a time, and a shard that registers the files (terms, verification
 * hashes, sha256). Each file is read once, in 1 MiB pieces: memory does not grow with file or model size.
 *
 * Why not @huggingface/hub 2.17.5's own Xet path: it asks the dedup index about a file's first chunk only, so a
 * shard that opens with an edited tensor (the embedding, in every Llama-style checkpoint) is uploaded whole
 * (measured: 143.6 % of the changed bytes in test/e2e/hub-xet.test.ts), and its `edit` operation, which would
 * prime the dedup cache from the base file, streams through a SplicedBlob that reads ahead without
 * backpressure (the whole file ends up in memory). Here the index is asked about the base file's first chunk
 * when the base is on disk, the upload's first chunk, and every eligible chunk (hash ≡ 0 mod 1024) at most every
 * 4 MiB, as the spec recommends.
 */
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { createChunker, fileHash, finalize, hashToHex, hmac, nextBlock, verificationHash, xorbHash, type Chunk } from "@huggingface/xetchunk-wasm";
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { DiskFileBlob } from "./disk-file-blob.js";
import { MAX_SHARD_BYTES, fileInfoBytes, keyedChunkKey, parseDedupShard, serializeShard, xorbInfoBytes, type DedupShard, type ShardFileOut, type ShardTermOut, type ShardXorbOut } from "./xet-shard.js";

const MAX_XORB_BYTES = 64 * 1024 * 1024;
const MAX_XORB_CHUNKS = 8 * 1024;
const DEDUP_QUERY_SPACING = 4 * 1024 * 1024;
const FIRST_CHUNK_PROBE = 128 * 1024;
/** Dedup answers kept: each is looked up with its own HMAC key for every chunk, so the newest few (as xet-core). */
const MAX_DEDUP_SHARDS = 32;

export interface XetGrant {
  casUrl: string;
  accessToken: string;
}

export interface XetUploadFile {
  path: string;
  blob: DiskFileBlob;
  /** The same file in the base model, on disk: its first chunk is what the dedup index knows the base by. */
  base?: DiskFileBlob;
}

export interface XetUploadedFile {
  path: string;
  size: number;
  sha256: string;
  xetHash: string;
}

export interface XetUploadParams {
  files: XetUploadFile[];
  grant: XetGrant;
  fetch: typeof fetch;
  /** Bytes of the files read and processed so far. */
  onProgress?: (bytesDone: number) => void;
}

interface XorbRef {
  hash?: string;
}

interface PlacedChunk {
  xorb: XorbRef | string;
  index: number;
}

/** One xorb being filled: chunks serialized uncompressed (scheme 0, allowed by the spec). */
class XorbBuilder {
  readonly ref: XorbRef = {};
  readonly chunks: Chunk[] = [];
  private readonly buffer: Buffer;
  size = 0;

  constructor(buffer: Buffer) {
    this.buffer = buffer;
  }

  fits(length: number): boolean {
    return this.chunks.length < MAX_XORB_CHUNKS && this.size + 8 + length <= MAX_XORB_BYTES;
  }

  add(chunk: Chunk, data: Buffer): number {
    const at = this.size;
    const length = data.length;
    this.buffer[at] = 0;
    this.buffer[at + 1] = length & 0xff;
    this.buffer[at + 2] = (length >> 8) & 0xff;
    this.buffer[at + 3] = (length >> 16) & 0xff;
    this.buffer[at + 4] = 0;
    this.buffer[at + 5] = length & 0xff;
    this.buffer[at + 6] = (length >> 8) & 0xff;
    this.buffer[at + 7] = (length >> 16) & 0xff;
    data.copy(this.buffer, at + 8);
    this.size += 8 + length;
    this.chunks.push(chunk);
    return this.chunks.length - 1;
  }

  body(): Uint8Array {
    return this.buffer.subarray(0, this.size);
  }
}

/** Takes chunk-sized pieces off the front of the stream's buffers. */
class PendingBytes {
  private readonly parts: Buffer[] = [];

  push(part: Buffer): void {
    this.parts.push(part);
  }

  take(length: number): Buffer {
    const first = this.parts[0];
    if (first && first.length >= length) {
      this.parts[0] = first.subarray(length);
      if (this.parts[0].length === 0) this.parts.shift();
      return first.subarray(0, length);
    }
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const part = this.parts[0];
      const n = Math.min(part.length, length - done);
      part.copy(out, done, 0, n);
      done += n;
      if (n === part.length) this.parts.shift();
      else this.parts[0] = part.subarray(n);
    }
    return out;
  }
}

/** The last 8 bytes as a little-endian u64, ≡ 0 mod 1024: the chunks the global dedup index tracks. */
function isEligible(hash: Uint8Array): boolean {
  return ((hash[24] | (hash[25] << 8)) & 1023) === 0;
}

async function firstChunkHash(blob: DiskFileBlob): Promise<Uint8Array | undefined> {
  const handle = await open(blob.path, "r");
  try {
    const length = Math.min(FIRST_CHUNK_PROBE, blob.size);
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await handle.read(buffer, 0, length, blob.start);
    const chunker = createChunker();
    const chunks = nextBlock(chunker, buffer.subarray(0, bytesRead));
    return (chunks[0] ?? finalize(chunker) ?? undefined)?.hash;
  } finally {
    await handle.close();
  }
}

async function apiFailure(response: Response, what: string): Promise<AbliterateError> {
  let detail = "";
  try {
    const text = await response.text();
    detail = (JSON.parse(text) as { error?: string }).error ?? text.slice(0, 200);
  } catch {
    detail = "";
  }
  const code = response.status === 401 || response.status === 403 ? ErrorCodes.HUB_UNAUTHORIZED : ErrorCodes.HUB;
  return new AbliterateError(code, `the Xet storage refused ${what} (HTTP ${response.status}${detail ? `: ${detail}` : ""})`, { status: response.status });
}

export async function uploadThroughXet(params: XetUploadParams): Promise<XetUploadedFile[]> {
  const { grant } = params;
  const headers = () => ({ Authorization: `Bearer ${grant.accessToken}` });
  const session = new Map<string, PlacedChunk>();
  const remote: DedupShard[] = [];
  const askedAbout = new Set<string>();
  const newXorbs: ShardXorbOut[] = [];
  const buffer = Buffer.allocUnsafe(MAX_XORB_BYTES);
  let xorb = new XorbBuilder(buffer);
  let processed = 0;

  const query = async (hash: Uint8Array): Promise<void> => {
    const hex = hashToHex(hash);
    if (askedAbout.has(hex)) return;
    askedAbout.add(hex);
    const response = await params.fetch(`${grant.casUrl}/v1/chunks/default-merkledb/${hex}`, { headers: headers() });
    if (response.status === 404) {
      await response.body?.cancel().catch(() => undefined);
      return;
    }
    if (!response.ok) throw await apiFailure(response, "a deduplication query");
    remote.unshift(parseDedupShard(new Uint8Array(await response.arrayBuffer())));
    if (remote.length > MAX_DEDUP_SHARDS) remote.pop();
  };
  const lookup = (hash: Uint8Array): PlacedChunk | undefined => {
    const local = session.get(keyedChunkKey(hash));
    if (local) return local;
    for (const shard of remote) {
      const found = shard.chunks.get(keyedChunkKey(hmac(hash, shard.hmacKey)));
      if (found) return { xorb: found.xorb, index: found.index };
    }
    return undefined;
  };
  const flushXorb = async (): Promise<void> => {
    if (xorb.chunks.length === 0) return;
    const hash = hashToHex(xorbHash(xorb.chunks));
    const response = await params.fetch(`${grant.casUrl}/v1/xorbs/default/${hash}`, { method: "POST", headers: headers(), body: xorb.body() });
    if (!response.ok) throw await apiFailure(response, `xorb ${hash}`);
    await response.body?.cancel().catch(() => undefined);
    xorb.ref.hash = hash;
    newXorbs.push({ hash, chunks: xorb.chunks, bytesOnDisk: xorb.size });
    xorb = new XorbBuilder(buffer);
  };

  const files: (ShardFileOut & { path: string; size: number; placed: { chunk: Chunk; at: PlacedChunk }[] })[] = [];
  const uploaded: XetUploadedFile[] = [];
  for (const file of params.files) {
    if (file.base) {
      const baseFirst = await firstChunkHash(file.base);
      if (baseFirst) await query(baseFirst);
    }
    const sha = createHash("sha256");
    const chunker = createChunker();
    const pending = new PendingBytes();
    const placed: { chunk: Chunk; at: PlacedChunk }[] = [];
    let sinceQuery = Infinity;
    const place = async (chunk: Chunk) => {
      const data = pending.take(chunk.length);
      const first = placed.length === 0;
      let at = lookup(chunk.hash);
      if (!at && (first || isEligible(chunk.hash)) && sinceQuery >= DEDUP_QUERY_SPACING) {
        sinceQuery = 0;
        await query(chunk.hash);
        at = lookup(chunk.hash);
      }
      sinceQuery += chunk.length;
      if (!at) {
        if (!xorb.fits(chunk.length)) await flushXorb();
        at = { xorb: xorb.ref, index: xorb.add(chunk, data) };
        session.set(keyedChunkKey(chunk.hash), at);
      }
      placed.push({ chunk, at });
    };
    for await (const part of file.blob.nodeStream()) {
      const bytes = part as Buffer;
      sha.update(bytes);
      pending.push(bytes);
      for (const chunk of nextBlock(chunker, bytes)) await place(chunk);
      processed += bytes.length;
      params.onProgress?.(processed);
    }
    const last = finalize(chunker);
    if (last) await place(last);
    files.push({ path: file.path, size: file.blob.size, hash: hashToHex(fileHash(placed.map((p) => p.chunk))), sha256: sha.digest("hex"), terms: [], placed });
  }
  await flushXorb();

  // Terms: runs of consecutive chunks of one xorb. Every xorb hash is known now.
  for (const file of files) {
    const terms: ShardTermOut[] = [];
    let run: { xorb: string; start: number; end: number; chunks: Chunk[] } | undefined;
    const close = () => {
      if (!run) return;
      terms.push({ xorb: run.xorb, chunkStart: run.start, chunkEnd: run.end, unpacked: run.chunks.reduce((sum, chunk) => sum + chunk.length, 0), verification: verificationHash(run.chunks.map((chunk) => chunk.hash)) });
    };
    for (const { chunk, at } of file.placed) {
      const hex = typeof at.xorb === "string" ? at.xorb : at.xorb.hash!;
      if (run && run.xorb === hex && run.end === at.index) {
        run.end += 1;
        run.chunks.push(chunk);
      } else {
        close();
        run = { xorb: hex, start: at.index, end: at.index + 1, chunks: [chunk] };
      }
    }
    close();
    file.terms = terms;
    file.placed = [];
    uploaded.push({ path: file.path, size: file.size, sha256: file.sha256, xetHash: file.hash });
  }

  // One shard per ≤ 64 MiB of metadata; every xorb a shard lists is uploaded already.
  let batchFiles: ShardFileOut[] = [];
  let batchXorbs: ShardXorbOut[] = [];
  let batchBytes = 200;
  const sendShard = async () => {
    if (batchFiles.length === 0 && batchXorbs.length === 0) return;
    const response = await params.fetch(`${grant.casUrl}/v1/shards`, { method: "POST", headers: headers(), body: serializeShard(batchFiles, batchXorbs) });
    if (!response.ok) throw await apiFailure(response, "the shard registering the files");
    await response.body?.cancel().catch(() => undefined);
    batchFiles = [];
    batchXorbs = [];
    batchBytes = 200;
  };
  for (const item of newXorbs) {
    if (batchBytes + xorbInfoBytes(item) > MAX_SHARD_BYTES) await sendShard();
    batchXorbs.push(item);
    batchBytes += xorbInfoBytes(item);
  }
  for (const file of files) {
    if (batchBytes + fileInfoBytes(file) > MAX_SHARD_BYTES) await sendShard();
    batchFiles.push({ hash: file.hash, sha256: file.sha256, terms: file.terms });
    batchBytes += fileInfoBytes(file);
  }
  await sendShard();
  return uploaded;
}
