/**
 * A stateful Hugging Face Hub on 127.0.0.1 for tests: the endpoints @huggingface/hub and huggingface_hub use to
 * read repos (info, tree, paths-info, resolve with redirects and ranges) and to write them (create, preupload,
 * LFS batch with basic and multipart transfers, NDJSON commits, branches, pull requests), with the Hub's auth
 * rules and error headers, plus seeding helpers, a request log and fault injection.
 * Models and datasets are served by the same machinery; helpers name a dataset as huggingface.js designates it,
 * `datasets/org/name`, and a model by its bare id.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createHmac, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import {
  ObjectStore,
  createEmptyRepo,
  defaultGitattributes,
  lfsPatterns,
  makeCommit,
  parseRepoKey,
  resolveRevision,
  type Commit,
  type FileChange,
  type Repo,
} from "./repo-store.js";
import { HttpError, originOf, sendError } from "./http-util.js";
import { Fault, captureResponse, cutResponseAfter, type FaultHandle, type FaultSpec } from "./faults.js";
import { handleReadRoute } from "./read-routes.js";
import { handleWriteRoute, type UploadSession } from "./write-routes.js";
import { XetCas, type EndpointCounter } from "./xet-cas.js";

export interface HubEmulatorOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Entries per page of the tree API (the Hub uses 1000; small values exercise `Link` pagination). */
  treePageSize?: number;
  /** Files above this size must go through LFS (the Hub: 10 MiB). */
  lfsThreshold?: number;
  /** LFS objects above this size are offered a multipart transfer when the client supports it. */
  multipartThreshold?: number;
  /** Part size of multipart transfers. */
  multipartChunkSize?: number;
  /**
   * Serve LFS downloads from a second origin (another port), answering like CloudFront (`X-Cache`), as the
   * real Hub's CDN does: shows which requests would carry a token to another host.
   */
  separateCdn?: boolean;
  /**
   * Offer Xet, as the Hub does today: LFS batches answer `transfer: "xet"` to clients that ask for it, xet
   * tokens and a CAS are served, and seeded LFS files are stored as xorbs. Default false (plain LFS).
   */
  xet?: boolean;
  /** Lifetime of the xet tokens issued (default 3600 s). */
  xetTokenTtlSeconds?: number;
}

export interface TokenInfo {
  user: string;
  orgs: string[];
  /** Read-only tokens get 403 on writes. Default true. */
  write: boolean;
}

export interface RequestLogEntry {
  method: string;
  /** Path and query as sent. */
  url: string;
  status: number;
  authorization?: string;
  range?: string;
  /** The Host header: tells the CDN origin from the Hub's when `separateCdn` is on. */
  host?: string;
}

export interface SeedFile {
  path: string;
  content: Buffer | string;
  /** Default: the repo's .gitattributes patterns, or size above the LFS threshold. */
  lfs?: boolean;
}

export interface FileSnapshot {
  content: Buffer;
  lfs: boolean;
  size: number;
  sha256: string;
  gitOid: string;
}

export interface AccessCheck {
  token?: TokenInfo;
}

export class HubEmulator {
  /** By key: `org/name` for models, `datasets/org/name` for datasets. */
  readonly repos = new Map<string, Repo>();
  readonly store = new ObjectStore();
  readonly tokens = new Map<string, TokenInfo>();
  readonly uploads = new Map<string, UploadSession>();
  readonly requests: RequestLogEntry[] = [];
  readonly options: Required<Omit<HubEmulatorOptions, "port" | "separateCdn" | "xet" | "xetTokenTtlSeconds">>;
  /** The Xet side, when `xet` is on. */
  readonly xet?: XetCas;
  /** Requests and body bytes per endpoint (`xorb-upload`, `shard-upload`, `dedup-query`, `lfs-upload`, …). */
  readonly bytes = new Map<string, EndpointCounter>();
  readonly separateCdn: boolean;
  private readonly faults: Fault[] = [];
  private readonly cdnSecret = randomBytes(16);
  private server?: Server;
  private cdnServer?: Server;
  url = "";
  /** Origin of the CDN server when `separateCdn` is on, else "". */
  cdnUrl = "";

