/**
 * The emulator's Xet side, from the protocol spec (huggingface.co/docs/xet: auth, api, upload and download
 * protocols, shard, xorb, hashing, deduplication):
 * - xet read/write tokens per repo and revision, short-lived, revocable (an "expired token" fault);
 * - a CAS under `/cas`: xorb upload (`POST /v1/xorbs/default/{hash}`) that decompresses every chunk, recomputes
 *   its hash and the xorb's merkle hash and refuses a mismatch (400); shard upload (`POST /v1/shards`) that checks
 *   every referenced xorb exists, every term's chunk range, unpacked length and verification hash, the file hash,
 *   and the sha256 of the reconstructed bytes before registering a file; the global dedup query
 *   (`GET /v1/chunks/{prefix}/{hash}`) answering a shard of HMAC-protected chunk hashes; reconstruction
 *   (`GET /v2/reconstructions/{file}`, with Range) and HEAD of xorbs and files;
 * - signed transfer URLs serving xorb byte ranges (206, multipart/byteranges for several ranges).
 * Files registered here become the repo's LFS objects by sha256, so commits may point at them.
 */
import { createHash, createHmac, randomBytes, randomUUID } from "node:crypto";
import { createReadStream, openSync, readSync, closeSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { join } from "node:path";
import { mkdirSync } from "node:fs";
import { HttpError, readBody, sendJson } from "./http-util.js";
import type { ObjectStore, Repo } from "./repo-store.js";
import {
  MAX_XORB_BYTES,
  XetFormatError,
  aggregatedHash,
  chunkHash,
  decodeXorb,
  dedupShard,
  fileHash,
  hashToHex,
  hexToHash,
  isGlobalDedupEligible,
  parseShard,
  verificationHash,
  type ShardTerm,
} from "./xet-format.js";

export interface XetToken {
  repoKey: string;
  scope: "read" | "write";
  /** Seconds since the epoch. */
  exp: number;
  revoked?: boolean;
}

interface StoredXorb {
  path: string;
  size: number;
  chunks: { hash: Uint8Array; length: number; start: number; end: number }[];
  /** The xorbs registered by the shard that listed this one: what a dedup hit on its chunks answers. */
  shardXorbs?: string[];
}

export interface XetFile {
  hash: string;
  size: number;
  sha256: string;
  terms: ShardTerm[];
}

/** Bytes per endpoint, so tests can say how much a client sent and fetched. */
export interface EndpointCounter {
  requests: number;
  bytesIn: number;
  bytesOut: number;
}

const SEED_CHUNK_BYTES = 64 * 1024;

export class XetCas {
  readonly tokens = new Map<string, XetToken>();
  readonly xorbs = new Map<string, StoredXorb>();
  readonly files = new Map<string, XetFile>();
  readonly fileBySha256 = new Map<string, string>();
  /** Chunk hash → the xorb holding it, for the chunks the global dedup index tracks. */
  readonly dedupIndex = new Map<string, string>();
  private readonly secret = randomBytes(16);
  private readonly dir: string;

  constructor(
    private readonly store: ObjectStore,
    private readonly repos: Map<string, Repo>,
    readonly tokenTtlSeconds: number,
  ) {
    this.dir = join(store.dir, "xorbs");
    mkdirSync(this.dir, { recursive: true });
  }

  issueToken(repoKey: string, scope: "read" | "write"): { accessToken: string; exp: number } {
    const accessToken = `xet_${randomBytes(18).toString("base64url")}`;
    const exp = Math.floor(Date.now() / 1000) + this.tokenTtlSeconds;
    this.tokens.set(accessToken, { repoKey, scope, exp });
    return { accessToken, exp };
  }

  /** The bearer token of a CAS request, checked: 401 when missing, unknown, expired or revoked; 403 for a read token on a write. */
  authorize(req: IncomingMessage, scope: "read" | "write"): XetToken {
    const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "");
    const token = match ? this.tokens.get(match[1]) : undefined;
    if (!token || token.revoked || token.exp * 1000 <= Date.now()) throw new HttpError(401, "Unauthorized: the xet token is missing, invalid or expired; refresh it");
    if (scope === "write" && token.scope !== "write") throw new HttpError(403, "Forbidden: this xet token has read scope");
    return token;
  }

  revoke(req: IncomingMessage): void {
    const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? "");
    const token = match ? this.tokens.get(match[1]) : undefined;
    if (token) token.revoked = true;
  }

  fileForSha256(sha256: string): XetFile | undefined {
    const hash = this.fileBySha256.get(sha256);
    return hash ? this.files.get(hash) : undefined;
  }

  // ---- seeding: a file added by a test becomes Xet-backed, as the Hub stores every new LFS file ----------------

  /**
   * Stores a file's bytes as one or more xorbs and registers it. The server may cut chunks where it likes (the
   * xorb hash covers whatever chunks it holds); seeding cuts fixed 64 KiB chunks, so seeded content is
   * downloadable through Xet but only content a client uploaded is cut where a client's chunker would cut it.
   */
  seed(content: Buffer, sha256: string): XetFile {
    const known = this.fileForSha256(sha256);
    if (known) return known;
    const terms: ShardTerm[] = [];
    const all: { hash: Uint8Array; length: number }[] = [];
    let offset = 0;
    const xorbsOfFile: string[] = [];
    while (offset < content.length || (offset === 0 && content.length === 0)) {
      const parts: Buffer[] = [];
      const chunks: StoredXorb["chunks"] = [];
      let size = 0;
      while (offset < content.length && size + 8 + SEED_CHUNK_BYTES <= MAX_XORB_BYTES) {
        const data = content.subarray(offset, Math.min(offset + SEED_CHUNK_BYTES, content.length));
        const header = Buffer.from([0, data.length & 0xff, (data.length >> 8) & 0xff, data.length >> 16, 0, data.length & 0xff, (data.length >> 8) & 0xff, data.length >> 16]);
        parts.push(header, data);
        chunks.push({ hash: chunkHash(data), length: data.length, start: size, end: size + 8 + data.length });
        size += 8 + data.length;
        offset += data.length;
      }
      if (chunks.length === 0) break;
      const hex = hashToHex(aggregatedHash(chunks));
      if (!this.xorbs.has(hex)) {
        const path = join(this.dir, hex);
        writeFileSync(path, Buffer.concat(parts));
        this.xorbs.set(hex, { path, size, chunks });
      }
      xorbsOfFile.push(hex);
      terms.push({ xorb: hex, unpacked: chunks.reduce((sum, chunk) => sum + chunk.length, 0), chunkStart: 0, chunkEnd: chunks.length });
      all.push(...chunks);
    }
    for (const hex of xorbsOfFile) this.xorbs.get(hex)!.shardXorbs = xorbsOfFile;
    const file: XetFile = { hash: hashToHex(fileHash(all)), size: content.length, sha256, terms };
    this.register(file);
    return file;
  }

  private register(file: XetFile): void {
    this.files.set(file.hash, file);
    this.fileBySha256.set(file.sha256, file.hash);
    const first = file.terms[0];
    if (first) this.dedupIndex.set(hashToHex(this.xorbs.get(first.xorb)!.chunks[first.chunkStart].hash), first.xorb);
  }

  // ---- CAS routes --------------------------------------------------------------------------------------------

  /** Routes under /cas/…; answers whether it handled the request. */
  async handle(req: IncomingMessage, res: ServerResponse, s: string[], origin: string): Promise<boolean> {
    const method = req.method ?? "GET";
    if (s[1] === "v1" && s[2] === "xorbs" && s.length === 5) {
      if (s[3] !== "default") throw new HttpError(400, `the xorb prefix must be "default", not ${JSON.stringify(s[3])}`);
      if (method === "POST") return this.uploadXorb(req, res, s[4]);
      if (method === "HEAD") {
        this.authorize(req, "read");
        const xorb = this.xorbs.get(checkHex(s[4]));
        res.writeHead(xorb ? 200 : 404, { "Content-Length": String(xorb?.size ?? 0) });
        res.end();
        return true;
      }
    }
    if (s[1] === "v1" && s[2] === "shards" && s.length === 3 && method === "POST") return this.uploadShard(req, res);
    if (s[1] === "v1" && s[2] === "chunks" && s.length === 5 && method === "GET") return this.dedupQuery(req, res, s[3], s[4]);
    if (s[1] === "v2" && s[2] === "reconstructions" && s.length === 4 && method === "GET") return this.reconstruction(req, res, s[3], origin);
    if (s[1] === "v1" && s[2] === "files" && s.length === 4 && method === "HEAD") {
      this.authorize(req, "read");
      const file = this.files.get(checkHex(s[3]));
      res.writeHead(file ? 200 : 404, { "Content-Length": String(file?.size ?? 0) });
      res.end();
      return true;
    }
    return false;
  }

  private async uploadXorb(req: IncomingMessage, res: ServerResponse, hashText: string): Promise<boolean> {
    this.authorize(req, "write");
    const hex = checkHex(hashText);
    const body = await readBody(req, MAX_XORB_BYTES + 1);
    if (body.length > MAX_XORB_BYTES) throw new HttpError(400, `xorb of ${body.length} bytes exceeds the 64 MiB limit`);
    if (this.xorbs.has(hex)) {
      sendJson(res, 200, { was_inserted: false });
      return true;
    }
    const chunks: StoredXorb["chunks"] = [];
    try {
      for (const { chunk } of decodeXorb(body)) chunks.push(chunk);
    } catch (error) {
      if (error instanceof XetFormatError) throw new HttpError(400, `xorb ${hex} is malformed: ${error.message}`);
      throw error;
    }
    if (chunks.length === 0) throw new HttpError(400, "empty xorb");
    const actual = hashToHex(aggregatedHash(chunks));
    if (actual !== hex) throw new HttpError(400, `xorb hash mismatch: the body hashes to ${actual}, the path says ${hex}`);
    const path = join(this.dir, hex);
    writeFileSync(path, body);
    this.xorbs.set(hex, { path, size: body.length, chunks });
    sendJson(res, 200, { was_inserted: true });
    return true;
  }

  private async uploadShard(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const token = this.authorize(req, "write");
    const body = await readBody(req, MAX_XORB_BYTES + 1);
    let shard: ReturnType<typeof parseShard>;
    try {
      shard = parseShard(body);
    } catch (error) {
      if (error instanceof XetFormatError) throw new HttpError(400, `shard is malformed: ${error.message}`);
      throw error;
    }
    // Every xorb the shard lists must be stored, with exactly the chunks the shard says.
    for (const listed of shard.xorbs) {
      const stored = this.xorbs.get(listed.hash);
      if (!stored) throw new HttpError(400, `shard lists xorb ${listed.hash}, which was never uploaded`);
      if (listed.chunks.length !== stored.chunks.length) throw new HttpError(400, `shard lists ${listed.chunks.length} chunks for xorb ${listed.hash}, which holds ${stored.chunks.length}`);
      let offset = 0;
      listed.chunks.forEach((chunk, i) => {
        const real = stored.chunks[i];
        if (chunk.hash !== hashToHex(real.hash) || chunk.length !== real.length || chunk.offset !== offset) throw new HttpError(400, `shard's chunk ${i} of xorb ${listed.hash} does not match the stored xorb`);
        offset += real.length;
      });
    }
    const registered: XetFile[] = [];
    for (const file of shard.files) {
      if (!file.sha256) throw new HttpError(400, `file ${file.hash}: repos on the Hub need the sha256 metadata extension`);
      const leaves: { hash: Uint8Array; length: number }[] = [];
      let size = 0;
      for (const [index, term] of file.terms.entries()) {
        const xorb = this.xorbs.get(term.xorb);
        if (!xorb) throw new HttpError(400, `file ${file.hash} term ${index} references xorb ${term.xorb}, which does not exist`);
        if (term.chunkStart >= term.chunkEnd || term.chunkEnd > xorb.chunks.length) throw new HttpError(400, `file ${file.hash} term ${index}: chunk range [${term.chunkStart}, ${term.chunkEnd}) is not within xorb ${term.xorb} (${xorb.chunks.length} chunks)`);
        const chunks = xorb.chunks.slice(term.chunkStart, term.chunkEnd);
        const unpacked = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
        if (unpacked !== term.unpacked) throw new HttpError(400, `file ${file.hash} term ${index}: unpacked length ${term.unpacked}, the chunks hold ${unpacked}`);
        if (!term.verification) throw new HttpError(400, `file ${file.hash} term ${index}: the verification entry is required`);
        if (hashToHex(verificationHash(chunks.map((chunk) => chunk.hash))) !== hashToHex(term.verification)) throw new HttpError(400, `file ${file.hash} term ${index}: verification hash mismatch`);
        leaves.push(...chunks);
        size += unpacked;
      }
      if (hashToHex(fileHash(leaves)) !== file.hash) throw new HttpError(400, `file hash mismatch: the terms hash to ${hashToHex(fileHash(leaves))}, the shard says ${file.hash}`);
      registered.push({ hash: file.hash, size, sha256: file.sha256, terms: file.terms });
    }
    // Check each file's bytes against its sha256 before anything is registered: all or nothing.
    const temps: { file: XetFile; temp: string }[] = [];
    for (const file of registered) {
      if (this.store.has(file.sha256)) continue;
      const temp = this.store.tempPath();
      const sha = await this.reconstructTo(file, temp);
      if (sha !== file.sha256) throw new HttpError(400, `file ${file.hash}: its bytes hash to sha256 ${sha}, the shard says ${file.sha256}`);
      temps.push({ file, temp });
    }
    for (const { file, temp } of temps) this.store.adopt(temp, file.sha256);
    const shardXorbs = shard.xorbs.map((xorb) => xorb.hash);
    for (const hex of shardXorbs) {
      const xorb = this.xorbs.get(hex)!;
      xorb.shardXorbs = shardXorbs;
      xorb.chunks.forEach((chunk, index) => {
        if (index === 0 || isGlobalDedupEligible(chunk.hash)) this.dedupIndex.set(hashToHex(chunk.hash), hex);
      });
    }
    const repo = this.repos.get(token.repoKey);
    for (const file of registered) {
      this.register(file);
      repo?.lfsObjects.add(file.sha256);
    }
    sendJson(res, 200, { result: registered.length > 0 || shard.xorbs.length > 0 ? 1 : 0 });
    return true;
  }

  private async reconstructTo(file: XetFile, path: string): Promise<string> {
    const sha = createHash("sha256");
    const out = await open(path, "w");
    try {
      for (const term of file.terms) {
        const xorb = this.xorbs.get(term.xorb)!;
        const first = xorb.chunks[term.chunkStart];
        const last = xorb.chunks[term.chunkEnd - 1];
        const bytes = readRange(xorb.path, first.start, last.end);
        for (const { data } of decodeXorb(bytes)) {
          sha.update(data);
          await out.write(data);
        }
      }
    } finally {
      await out.close();
    }
    return sha.digest("hex");
  }

  private dedupQuery(req: IncomingMessage, res: ServerResponse, prefix: string, hashText: string): boolean {
    this.authorize(req, "read");
    if (prefix !== "default-merkledb" && prefix !== "default") throw new HttpError(400, `unknown chunk prefix ${JSON.stringify(prefix)}`);
    const xorbHex = this.dedupIndex.get(checkHex(hashText));
    if (!xorbHex) throw new HttpError(404, "chunk not tracked by global deduplication");
    const listed = this.xorbs.get(xorbHex)!.shardXorbs ?? [xorbHex];
    const body = dedupShard(
      listed.map((hex) => ({ hash: hex, chunks: this.xorbs.get(hex)!.chunks, bytesOnDisk: this.xorbs.get(hex)!.size })),
      randomBytes(32),
      Math.floor(Date.now() / 1000) + 7 * 24 * 3600,
    );
    res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": body.length });
    res.end(body);
    return true;
  }

  private reconstruction(req: IncomingMessage, res: ServerResponse, fileText: string, origin: string): boolean {
    this.authorize(req, "read");
    const file = this.files.get(checkHex(fileText));
    if (!file) throw new HttpError(404, "file not found");
    let start = 0;
    let end = file.size - 1;
    const range = req.headers.range;
    if (range) {
      const match = /^bytes=(\d+)-(\d*)$/.exec(range);
      if (!match) throw new HttpError(400, `malformed Range ${range}`);
      start = Number(match[1]);
      if (match[2] !== "") end = Math.min(end, Number(match[2]));
      if (start >= file.size) throw new HttpError(416, "requested range starts past the end of the file");
    }
    const terms: { hash: string; unpacked_length: number; range: { start: number; end: number } }[] = [];
    const needed = new Map<string, { start: number; end: number }[]>();
    let position = 0;
    let offsetIntoFirst = 0;
    for (const term of file.terms) {
      const xorb = this.xorbs.get(term.xorb)!;
      let chunkStart = -1;
      let chunkEnd = -1;
      let unpacked = 0;
      for (let index = term.chunkStart; index < term.chunkEnd; index += 1) {
        const chunk = xorb.chunks[index];
        const chunkFirst = position;
        position += chunk.length;
        if (position - 1 < start || chunkFirst > end) continue;
        if (chunkStart === -1) {
          chunkStart = index;
          if (terms.length === 0) offsetIntoFirst = start - chunkFirst;
        }
        chunkEnd = index + 1;
        unpacked += chunk.length;
      }
      if (chunkStart === -1) continue;
      terms.push({ hash: term.xorb, unpacked_length: unpacked, range: { start: chunkStart, end: chunkEnd } });
      const list = needed.get(term.xorb) ?? [];
      list.push({ start: chunkStart, end: chunkEnd });
      needed.set(term.xorb, list);
    }
    const xorbs: Record<string, { url: string; ranges: { chunks: { start: number; end: number }; bytes: { start: number; end: number } }[] }[]> = {};
    for (const [hex, list] of needed) {
      const xorb = this.xorbs.get(hex)!;
      const merged: { start: number; end: number }[] = [];
      for (const item of list.sort((a, b) => a.start - b.start)) {
        const last = merged[merged.length - 1];
        if (last && item.start <= last.end) last.end = Math.max(last.end, item.end);
        else merged.push({ ...item });
      }
      const ranges = merged.map((chunks) => ({ chunks, bytes: { start: xorb.chunks[chunks.start].start, end: xorb.chunks[chunks.end - 1].end - 1 } }));
      xorbs[hex] = [{ url: this.signedTransferUrl(origin, hex, ranges.map((r) => r.bytes)), ranges }];
    }
    sendJson(res, 200, { offset_into_first_range: offsetIntoFirst, terms, xorbs });
    return true;
  }

  private transferSignature(hex: string, signedRange: string, expires: number): string {
    return createHmac("sha256", this.secret).update(`${hex}\n${signedRange}\n${expires}`).digest("hex");
  }

  private signedTransferUrl(origin: string, hex: string, ranges: { start: number; end: number }[]): string {
    const signedRange = `bytes=${ranges.map((r) => `${r.start}-${r.end}`).join(",")}`;
    const expires = Math.floor(Date.now() / 1000) + 3600;
    const query = new URLSearchParams({ "X-Xet-Signed-Range": signedRange, Expires: String(expires), Signature: this.transferSignature(hex, signedRange, expires) });
    return `${origin}/xet-transfer/xorb/default/${hex}?${query}`;
  }

  /** `GET /xet-transfer/xorb/default/{hash}?X-Xet-Signed-Range=…`: the signed byte ranges of a xorb, and only those. */
  handleTransfer(req: IncomingMessage, res: ServerResponse, s: string[], url: URL): boolean {
    if (req.method !== "GET" || s.length !== 4 || s[1] !== "xorb") return false;
    const hex = checkHex(s[3]);
    const signedRange = url.searchParams.get("X-Xet-Signed-Range") ?? "";
    const expires = Number(url.searchParams.get("Expires"));
    const xorb = this.xorbs.get(hex);
    const valid = url.searchParams.get("Signature") === this.transferSignature(hex, signedRange, expires) && expires * 1000 > Date.now();
    if (!valid || !xorb) throw new HttpError(403, "AccessDenied: the signature is invalid or expired");
    if ((req.headers.range ?? "") !== signedRange) throw new HttpError(403, `AccessDenied: the Range header must be the signed range ${signedRange}`);
    const ranges = signedRange.slice("bytes=".length).split(",").map((part) => part.split("-").map(Number));
    if (ranges.some(([a, b]) => !(a >= 0 && b >= a && b < xorb.size))) throw new HttpError(416, "range outside the xorb");
    if (ranges.length === 1) {
      const [a, b] = ranges[0];
      res.writeHead(206, { "Content-Type": "application/octet-stream", "Content-Length": String(b - a + 1), "Content-Range": `bytes ${a}-${b}/${xorb.size}` });
      createReadStream(xorb.path, { start: a, end: b }).pipe(res);
      return true;
    }
    const boundary = randomUUID().replace(/-/g, "");
    const parts = ranges.map(([a, b]) => Buffer.concat([Buffer.from(`--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ${a}-${b}/${xorb.size}\r\n\r\n`), readRange(xorb.path, a, b + 1), Buffer.from("\r\n")]));
    const payload = Buffer.concat([...parts, Buffer.from(`--${boundary}--\r\n`)]);
    res.writeHead(206, { "Content-Type": `multipart/byteranges; boundary=${boundary}`, "Content-Length": payload.length });
    res.end(payload);
    return true;
  }
}

function checkHex(text: string): string {
  if (!/^[0-9a-f]{64}$/.test(text)) throw new HttpError(400, `malformed hash ${JSON.stringify(text.slice(0, 80))}`);
  return text;
}

function readRange(path: string, start: number, end: number): Buffer {
  const buffer = Buffer.alloc(end - start);
  const fd = openSync(path, "r");
  try {
    let done = 0;
    while (done < buffer.length) {
      const read = readSync(fd, buffer, done, buffer.length - done, start + done);
      if (read === 0) throw new Error(`${path} is shorter than expected`);
      done += read;
    }
  } finally {
    closeSync(fd);
  }
  return buffer;
}

export { hexToHash };
