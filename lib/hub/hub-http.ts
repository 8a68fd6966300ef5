/**
 * The `fetch` handed to @huggingface/hub for every call:
 * - retries 429, 500/502/503/504 and dropped connections with bounded exponential backoff (base
 *   `ABLITERATE_RETRY_BASE_MS`, default 1000 ms, doubling, at most 8× base; 5 retries), waiting what a
 *   Retry-After header asks for instead, up to `ABLITERATE_RETRY_MAX_WAIT_MS` (default 60 s) so a server cannot
 *   park the run;
 * - never sends a commit twice blindly: without `idempotentCommits` a commit is tried once; with it, a commit whose
 *   fate is unknown (no answer, or a 429/5xx) is retried only after the Hub shows it did not land
 *   (commit-once.ts), and one that did land is answered from the Hub's state;
 * - after the last retry, a dropped connection becomes a HubNetworkError naming the URL (never its query, where
 *   signed URLs carry credentials) and the number of attempts;
 * - remembers each failed response's `X-Error-Code` (RepoNotFound, RevisionNotFound, …), which the library's
 *   HubApiError drops, and how many attempts it took, so errors can say what was not found and how hard we tried;
 * - sends DiskFileBlob bodies through node:http with a stream pipeline: Node 20's fetch buffers a whole request
 *   body in memory, which a multi-GB shard must never be.
 */
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { commitBaseline, findLandedCommit, landedCommitResponse, parseCommitRequest, type CommitBaseline, type CommitRequest } from "./commit-once.js";
import { DiskFileBlob } from "./disk-file-blob.js";
import { XetTokenRefresher } from "./xet-token-refresh.js";

export interface RetryInfo {
  /** The URL without its query string (signed URLs carry credentials there). */
  url: string;
  attempt: number;
  delayMs: number;
  reason: string;
}

export interface UploadProgress {
  /** Repo path of the file, from @huggingface/hub's progress hint. */
  path: string;
  /** 0-based part index of a multipart upload. */
  part?: number;
  loaded: number;
  total: number;
}

export interface HubHttpOptions {
  retries?: number;
  baseDelayMs?: number;
  /** The longest Retry-After honoured. */
  maxRetryWaitMs?: number;
  /** Retry commits whose fate is unknown, after checking on the Hub that they did not land. */
  idempotentCommits?: boolean;
  onRetry?: (info: RetryInfo) => void;
  /** The Hub has not started answering a request for a while (said once per request). */
  onWaiting?: (info: { url: string; seconds: number }) => void;
  onUploadProgress?: (progress: UploadProgress) => void;
  /** Every request as it is sent (each attempt): the Xet upload statistics read xorb and shard bodies here. */
  onSend?: (request: { url: string; method: string; body: unknown }) => void;
  /** Every successful answer, before the caller reads it (read a clone). */
  onResponse?: (url: string, response: Response) => Promise<void>;
  /** The underlying fetch (tests may substitute one). */
  fetch?: typeof fetch;
  env?: NodeJS.ProcessEnv;
}

const RETRY_STATUSES = new Set([429, 500, 502, 503, 504]);
const DEFAULT_MAX_RETRY_WAIT_MS = 60_000;
const COMMIT_URL = /\/api\/[^/]+\/.+\/commit\//;

/** The URL as it may be shown: origin and path, without credentials in the userinfo or the query. */
export function displayUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return url.split(/[?#]/)[0];
  }
}

function headersOf(raw: IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const [key, value] of Object.entries(raw)) {
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value]) headers.append(key, item);
  }
  return headers;
}

