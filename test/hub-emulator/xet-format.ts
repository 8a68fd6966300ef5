/**
 * The Xet formats, server side, written from the protocol spec (huggingface.co/docs/xet: hashing, xorb, shard,
 * chunking) and independent of any client: chunk, xorb, file and verification hashes (BLAKE3 keyed hashes from
 * @noble/hashes, audited and maintained, not the client's own blake3), the merkle aggregation with its
 * variable branching (a node closes at a hash ≡ 0 mod 4, 2 to 9 children), LZ4 frame decoding with the
 * byte-grouping transform, and the shard layout. The emulator uses these to check what clients upload, never to
 * trust it.
 */
import { blake3 } from "@noble/hashes/blake3.js";

export const HASH_BYTES = 32;
const DATA_KEY = Uint8Array.from([102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28, 157, 228, 33, 16, 155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41]);
const INTERNAL_NODE_KEY = Uint8Array.from([1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230, 93, 221, 83, 111, 55, 199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63]);
const VERIFICATION_KEY = Uint8Array.from([127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243, 164, 205, 38, 213, 181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195]);
const ZERO_KEY = new Uint8Array(32);
export const SHARD_HEADER_TAG = Uint8Array.from([..."HFRepoMetaData"].map((c) => c.charCodeAt(0)).concat([0, 85, 105, 103, 69, 106, 123, 129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169]));
export const MAX_CHUNK_BYTES = 128 * 1024;
export const MAX_XORB_BYTES = 64 * 1024 * 1024;
const FILE_FLAG_WITH_VERIFICATION = 0x80000000;
const FILE_FLAG_WITH_METADATA_EXT = 0x40000000;

export class XetFormatError extends Error {}

export function keyedHash(data: Uint8Array, key: Uint8Array): Uint8Array {
  return blake3(data, { key });
}

export const chunkHash = (data: Uint8Array) => keyedHash(data, DATA_KEY);
export const hmacHash = (hash: Uint8Array, key: Uint8Array) => keyedHash(hash, key);

/** The spec's string form: each 8-byte word as a little-endian u64 in 16 hex digits. */
export function hashToHex(hash: Uint8Array): string {
  let out = "";
  for (let word = 0; word < 4; word += 1) {
    for (let byte = 7; byte >= 0; byte -= 1) out += hash[word * 8 + byte].toString(16).padStart(2, "0");
  }
  return out;
}

export function hexToHash(hex: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new XetFormatError(`malformed hash ${JSON.stringify(hex.slice(0, 80))}`);
  const out = new Uint8Array(32);
  for (let word = 0; word < 4; word += 1) {
    for (let byte = 0; byte < 8; byte += 1) out[word * 8 + 7 - byte] = parseInt(hex.slice(word * 16 + byte * 2, word * 16 + byte * 2 + 2), 16);
  }
  return out;
}

/** The last 8 bytes as a little-endian u64, modulo m (m a power of two ≤ 2^16). */
function lowBitsOfLastWord(hash: Uint8Array, m: number): number {
  return (hash[24] | (hash[25] << 8)) & (m - 1);
}

/** First chunk of a file, or a chunk whose hash is ≡ 0 mod 1024: the chunks the global dedup index tracks. */
export function isGlobalDedupEligible(hash: Uint8Array): boolean {
  return lowBitsOfLastWord(hash, 1024) === 0;
}

export interface HashedChunk {
  hash: Uint8Array;
  length: number;
}

function mergeGroup(group: HashedChunk[]): HashedChunk {
  let text = "";
  let length = 0;
  for (const node of group) {
    text += `${hashToHex(node.hash)} : ${node.length}\n`;
    length += node.length;
  }
  return { hash: keyedHash(new TextEncoder().encode(text), INTERNAL_NODE_KEY), length };
}

/** Where the next group ends: at the first node from the third on whose hash is ≡ 0 mod 4, at most 9 nodes. */
function nextCut(nodes: HashedChunk[], start: number): number {
  const remaining = nodes.length - start;
  if (remaining <= 2) return nodes.length;
  const end = Math.min(9, remaining);
  for (let i = 2; i < end; i += 1) if (lowBitsOfLastWord(nodes[start + i].hash, 4) === 0) return start + i + 1;
  return start + end;
}

