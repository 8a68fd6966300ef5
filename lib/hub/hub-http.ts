/**
 * The `fetch` handed to @huggingface/hub for every call:
 * - retries 429 (honouring Retry-After), 500/502/503/504 and dropped connections with bounded exponential
 *   backoff (base `ABLITERATE_RETRY_BASE_MS`, default 1000 ms, doubling, at most 8× base; 5 retries); commits
 *   are never retried, since a commit that reached the Hub must not be made twice;
 * - remembers each failed response's `X-Error-Code` (RepoNotFound, RevisionNotFound, …), which the library's
 *   HubApiError drops, so errors can say what was not found;
 * - sends DiskFileBlob bodies through node:http with a stream pipeline: Node 20's fetch buffers a whole request
 *   body in memory, which a multi-GB shard must never be.
 */
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { request as httpsRequest } from "node:https";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { DiskFileBlob } from "./disk-file-blob.js";

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
  onRetry?: (info: RetryInfo) => void;
  onUploadProgress?: (progress: UploadProgress) => void;
  /** The underlying fetch (tests may substitute one). */
  fetch?: typeof fetch;
  env?: NodeJS.ProcessEnv;
}

const RETRY_STATUSES = new Set([429, 500, 502, 503, 504]);
const MAX_RETRY_AFTER_MS = 120_000;

function withoutQuery(url: string): string {
  return url.split("?")[0];
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
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, MAX_RETRY_AFTER_MS);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.min(Math.max(0, date - Date.now()), MAX_RETRY_AFTER_MS);
}

function networkReason(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  const code = (error as { code?: string }).code ?? cause?.code;
  return code ?? cause?.message ?? (error as Error).message ?? "network error";
}

export function isAbortError(error: unknown): boolean {
  return (error as Error)?.name === "AbortError";
}

export class HubHttp {
  readonly fetch: typeof fetch;
  private readonly errorCodes = new Map<string, string>();
  private readonly retries: number;
  private readonly baseDelayMs: number;

  constructor(private readonly options: HubHttpOptions = {}) {
    const env = options.env ?? process.env;
    const envBase = Number(env.ABLITERATE_RETRY_BASE_MS);
    this.baseDelayMs = options.baseDelayMs ?? (Number.isFinite(envBase) && envBase >= 0 && env.ABLITERATE_RETRY_BASE_MS ? envBase : 1000);
    this.retries = options.retries ?? 5;
    this.fetch = ((input: string | URL | Request, init?: RequestInit) => this.send(input, init)) as typeof fetch;
  }

  /** `X-Error-Code` of the failed response for this URL, if the Hub sent one. */
  errorCodeFor(url: string | undefined): string | undefined {
    return url === undefined ? undefined : this.errorCodes.get(url);
  }

  /** Backoff before retry number `attempt` (1-based). */
  delayFor(attempt: number): number {
    return Math.min(this.baseDelayMs * 2 ** (attempt - 1), this.baseDelayMs * 8);
  }

  private async send(input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
    const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
    const method = (init.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase();
    const retryable = !(method === "POST" && /\/api\/[^/]+\/.+\/commit\//.test(url));
    for (let attempt = 1; ; attempt += 1) {
      let response: Response;
      try {
        response = init.body instanceof DiskFileBlob ? await this.upload(url, method, init, init.body) : await (this.options.fetch ?? fetch)(input, init);
      } catch (error) {
        if (isAbortError(error) || !retryable || attempt > this.retries) throw error;
        await this.wait({ url: withoutQuery(url), attempt, delayMs: this.delayFor(attempt), reason: networkReason(error) });
        continue;
      }
      if (RETRY_STATUSES.has(response.status) && retryable && attempt <= this.retries) {
        const delayMs = (response.status === 429 ? retryAfterMs(response.headers.get("Retry-After")) : undefined) ?? this.delayFor(attempt);
        await response.body?.cancel().catch(() => undefined);
        await this.wait({ url: withoutQuery(url), attempt, delayMs, reason: `HTTP ${response.status}` });
        continue;
      }
      if (!response.ok) {
        const code = response.headers.get("X-Error-Code");
        if (code) {
          this.errorCodes.set(response.url || url, code);
          this.errorCodes.set(url, code);
        }
      }
      return response;
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