function retryAfterMs(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (value.trim() !== "" && Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** A failure of the network (it has a system or undici error code), as opposed to a request that cannot be made. */
function isNetworkFailure(error: unknown): boolean {
  const cause = (error as { cause?: { code?: unknown } }).cause;
  return typeof (error as { code?: unknown }).code === "string" || typeof cause?.code === "string" || (error instanceof TypeError && (error as Error).message === "fetch failed" && cause !== undefined);
}

function networkReason(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const code = (error as { code?: string }).code ?? cause?.code;
  return code ?? cause?.message ?? (error as Error).message ?? "network error";
}

/**
 * Name-resolution failures: the machine is offline or HF_ENDPOINT names no host. Retrying for half a minute does not
 * change that and only delays the fall-back to the cache (Python's client falls back at once too), so a host that
 * does not exist is not retried and a failed lookup ("try again") only once.
 */
const RETRIES_AFTER_LOOKUP_FAILURE: Record<string, number> = { ENOTFOUND: 0, EAI_AGAIN: 1 };

function envNumber(value: string | undefined): number | undefined {
  const number = Number(value);
  return value && Number.isFinite(number) && number >= 0 ? number : undefined;
}

/** A request that got no answer, even after the retries: names the URL and what happened, never a credential. */
export class HubNetworkError extends AbliterateError {
  constructor(
    readonly method: string,
    /** As displayUrl shows it. */
    readonly url: string,
    readonly attempts: number,
    readonly reason: string,
    cause: unknown,
  ) {
    super(ErrorCodes.HUB, `${method} ${url} got no answer after ${attempts} attempt${attempts === 1 ? "" : "s"} (${reason})`, { cause });
  }
}

export function isAbortError(error: unknown): boolean {
  return (error as Error)?.name === "AbortError";
}

export class HubHttp {
  readonly fetch: typeof fetch;
  readonly retries: number;
  private readonly errorCodes = new Map<string, string>();
  private readonly attempts = new Map<string, number>();
  private readonly baseDelayMs: number;
  private readonly maxRetryWaitMs: number;
  private readonly xetTokens: XetTokenRefresher;

  constructor(private readonly options: HubHttpOptions = {}) {
    const env = options.env ?? process.env;
    this.baseDelayMs = options.baseDelayMs ?? envNumber(env.ABLITERATE_RETRY_BASE_MS) ?? 1000;
    this.maxRetryWaitMs = options.maxRetryWaitMs ?? envNumber(env.ABLITERATE_RETRY_MAX_WAIT_MS) ?? DEFAULT_MAX_RETRY_WAIT_MS;
    this.retries = options.retries ?? 5;
    this.fetch = ((input: string | URL | Request, init?: RequestInit) => this.send(input, init)) as typeof fetch;
    this.xetTokens = new XetTokenRefresher((url, init) => (this.options.fetch ?? fetch)(url, init));
  }

  /** `X-Error-Code` of the failed response for this URL, if the Hub sent one. */
  errorCodeFor(url: string | undefined): string | undefined {
    return url === undefined ? undefined : this.errorCodes.get(url);
  }

  /** How many times the request that ended in this failed response was sent. */
  attemptsFor(url: string | undefined): number | undefined {
    return url === undefined ? undefined : this.attempts.get(url);
  }

  /** Backoff before retry number `attempt` (1-based). */
  delayFor(attempt: number): number {
    return Math.min(this.baseDelayMs * 2 ** (attempt - 1), this.baseDelayMs * 8);
  }

  /** The wait before retry `attempt` after this answer: its Retry-After when it has one, bounded, else the backoff. */
  private delayAfter(attempt: number, response?: Response): number {
    const asked = retryAfterMs(response?.headers.get("Retry-After") ?? null);
    return asked === undefined ? this.delayFor(attempt) : Math.min(asked, this.maxRetryWaitMs);
  }

  private once(input: string | URL | Request, url: string, method: string, init: RequestInit): Promise<Response> {
    return init.body instanceof DiskFileBlob ? this.upload(url, method, init, init.body) : this.fetchWithHeaderTimeout(input, url, method, init);
  }

  /**
   * Node's fetch waits 300 s for response headers. A Hub that accepted the connection but never answers is
   * given `ABLITERATE_HEADERS_TIMEOUT_MS` (default 60 s, plus the time a body needs at 64 KiB/s), said to be
   * waited for halfway (at most after 10 s), and then counted as a dropped connection, which is retried.
   */
  private async fetchWithHeaderTimeout(input: string | URL | Request, url: string, method: string, init: RequestInit): Promise<Response> {
    const env = this.options.env ?? process.env;
    const bodyBytes = init.body instanceof Uint8Array ? init.body.length : typeof init.body === "string" ? init.body.length : 0;
    const limitMs = (envNumber(env.ABLITERATE_HEADERS_TIMEOUT_MS) ?? 60_000) + (bodyBytes / (64 * 1024)) * 1000;
    const controller = new AbortController();
    const signal = init.signal ? AbortSignal.any([init.signal, controller.signal]) : controller.signal;
    let timedOut = false;
    const started = Date.now();
    const notice = setTimeout(() => this.options.onWaiting?.({ url: displayUrl(url), seconds: Math.round((Date.now() - started) / 100) / 10 }), Math.min(10_000, limitMs / 2));
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, limitMs);
    try {
      return await (this.options.fetch ?? fetch)(input, { ...init, signal });
    } catch (error) {
      if (!timedOut) throw error;
      throw Object.assign(new Error(`no response headers within ${(limitMs / 1000).toFixed(1)} s`), { code: `no response headers within ${(limitMs / 1000).toFixed(1)} s` });
    } finally {
      clearTimeout(notice);
      clearTimeout(timer);
    }
  }

  /** Hands a final answer back, remembering what a later error message needs. */
  private settle(url: string, response: Response, attempts: number): Response {
    if (!response.ok) {
      const code = response.headers.get("X-Error-Code");
      for (const key of new Set([url, response.url || url])) {
        this.attempts.set(key, attempts);
        if (code) this.errorCodes.set(key, code);
      }
    }
    return response;
  }

  private async send(input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const method = (init.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase();
    const isCommit = method === "POST" && COMMIT_URL.test(url);
    if (isCommit && this.options.idempotentCommits) return this.sendCommit(input, url, init);
    const retries = isCommit ? 0 : this.retries;
    let refreshedXetToken = false;
    init = this.xetTokens.prepare(url, init);
    for (let attempt = 1; ; attempt += 1) {
      let response: Response;
      try {
        this.options.onSend?.({ url, method, body: init.body });
        response = await this.once(input, url, method, init);
      } catch (error) {
        if (isAbortError(error)) throw error;
        const reason = networkReason(error);
        // A request that could not even be built (a malformed URL, credentials in it) fails the same way every time.
        const retryable = isNetworkFailure(error);
        if (!retryable || attempt > Math.min(retries, RETRIES_AFTER_LOOKUP_FAILURE[reason] ?? retries)) {
          throw new HubNetworkError(method, displayUrl(url), attempt, reason, error);
        }
        await this.wait({ url: displayUrl(url), attempt, delayMs: this.delayFor(attempt), reason });
        continue;
      }
      if (response.status === 401 && !refreshedXetToken && this.xetTokens.isCas(url)) {
        // A CAS token that expired mid-upload: one fresh token, and the same request again.
        refreshedXetToken = true;
        const renewed = await this.xetTokens.refresh(url, init);
        if (renewed) {
          await response.body?.cancel().catch(() => undefined);
          this.options.onRetry?.({ url: displayUrl(url), attempt, delayMs: 0, reason: "xet token expired; refreshed" });
          init = renewed;
          attempt -= 1;
          continue;
        }
      }
      if (response.ok) {
        await this.xetTokens.observe(url, init, response);
        await this.options.onResponse?.(url, response);
      }
      if (RETRY_STATUSES.has(response.status) && attempt <= retries) {
        const delayMs = this.delayAfter(attempt, response);
        await response.body?.cancel().catch(() => undefined);
        await this.wait({ url: displayUrl(url), attempt, delayMs, reason: `HTTP ${response.status}` });
        continue;
      }
      return this.settle(url, response, attempt);
    }
  }

  /**
   * A commit: sent, and when its fate is unknown (no answer, an answer lost half-way, a 429/5xx), looked up on the
   * Hub before it is sent again, so one push makes one commit. When the lookup cannot tell, the failure stands.
   */
  private async sendCommit(input: string | URL | Request, url: string, init: RequestInit): Promise<Response> {
    const request: CommitRequest | undefined = parseCommitRequest(url, init);
    let baseline: CommitBaseline | undefined;
    if (request) baseline = await commitBaseline(request, this.fetch).catch(() => undefined);
    for (let attempt = 1; ; attempt += 1) {
      let response: Response | undefined;
      let failure: unknown;
      try {
        this.options.onSend?.({ url, method: "POST", body: init.body });
        const answer = await this.once(input, url, "POST", init);
        // Read the whole (small) answer here: a connection lost while it arrives leaves the commit as unknown as no answer.
        const body = await answer.arrayBuffer();
        response = new Response(body.byteLength > 0 ? body : null, { status: answer.status, statusText: answer.statusText, headers: answer.headers });
        Object.defineProperty(response, "url", { value: answer.url || url });
      } catch (error) {
        if (isAbortError(error)) throw error;
        failure = error;
      }
      if (response && !RETRY_STATUSES.has(response.status)) return this.settle(url, response, attempt);
      const giveUp = () => {
        if (response) return this.settle(url, response, attempt);
        throw new HubNetworkError("POST", displayUrl(url), attempt, networkReason(failure), failure);
      };
      if (!request || !baseline || attempt > this.retries) return giveUp();
      await this.wait({ url: displayUrl(url), attempt, delayMs: this.delayAfter(attempt, response), reason: response ? `HTTP ${response.status}` : networkReason(failure) });
      let landed: Awaited<ReturnType<typeof findLandedCommit>>;
      try {
        landed = await findLandedCommit(request, baseline, this.fetch);
      } catch {
        return giveUp();
      }
      if (landed) return landedCommitResponse(request, landed);
    }
  }

  private async wait(info: RetryInfo): Promise<void> {
    this.options.onRetry?.(info);
    await new Promise((resolve) => setTimeout(resolve, info.delayMs));
  }

  /** PUT/POST of a file range over node:http(s), streamed with backpressure, reporting bytes sent. */
  private upload(url: string, method: string, init: RequestInit, body: DiskFileBlob): Promise<Response> {
    const target = new URL(url);
    const headers = new Headers(init.headers);
    headers.set("content-length", String(body.size));
    const hint = (init as { progressHint?: { path?: string; part?: number } }).progressHint;
    const report = this.options.onUploadProgress;
    const send = target.protocol === "https:" ? httpsRequest : httpRequest;
    return new Promise<Response>((resolve, reject) => {
      const req = send(target, { method, headers: Object.fromEntries(headers), signal: init.signal ?? undefined });
      req.on("response", (res) => {
        const status = res.statusCode ?? 500;
        const empty = status === 204 || status === 304 || method === "HEAD";
        const response = new Response(empty ? null : (Readable.toWeb(res) as ReadableStream), { status, statusText: res.statusMessage, headers: headersOf(res.headers) });
        Object.defineProperty(response, "url", { value: url });
        resolve(response);
      });
      req.on("error", reject);
      let loaded = 0;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          loaded += chunk.length;
          if (hint?.path) report?.({ path: hint.path, part: hint.part, loaded, total: body.size });
          callback(null, chunk);
        },
      });
      pipeline(body.nodeStream(), counter, req).catch(reject);
    });
  }
}