/** The merkle root over (hash, length) leaves: the xorb hash. */
export function aggregatedHash(chunks: HashedChunk[]): Uint8Array {
  if (chunks.length === 0) return new Uint8Array(32);
  let level = chunks;
  while (level.length > 1) {
    const next: HashedChunk[] = [];
    for (let start = 0; start < level.length; ) {
      const cut = nextCut(level, start);
      next.push(mergeGroup(level.slice(start, cut)));
      start = cut;
    }
    level = next;
  }
  return level[0].hash;
}

export function fileHash(chunks: HashedChunk[]): Uint8Array {
  if (chunks.length === 0) return new Uint8Array(32);
  return keyedHash(aggregatedHash(chunks), ZERO_KEY);
}

export function verificationHash(hashes: Uint8Array[]): Uint8Array {
  const joined = new Uint8Array(hashes.length * 32);
  hashes.forEach((hash, index) => joined.set(hash, index * 32));
  return keyedHash(joined, VERIFICATION_KEY);
}

// ---- LZ4 (frame format, as xet-core's lz4_flex writes it) and byte grouping --------------------------------

function lz4DecodeBlock(src: Uint8Array, out: Uint8Array, outStart: number): number {
  let s = 0;
  let d = outStart;
  while (s < src.length) {
    const token = src[s++];
    let literals = token >> 4;
    if (literals === 15) {
      let extra: number;
      do {
        if (s >= src.length) throw new XetFormatError("LZ4 literal length runs past the block");
        extra = src[s++];
        literals += extra;
      } while (extra === 255);
    }
    if (s + literals > src.length || d + literals > out.length) throw new XetFormatError("LZ4 literals run past the block or the chunk");
    out.set(src.subarray(s, s + literals), d);
    s += literals;
    d += literals;
    if (s === src.length) break;
    if (s + 2 > src.length) throw new XetFormatError("LZ4 block ends inside a match offset");
    const offset = src[s] | (src[s + 1] << 8);
    s += 2;
    if (offset === 0 || offset > d - outStart) throw new XetFormatError("LZ4 match offset points before the chunk");
    let matchLength = (token & 15) + 4;
    if ((token & 15) === 15) {
      let extra: number;
      do {
        if (s >= src.length) throw new XetFormatError("LZ4 match length runs past the block");
        extra = src[s++];
        matchLength += extra;
      } while (extra === 255);
    }
    if (d + matchLength > out.length) throw new XetFormatError("LZ4 match runs past the chunk");
    for (let i = 0; i < matchLength; i += 1) out[d + i] = out[d - offset + i];
    d += matchLength;
  }
  return d - outStart;
}

export function lz4DecodeFrame(src: Uint8Array, expectedLength: number): Uint8Array {
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  if (src.length < 7 || view.getUint32(0, true) !== 0x184d2204) throw new XetFormatError("LZ4 chunk is not an LZ4 frame (bad magic number)");
  const flags = src[4];
  if (flags >> 6 !== 1) throw new XetFormatError("unsupported LZ4 frame version");
  if (flags & 1) throw new XetFormatError("LZ4 frames with a dictionary are not supported");
  let s = 7 + (flags & 8 ? 8 : 0);
  const blockChecksum = (flags & 16) !== 0;
  const out = new Uint8Array(expectedLength);
  let d = 0;
  for (;;) {
    if (s + 4 > src.length) throw new XetFormatError("LZ4 frame ends without an end mark");
    const word = view.getUint32(s, true);
    s += 4;
    if (word === 0) break;
    const size = word & 0x7fffffff;
    if (s + size > src.length) throw new XetFormatError("LZ4 block runs past the frame");
    const block = src.subarray(s, s + size);
    if (word & 0x80000000) {
      if (d + size > out.length) throw new XetFormatError("LZ4 stored block runs past the chunk");
      out.set(block, d);
      d += size;
    } else {
      d += lz4DecodeBlock(block, out, d);
    }
    s += size + (blockChecksum ? 4 : 0);
  }
  if (d !== expectedLength) throw new XetFormatError(`LZ4 chunk decodes to ${d} bytes, its header says ${expectedLength}`);
  return out;
}