  constructor(options: HubEmulatorOptions = {}) {
    this.options = {
      treePageSize: options.treePageSize ?? 1000,
      lfsThreshold: options.lfsThreshold ?? 10 * 1024 * 1024,
      multipartThreshold: options.multipartThreshold ?? 64 * 1024 * 1024,
      multipartChunkSize: options.multipartChunkSize ?? 16 * 1024 * 1024,
    };
    this.separateCdn = options.separateCdn ?? false;
    if (options.xet) this.xet = new XetCas(this.store, this.repos, options.xetTokenTtlSeconds ?? 3600);
  }

  /** Counter of one endpoint (zeros when it was never called). */
  counter(endpoint: string): EndpointCounter {
    return this.bytes.get(endpoint) ?? { requests: 0, bytesIn: 0, bytesOut: 0 };
  }

  /** Forgets the byte counters, so a test can measure one operation. */
  resetCounters(): void {
    this.bytes.clear();
  }

  async listen(port = 0): Promise<string> {
    const start = async (at: number) => {
      const server = createServer((req, res) => void this.dispatch(req, res));
      // As a real Hub's front end does: idle keep-alive connections stay open well past a client's reuse window
      // (Node's 5 s default, closing a socket the client is about to reuse, turns a slow moment into ECONNRESET),
      // and a large upload is not cut by Node's 300 s request timeout.
      server.keepAliveTimeout = 65_000;
      server.requestTimeout = 0;
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(at, "127.0.0.1", () => resolve());
      });
      return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
    };
    ({ server: this.server, url: this.url } = await start(port));
    if (this.separateCdn) ({ server: this.cdnServer, url: this.cdnUrl } = await start(0));
    return this.url;
  }

  async close(): Promise<void> {
    for (const server of [this.server, this.cdnServer]) {
      if (!server) continue;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    this.server = undefined;
    this.cdnServer = undefined;
    this.store.destroy();
  }

  /** Where signed LFS links point: the CDN's own origin, or the origin the client reached. */
  cdnOrigin(req: IncomingMessage): string {
    return this.cdnUrl || originOf(req);
  }

  // ---- state helpers for tests -------------------------------------------------------------------------------

  addToken(token: string, info: { user: string; orgs?: string[]; write?: boolean }): void {
    if (!token.startsWith("hf_")) throw new Error(`Hub tokens start with "hf_"`);
    this.tokens.set(token, { user: info.user, orgs: info.orgs ?? [], write: info.write ?? true });
  }

  /**
   * A repo as the Hub creates it: one initial commit on main holding the default .gitattributes of its type.
   * `key` is `org/name` for a model, `datasets/org/name` for a dataset.
   */
  createRepo(key: string, options: { private?: boolean; gated?: false | "auto" | "manual" } = {}): Repo {
    if (this.repos.has(key)) throw new Error(`repo ${key} exists`);
    const { type, id } = parseRepoKey(key);
    if (!/^[\w.-]+\/[\w.-]+$/.test(id)) throw new Error(`repo id must be namespace/name (datasets/namespace/name for a dataset): ${key}`);
    const repo = createEmptyRepo(id, { private: options.private, type });
    repo.gated = options.gated ?? false;
    const content = Buffer.from(defaultGitattributes(type));
    const commit = makeCommit(repo, {
      title: "initial commit",
      changes: [{ path: ".gitattributes", sha256: this.store.put(content), size: content.length, content }],
    });
    repo.branches.set("main", commit.oid);
    this.repos.set(repo.key, repo);
    return repo;
  }

  /** Commits files to a branch of the repo with this key (creating the repo when missing); returns the new commit oid. */
  addFiles(id: string, files: SeedFile[] | Record<string, Buffer | string>, options: { branch?: string; message?: string } = {}): string {
    const repo = this.repos.get(id) ?? this.createRepo(id);
    const branch = options.branch ?? "main";
    const parent = repo.branches.get(branch);
    if (!parent) throw new Error(`branch ${branch} does not exist in ${id}`);
    const list: SeedFile[] = Array.isArray(files) ? files : Object.entries(files).map(([path, content]) => ({ path, content }));
    const patterns = this.lfsPatternsAt(repo, parent);
    const changes: FileChange[] = list.map((file) => {
      const content = typeof file.content === "string" ? Buffer.from(file.content) : file.content;
      const lfs = file.lfs ?? (content.length > this.options.lfsThreshold || patterns.some((pattern) => pattern.test(file.path)));
      const sha256 = this.store.put(content);
      if (lfs) repo.lfsObjects.add(sha256);
      if (lfs && this.xet) this.xet.seed(content, sha256);
      return { path: file.path, sha256, size: content.length, lfs, content };
    });
    const commit = makeCommit(repo, { parent, title: options.message ?? `Upload ${list.length} file(s)`, changes });
    repo.branches.set(branch, commit.oid);
    return commit.oid;
  }

  setPrivate(id: string, isPrivate: boolean): void {
    this.repo(id).private = isPrivate;
  }

  setGated(id: string, gated: false | "auto" | "manual"): void {
    this.repo(id).gated = gated;
  }

  grantAccess(id: string, user: string): void {
    this.repo(id).readers.add(user);
  }

  createBranch(id: string, branch: string, from = "main"): void {
    const repo = this.repo(id);
    const oid = resolveRevision(repo, from);
    if (!oid) throw new Error(`unknown revision ${from}`);
    repo.branches.set(branch, oid);
  }

  createTag(id: string, tag: string, from = "main"): void {
    const repo = this.repo(id);
    const oid = resolveRevision(repo, from);
    if (!oid) throw new Error(`unknown revision ${from}`);
    repo.tags.set(tag, oid);
  }

  /** Commit oid a revision points to (throws when unknown). */
  head(id: string, revision = "main"): string {
    const oid = resolveRevision(this.repo(id), revision);
    if (!oid) throw new Error(`unknown revision ${revision} in ${id}`);
    return oid;
  }

  commit(id: string, revision = "main"): Commit {
    return this.repo(id).commits.get(this.head(id, revision))!;
  }

  /** Every file of a revision with its bytes, for assertions. */
  files(id: string, revision = "main"): Map<string, FileSnapshot> {
    const result = new Map<string, FileSnapshot>();
    for (const file of this.commit(id, revision).files.values()) {
      result.set(file.path, {
        content: readFileSync(this.store.pathOf(file.sha256)),
        lfs: file.lfs,
        size: file.size,
        sha256: file.sha256,
        gitOid: file.gitOid,
      });
    }
    return result;
  }

  injectFault(spec: FaultSpec): FaultHandle {
    const fault = new Fault(spec);
    this.faults.push(fault);
    return fault;
  }

  clearFaults(): void {
    this.faults.length = 0;
  }

  // ---- shared by the routes ----------------------------------------------------------------------------------

  repo(id: string): Repo {
    const repo = this.repos.get(id);
    if (!repo) throw new Error(`no repo ${id}`);
    return repo;
  }

  lfsPatternsAt(repo: Repo, commitOid: string): RegExp[] {
    const attributes = repo.commits.get(commitOid)?.files.get(".gitattributes");
    return attributes ? lfsPatterns(readFileSync(this.store.pathOf(attributes.sha256), "utf8")) : [];
  }

  /** The token of the request; a token that is not one of ours is a 401, as on the Hub. */
  authenticate(req: IncomingMessage): TokenInfo | undefined {
    const header = req.headers.authorization;
    if (!header) return undefined;
    const match = /^Bearer\s+(\S+)$/i.exec(header);
    const info = match ? this.tokens.get(match[1]) : undefined;
    if (!info) throw new HttpError(401, "Invalid credentials in Authorization header");
    return info;
  }

  private canAccess(token: TokenInfo | undefined, repo: Repo): boolean {
    if (!token) return false;
    const namespace = repo.id.split("/")[0];
    return namespace === token.user || token.orgs.includes(namespace) || repo.readers.has(token.user);
  }

  /**
   * The repo when this request may see it. Like the Hub, a missing repo and a private one look the same:
   * 401 RepoNotFound without a token, 404 RepoNotFound with one. Gated repos show their metadata to anyone but
   * their files only to granted users (401 GatedRepo anonymous, 403 GatedRepo otherwise).
   */
  readableRepo(req: IncomingMessage, key: string, options: { files?: boolean } = {}): { repo: Repo; token?: TokenInfo } {
    const token = this.authenticate(req);
    const repo = this.repos.get(key);
    if (!repo || (repo.private && !this.canAccess(token, repo))) {
      throw new HttpError(token ? 404 : 401, `Repository Not Found for url: ${key}. Please make sure you specified the correct \`repo_id\` and \`repo_type\`. If you are trying to access a private or gated repo, make sure you are authenticated.`, "RepoNotFound");
    }
    if (options.files && repo.gated && !this.canAccess(token, repo)) {
      throw new HttpError(token ? 403 : 401, `Access to ${repo.type} ${repo.id} is restricted. You must have access to it and be authenticated to access it. Please log in.`, "GatedRepo");
    }
    return { repo, token };
  }

  writableRepo(req: IncomingMessage, key: string): { repo: Repo; token: TokenInfo } {
    const token = this.authenticate(req);
    if (!token) throw new HttpError(401, "Invalid username or password.");
    const { repo } = this.readableRepo(req, key);
    const namespace = repo.id.split("/")[0];
    if (!token.write || (namespace !== token.user && !token.orgs.includes(namespace))) {
      throw new HttpError(403, `You don't have the rights to create a commit in ${repo.id}`);
    }
    return { repo, token };
  }

  revisionOf(repo: Repo, revision: string): Commit {
    const oid = resolveRevision(repo, revision);
    if (!oid) throw new HttpError(404, `Invalid rev id: ${revision}`, "RevisionNotFound");
    return repo.commits.get(oid)!;
  }

  /** A CDN URL valid without credentials, like the Hub's signed LFS links. */
  signedCdnPath(repo: Repo, sha256: string, filename: string): string {
    const expires = Math.floor(Date.now() / 1000) + 3600;
    const sig = this.cdnSignature(repo.key, sha256, expires);
    const query = new URLSearchParams({ repo: repo.key, expires: String(expires), sig, filename });
    return `/cdn/lfs/${sha256}?${query}`;
  }

  cdnSignature(repoKey: string, sha256: string, expires: number): string {
    return createHmac("sha256", this.cdnSecret).update(`${repoKey}\n${sha256}\n${expires}`).digest("hex");
  }

  /** Which endpoint a request is, for the byte counters. */
  private endpointOf(method: string, path: string): string {
    if (path.startsWith("/cas/v1/xorbs/")) return method === "POST" ? "xorb-upload" : "xorb-head";
    if (path.startsWith("/cas/v1/shards")) return "shard-upload";
    if (path.startsWith("/cas/v1/chunks/")) return "dedup-query";
    if (path.startsWith("/cas/v2/reconstructions/")) return "reconstruction";
    if (path.startsWith("/xet-transfer/")) return "xorb-download";
    if (/\/xet-(read|write)-token\//.test(path)) return "xet-token";
    if (path.startsWith("/lfs-upload/")) return "lfs-upload";
    if (path.startsWith("/cdn/")) return "lfs-download";
    if (path.endsWith("/info/lfs/objects/batch")) return "lfs-batch";
    if (/^\/api\/[^/]+\/[^/]+\/[^/]+\/commit\//.test(path)) return "commit";
    return "other";
  }

  private count(req: IncomingMessage, res: ServerResponse): void {
    const endpoint = this.endpointOf(req.method ?? "GET", (req.url ?? "/").split("?")[0]);
    const counter = this.bytes.get(endpoint) ?? { requests: 0, bytesIn: 0, bytesOut: 0 };
    this.bytes.set(endpoint, counter);
    counter.requests += 1;
    // The HTTP parser pushes body chunks into the request after this runs; a "data" listener would switch the
    // stream to flowing mode and lose them for the route.
    const push = req.push.bind(req);
    req.push = (chunk: unknown, encoding?: BufferEncoding) => {
      if (chunk instanceof Uint8Array) counter.bytesIn += chunk.length;
      return push(chunk, encoding);
    };
    const write = res.write.bind(res) as (...args: unknown[]) => boolean;
    const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
    const add = (chunk: unknown) => {
      if (typeof chunk === "string") counter.bytesOut += Buffer.byteLength(chunk);
      else if (chunk instanceof Uint8Array) counter.bytesOut += chunk.length;
    };
    (res as unknown as { write: (...args: unknown[]) => boolean }).write = (...args: unknown[]) => {
      add(args[0]);
      return write(...args);
    };
    (res as unknown as { end: (...args: unknown[]) => ServerResponse }).end = (...args: unknown[]) => {
      if (typeof args[0] !== "function") add(args[0]);
      return end(...args);
    };
  }

  // ---- dispatch ----------------------------------------------------------------------------------------------

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const entry: RequestLogEntry = {
      method: req.method ?? "GET",
      url: req.url ?? "/",
      status: 0,
      ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
      ...(req.headers.range ? { range: req.headers.range } : {}),
      ...(req.headers.host ? { host: req.headers.host } : {}),
    };
    this.requests.push(entry);
    this.count(req, res);
    res.on("finish", () => void (entry.status = res.statusCode));
    res.on("close", () => void (entry.status ||= res.statusCode));

    for (const fault of this.faults) {
      if (!fault.take(req)) continue;
      const { spec } = fault;
      if (spec.transformBody && entry.method !== "HEAD") {
        const transform = spec.transformBody;
        captureResponse(res, (captured, send) => send(captured.status, captured.headers, transform(captured.body, req)));
        break;
      }
      if (spec.afterHandling) {
        captureResponse(res, (_captured, send) => {
          if (spec.reset) {
            entry.status = -1;
            res.socket?.destroy();
            return;
          }
          const status = spec.status ?? 500;
          send(status, { "Content-Type": "application/json", ...(spec.retryAfter !== undefined ? { "Retry-After": String(spec.retryAfter) } : {}) }, JSON.stringify({ error: `injected fault after handling (status ${status})` }));
        });
        break;
      }
      if (spec.reset) {
        entry.status = -1;
        req.socket.destroy();
        return;
      }
      if (spec.hang) {
        req.resume();
        return;
      }
      if (spec.expireXetToken) {
        // The token the request carries stops working from now on, as when it expires mid-upload.
        this.xet?.revoke(req);
        req.resume();
        sendError(res, new HttpError(401, "Unauthorized: the xet token expired"), entry.method);
        return;
      }
      if (spec.resetAfterBytes !== undefined) {
        cutResponseAfter(res, spec.resetAfterBytes);
        break;
      }
      const headers: Record<string, string> = spec.retryAfter !== undefined ? { "Retry-After": String(spec.retryAfter) } : {};
      req.resume();
      sendError(res, new HttpError(spec.status ?? 500, `injected fault (status ${spec.status ?? 500})`, undefined, headers), entry.method);
      return;
    }

    try {
      const url = new URL(req.url ?? "/", "http://emulator");
      const segments = url.pathname.split("/").slice(1).map((segment) => decodeURIComponent(segment));
      if (this.xet && segments[0] === "cas" && (await this.xet.handle(req, res, segments, originOf(req)))) return;
      if (this.xet && segments[0] === "xet-transfer" && this.xet.handleTransfer(req, res, segments, url)) return;
      const handled = (await handleReadRoute(this, req, res, segments, url)) || (await handleWriteRoute(this, req, res, segments, url));
      if (!handled) throw new HttpError(404, `Sorry, we can't find the page you are looking for (${url.pathname})`);
    } catch (error) {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      req.resume();
      const httpError = error instanceof HttpError ? error : new HttpError(500, `emulator error: ${(error as Error).message}`);
      sendError(res, httpError, entry.method);
    }
  }
}

/** Starts an emulator on 127.0.0.1 (a free port unless one is given). */
export async function startHubEmulator(options: HubEmulatorOptions = {}): Promise<HubEmulator> {
  const emulator = new HubEmulator(options);
  await emulator.listen(options.port ?? 0);
  return emulator;
}
