/**
 * The shard format on the client side (huggingface.co/docs/xet/shard): serializing the shard that registers an
 * upload's files and new xorbs, and reading the CAS info of the shards the global dedup API answers with.
 * Hashes travel as 32 raw bytes; their string form (API paths) swaps each 8-byte word (hashToHex).
 */
import { hashToHex, hexToBytes } from "@huggingface/xetchunk-wasm";

const TAG = Uint8Array.from([..."HFRepoMetaData"].map((c) => c.charCodeAt(0)).concat([0, 85, 105, 103, 69, 106, 123, 129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169]));
const WITH_VERIFICATION = 0x80000000;
const WITH_METADATA_EXT = 0x40000000;
export const MAX_SHARD_BYTES = 64 * 1024 * 1024;

export interface ShardTermOut {
  xorb: string;
  chunkStart: number;
  chunkEnd: number;
  unpacked: number;
  verification: Uint8Array;
}

export interface ShardFileOut {
  hash: string;
  sha256: string;
  terms: ShardTermOut[];
}

export interface ShardXorbOut {
  hash: string;
  chunks: { hash: Uint8Array; length: number }[];
  bytesOnDisk: number;
}

/** Bytes one file adds to a shard. */
export function fileInfoBytes(file: ShardFileOut): number {
  return 48 + file.terms.length * 96 + 48;
}

export function xorbInfoBytes(xorb: ShardXorbOut): number {
  return 48 * (1 + xorb.chunks.length);
}

/** The upload shard: header, file info (with verification entries and the sha256 extension), CAS info, no footer. */
export function serializeShard(files: ShardFileOut[], xorbs: ShardXorbOut[]): Uint8Array {
  const size = 48 + files.reduce((sum, file) => sum + fileInfoBytes(file), 0) + 48 + xorbs.reduce((sum, xorb) => sum + xorbInfoBytes(xorb), 0) + 48;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out.set(TAG, 0);
  view.setBigUint64(32, 2n, true);
  view.setBigUint64(40, 0n, true);
  let at = 48;
  for (const file of files) {
    out.set(hexToBytes(file.hash), at);
    view.setUint32(at + 32, (WITH_VERIFICATION | WITH_METADATA_EXT) >>> 0, true);
    view.setUint32(at + 36, file.terms.length, true);
    at += 48;
    for (const term of file.terms) {
      out.set(hexToBytes(term.xorb), at);
      view.setUint32(at + 36, term.unpacked, true);
      view.setUint32(at + 40, term.chunkStart, true);
      view.setUint32(at + 44, term.chunkEnd, true);
      at += 48;
    }
    for (const term of file.terms) {
      out.set(term.verification, at);
      at += 48;
    }
    // The sha256 is kept as a hash of the format: its string form is the hex digest.
    out.set(hexToBytes(file.sha256), at);
    at += 48;
  }
  out.fill(0xff, at, at + 32);
  at += 48;
  for (const xorb of xorbs) {
    out.set(hexToBytes(xorb.hash), at);
    view.setUint32(at + 36, xorb.chunks.length, true);
    view.setUint32(at + 40, xorb.chunks.reduce((sum, chunk) => sum + chunk.length, 0), true);
    view.setUint32(at + 44, xorb.bytesOnDisk, true);
    at += 48;
    let offset = 0;
    for (const chunk of xorb.chunks) {
      out.set(chunk.hash, at);
      view.setUint32(at + 32, offset, true);
      view.setUint32(at + 36, chunk.length, true);
      offset += chunk.length;
      at += 48;
    }
  }
  out.fill(0xff, at, at + 32);
  return out;
}

export interface DedupShard {
  hmacKey: Uint8Array;
  /** Keyed chunk hash (hex of the raw bytes) → where that chunk is. */
  chunks: Map<string, { xorb: string; index: number }>;
}

const rawHex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex");

export function keyedChunkKey(bytes: Uint8Array): string {
  return rawHex(bytes);
}

/** The CAS info of a global dedup answer; throws on a shard it cannot read. */
export function parseDedupShard(shard: Uint8Array): DedupShard {
  const view = new DataView(shard.buffer, shard.byteOffset, shard.byteLength);
  if (shard.length < 48 + 200 || !TAG.every((byte, i) => shard[i] === byte)) throw new Error("not a shard");
  const footerSize = Number(view.getBigUint64(40, true));
  if (footerSize < 104 || footerSize > shard.length - 48) throw new Error("dedup shard without a footer");
  const footer = shard.length - footerSize;
  const hmacKey = shard.slice(footer + 72, footer + 104);
  const bookend = (at: number) => shard.subarray(at, at + 32).every((byte) => byte === 0xff);
  let at = Number(view.getBigUint64(footer + 16, true));
  const chunks = new Map<string, { xorb: string; index: number }>();
  while (at + 48 <= footer && !bookend(at)) {
    const xorb = hashToHex(shard.subarray(at, at + 32));
    const count = view.getUint32(at + 36, true);
    at += 48;
    for (let index = 0; index < count && at + 48 <= footer; index += 1, at += 48) chunks.set(rawHex(shard.subarray(at, at + 32)), { xorb, index });
  }
  return { hmacKey, chunks };
}