/** Undoes byte grouping: the data was split into 4 groups by position mod 4 and the groups concatenated. */
export function regroupBytes(grouped: Uint8Array): Uint8Array {
  const n = grouped.length;
  const out = new Uint8Array(n);
  const base = Math.floor(n / 4);
  const rest = n % 4;
  let start = 0;
  for (let group = 0; group < 4; group += 1) {
    const size = base + (group < rest ? 1 : 0);
    for (let i = 0; i < size; i += 1) out[i * 4 + group] = grouped[start + i];
    start += size;
  }
  return out;
}

export interface XorbChunk {
  hash: Uint8Array;
  length: number;
  /** Offset of the chunk's header in the serialized xorb, and the end of its data. */
  start: number;
  end: number;
}

/** Splits a serialized xorb into its chunks, decompressing each: throws on anything malformed. */
export function* decodeXorb(xorb: Uint8Array): Generator<{ chunk: XorbChunk; data: Uint8Array }> {
  let offset = 0;
  while (offset < xorb.length) {
    if (offset + 8 > xorb.length) throw new XetFormatError(`xorb ends inside a chunk header at byte ${offset}`);
    const version = xorb[offset];
    const compressed = xorb[offset + 1] | (xorb[offset + 2] << 8) | (xorb[offset + 3] << 16);
    const scheme = xorb[offset + 4];
    const length = xorb[offset + 5] | (xorb[offset + 6] << 8) | (xorb[offset + 7] << 16);
    if (version !== 0) throw new XetFormatError(`chunk header version ${version} at byte ${offset}`);
    if (length > MAX_CHUNK_BYTES) throw new XetFormatError(`chunk of ${length} bytes exceeds 128 KiB`);
    const body = xorb.subarray(offset + 8, offset + 8 + compressed);
    if (body.length !== compressed) throw new XetFormatError(`xorb ends inside a chunk's data at byte ${offset}`);
    let data: Uint8Array;
    if (scheme === 0) {
      if (compressed !== length) throw new XetFormatError("uncompressed chunk whose two sizes differ");
      data = body;
    } else if (scheme === 1) {
      data = lz4DecodeFrame(body, length);
    } else if (scheme === 2) {
      data = regroupBytes(lz4DecodeFrame(body, length));
    } else {
      throw new XetFormatError(`unknown chunk compression scheme ${scheme}`);
    }
    yield { chunk: { hash: chunkHash(data), length, start: offset, end: offset + 8 + compressed }, data };
    offset += 8 + compressed;
  }
}

// ---- shards ------------------------------------------------------------------------------------------------

export interface ShardTerm {
  xorb: string;
  unpacked: number;
  chunkStart: number;
  chunkEnd: number;
  verification?: Uint8Array;
}

export interface ShardFile {
  hash: string;
  terms: ShardTerm[];
  sha256?: string;
}

export interface ShardXorb {
  hash: string;
  chunks: { hash: string; offset: number; length: number }[];
  bytesInCas: number;
  bytesOnDisk: number;
}

export interface ParsedShard {
  files: ShardFile[];
  xorbs: ShardXorb[];
}

const isBookend = (bytes: Uint8Array, at: number) => bytes.subarray(at, at + 32).every((byte) => byte === 0xff);

