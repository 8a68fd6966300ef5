/**
 * What a Xet upload sent and what it deduplicated, read from the requests themselves (HubHttp's onSend): the
 * xorb bodies are the bytes sent (each attempt counts, so retries show), and each shard says, per file (by
 * sha256), which xorbs its terms use. A term in a xorb this push created carries new bytes; a term in a xorb the
 * CAS already had is deduplicated. The commit's lfsFile lines map each sha256 back to its path.
 * The pinned @huggingface/hub computes a dedup ratio per file but its commitIter drops it, hence this.
 */
const XORB_POST = /\/v1\/xorbs\/[^/]+\/([0-9a-f]{64})$/;
const SHARD_POST = /\/v1\/shards$/;
const COMMIT_POST = /\/api\/[^/]+\/.+\/commit\//;

export interface FileTransfer {
  path: string;
  bytes: number;
  /** Bytes of the file in chunks this push uploaded (before compression). */
  bytesNew: number;
  /** Bytes of the file the CAS already held: not sent. */
  bytesDeduplicated: number;
}

function hashHex(bytes: Uint8Array, at: number): string {
  let out = "";
  for (let word = 0; word < 4; word += 1) {
    for (let byte = 7; byte >= 0; byte -= 1) out += bytes[at + word * 8 + byte].toString(16).padStart(2, "0");
  }
  return out;
}

function asBytes(body: unknown): Uint8Array | undefined {
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  return undefined;
}

export class XetUploadStats {
  /** Bytes of xorb bodies sent, retries included. */
  bytesSent = 0;
  /** Bytes of shard bodies sent (file and xorb metadata). */
  metadataBytesSent = 0;
  xorbsSent = 0;
  private readonly sessionXorbs = new Set<string>();
  private readonly files = new Map<string, { terms: { xorb: string; unpacked: number }[] }>();
  private readonly pathToSha = new Map<string, string>();
  /** Whether the Hub answered an LFS batch with the xet transfer. */
  xetOffered = false;

  /** Reads the transfer the Hub chose from LFS batch answers (a clone; the library reads the original). */
  async observeResponse(url: string, response: Response): Promise<void> {
    if (!/\/info\/lfs\/objects\/batch$/.test(url.split("?")[0])) return;
    const body = (await response.clone().json().catch(() => ({}))) as { transfer?: string };
    if (body.transfer === "xet") this.xetOffered = true;
  }

  observe(request: { url: string; method: string; body: unknown }): void {
    if (request.method !== "POST") return;
    const path = request.url.split("?")[0];
    const bytes = asBytes(request.body);
    const xorb = XORB_POST.exec(path);
    if (xorb && bytes) {
      this.bytesSent += bytes.length;
      this.xorbsSent += 1;
      this.sessionXorbs.add(xorb[1]);
    } else if (SHARD_POST.test(path) && bytes) {
      this.metadataBytesSent += bytes.length;
      this.readShard(bytes);
    } else if (COMMIT_POST.test(path) && typeof request.body === "string") {
      for (const line of request.body.split("\n")) {
        try {
          const item = JSON.parse(line) as { key?: string; value?: { path?: string; oid?: string } };
          if (item.key === "lfsFile" && item.value?.path && item.value.oid) this.pathToSha.set(item.value.path, item.value.oid);
        } catch {
          // Not a line we need.
        }
      }
    }
  }

  /** The file info section of an uploaded shard (format: huggingface.co/docs/xet/shard). */
  private readShard(shard: Uint8Array): void {
    const view = new DataView(shard.buffer, shard.byteOffset, shard.byteLength);
    let at = 48;
    const bookend = (offset: number) => shard.subarray(offset, offset + 32).every((byte) => byte === 0xff);
    while (at + 48 <= shard.length && !bookend(at)) {
      const flags = view.getUint32(at + 32, true);
      const count = view.getUint32(at + 36, true);
      at += 48;
      const terms: { xorb: string; unpacked: number }[] = [];
      for (let i = 0; i < count && at + 48 <= shard.length; i += 1, at += 48) terms.push({ xorb: hashHex(shard, at), unpacked: view.getUint32(at + 36, true) });
      if (flags & 0x80000000) at += 48 * count;
      if (flags & 0x40000000) {
        this.files.set(hashHex(shard, at), { terms });
        at += 48;
      }
    }
    at += 48;
    while (at + 48 <= shard.length && !bookend(at)) {
      this.sessionXorbs.add(hashHex(shard, at));
      at += 48 * (1 + view.getUint32(at + 36, true));
    }
  }

  /** Per file, from what the shards and the commit said; a file no shard mentions was already on the Hub whole. */
  perFile(sizes: Map<string, number>): FileTransfer[] {
    const result: FileTransfer[] = [];
    for (const [path, bytes] of sizes) {
      if (!this.pathToSha.has(path)) continue;
      const sha = this.pathToSha.get(path);
      const file = sha ? this.files.get(sha) : undefined;
      if (!file) {
        result.push({ path, bytes, bytesNew: 0, bytesDeduplicated: bytes });
        continue;
      }
      let bytesNew = 0;
      for (const term of file.terms) if (this.sessionXorbs.has(term.xorb)) bytesNew += term.unpacked;
      result.push({ path, bytes, bytesNew, bytesDeduplicated: bytes - bytesNew });
    }
    return result;
  }
}