/** Parses an uploaded shard (footer present or not, as clients send both). */
export function parseShard(shard: Uint8Array): ParsedShard {
  const view = new DataView(shard.buffer, shard.byteOffset, shard.byteLength);
  const need = (at: number, bytes: number) => {
    if (at + bytes > shard.length) throw new XetFormatError(`shard ends at byte ${shard.length}, inside a record at ${at}`);
  };
  need(0, 48);
  if (!SHARD_HEADER_TAG.every((byte, i) => shard[i] === byte)) throw new XetFormatError("not a shard: wrong header tag");
  if (view.getBigUint64(32, true) !== 2n) throw new XetFormatError("unsupported shard header version");
  const footerSize = Number(view.getBigUint64(40, true));
  if (footerSize !== 0 && footerSize !== 200) throw new XetFormatError(`unexpected shard footer size ${footerSize}`);
  const end = shard.length - footerSize;
  let at = 48;
  const files: ShardFile[] = [];
  for (;;) {
    need(at, 48);
    if (isBookend(shard, at)) {
      at += 48;
      break;
    }
    const hash = hashToHex(shard.subarray(at, at + 32));
    const flags = view.getUint32(at + 32, true);
    const count = view.getUint32(at + 36, true);
    at += 48;
    need(at, count * 48);
    const terms: ShardTerm[] = [];
    for (let i = 0; i < count; i += 1, at += 48) {
      terms.push({
        xorb: hashToHex(shard.subarray(at, at + 32)),
        unpacked: view.getUint32(at + 36, true),
        chunkStart: view.getUint32(at + 40, true),
        chunkEnd: view.getUint32(at + 44, true),
      });
    }
    if (flags & FILE_FLAG_WITH_VERIFICATION) {
      need(at, count * 48);
      for (let i = 0; i < count; i += 1, at += 48) terms[i].verification = shard.slice(at, at + 32);
    }
    let sha256: string | undefined;
    if (flags & FILE_FLAG_WITH_METADATA_EXT) {
      need(at, 48);
      // Stored like every hash of the format (xet-core keeps it as a MerkleHash): its string form is the hex digest.
      sha256 = hashToHex(shard.subarray(at, at + 32));
      at += 48;
    }
    files.push({ hash, terms, ...(sha256 ? { sha256 } : {}) });
  }
  const xorbs: ShardXorb[] = [];
  for (;;) {
    need(at, 48);
    if (isBookend(shard, at)) {
      at += 48;
      break;
    }
    const hash = hashToHex(shard.subarray(at, at + 32));
    const count = view.getUint32(at + 36, true);
    const bytesInCas = view.getUint32(at + 40, true);
    const bytesOnDisk = view.getUint32(at + 44, true);
    at += 48;
    need(at, count * 48);
    const chunks: ShardXorb["chunks"] = [];
    for (let i = 0; i < count; i += 1, at += 48) {
      chunks.push({ hash: hashToHex(shard.subarray(at, at + 32)), offset: view.getUint32(at + 32, true), length: view.getUint32(at + 36, true) });
    }
    xorbs.push({ hash, chunks, bytesInCas, bytesOnDisk });
  }
  if (at !== end) throw new XetFormatError(`shard has ${end - at} stray bytes after its CAS info section`);
  return { files, xorbs };
}

/**
 * The answer to a global dedup query: a shard with no file info and the CAS info of the given xorbs, every chunk
 * hash replaced by its keyed hash under a fresh HMAC key carried in the footer, as the spec requires.
 */
export function dedupShard(xorbs: { hash: string; chunks: { hash: Uint8Array; length: number }[]; bytesOnDisk: number }[], hmacKey: Uint8Array, expiresAt: number): Uint8Array {
  const casBytes = xorbs.reduce((sum, xorb) => sum + 48 * (1 + xorb.chunks.length), 0);
  const size = 48 + 48 + casBytes + 48 + 200;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out.set(SHARD_HEADER_TAG, 0);
  view.setBigUint64(32, 2n, true);
  view.setBigUint64(40, 200n, true);
  let at = 48;
  out.fill(0xff, at, at + 32);
  at += 48;
  const casStart = at;
  for (const xorb of xorbs) {
    out.set(hexToHash(xorb.hash), at);
    view.setUint32(at + 36, xorb.chunks.length, true);
    view.setUint32(at + 40, xorb.chunks.reduce((sum, chunk) => sum + chunk.length, 0), true);
    view.setUint32(at + 44, xorb.bytesOnDisk, true);
    at += 48;
    let offset = 0;
    for (const chunk of xorb.chunks) {
      out.set(hmacHash(chunk.hash, hmacKey), at);
      view.setUint32(at + 32, offset, true);
      view.setUint32(at + 36, chunk.length, true);
      offset += chunk.length;
      at += 48;
    }
  }
  out.fill(0xff, at, at + 32);
  at += 48;
  const footer = at;
  view.setBigUint64(footer, 1n, true);
  view.setBigUint64(footer + 8, 48n, true);
  view.setBigUint64(footer + 16, BigInt(casStart), true);
  // xet-core keeps its lookup tables' offset here; with none, they start at the footer.
  view.setBigUint64(footer + 24, BigInt(footer), true);
  out.set(hmacKey, footer + 72);
  view.setBigUint64(footer + 104, BigInt(Math.floor(Date.now() / 1000)), true);
  view.setBigUint64(footer + 112, BigInt(expiresAt), true);
  view.setBigUint64(footer + 192, BigInt(footer), true);
  return out;
}
