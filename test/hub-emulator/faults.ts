/**
 * Fault injection: answer the Nth matching request with a status, or cut the connection (before or mid-body, or
 * after the request took effect), or rewrite what the route answered (hostile listings, wrong bytes).
 */
import type { IncomingMessage, ServerResponse } from "node:http";

export interface FaultSpec {
  /** Which matching request fails first (1-based). Default 1. */
  nth?: number;
  /** How many consecutive matching requests fail from the nth on. Default 1. */
  times?: number;
  /** Substring or regular expression tested against the request path and query. */
  pathMatches?: string | RegExp;
  method?: string;
  /** Answer with this status (a JSON `{error}` body). */
  status?: number;
  /** Sent as `Retry-After` with the status: seconds, or an HTTP date. */
  retryAfter?: number | string;
  /** Destroy the socket without answering. */
  reset?: boolean;
  /** Accept the request and never answer it (no headers): a stalled Hub. */
  hang?: boolean;
  /** Answer 401 and revoke the xet token the request carries: a CAS token that expires mid-upload. */
  expireXetToken?: boolean;
  /** Let the route answer, but close the connection after this many body bytes. */
  resetAfterBytes?: number;
  /**
   * Let the route handle the request first (a commit lands, an upload is stored), then replace its answer with
   * `status` or `reset`: the client cannot tell whether the request took effect.
   */
  afterHandling?: boolean;
  /**
   * Let the route answer, then rewrite the body (Content-Length follows): a hostile listing, a CDN serving the
   * wrong bytes. `editJson` and `flipByte` build common ones. Not applied to HEAD requests.
   */
  transformBody?: (body: Buffer, req: IncomingMessage) => Buffer | string;
}

export interface FaultHandle {
  /** Matching requests seen so far. */
  readonly seen: number;
  /** Requests this fault actually broke. */
  readonly fired: number;
}

export class Fault implements FaultHandle {
  seen = 0;
  fired = 0;

  constructor(readonly spec: FaultSpec) {}

  /** Counts the request when it matches and says whether this one is to be broken. */
  take(req: IncomingMessage): boolean {
    const { spec } = this;
    if (spec.method && spec.method.toUpperCase() !== req.method) return false;
    const url = req.url ?? "";
    if (spec.pathMatches !== undefined) {
      const matches = typeof spec.pathMatches === "string" ? url.includes(spec.pathMatches) : spec.pathMatches.test(url);
      if (!matches) return false;
    }
    this.seen += 1;
    const first = spec.nth ?? 1;
    const last = first + (spec.times ?? 1) - 1;
    if (this.seen < first || this.seen > last) return false;
    this.fired += 1;
    return true;
  }
}

/**
 * Passes the first `limit` body bytes through, then drops the connection. The drop waits a moment after the
 * bytes are flushed: a client whose stream errors drops chunks it has not read yet, and the point is a
 * connection lost after data arrived.
 */
export function cutResponseAfter(res: ServerResponse, limit: number): void {
  let sent = 0;
  let cut = false;
  const write = res.write.bind(res) as (chunk: unknown, callback?: () => void) => boolean;
  const drop = () => setTimeout(() => res.socket?.destroy(), 50);
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    if (cut) return false;
    const bytes = typeof chunk === "string" ? Buffer.from(chunk) : Buffer.from(chunk as Uint8Array);
    if (sent + bytes.length < limit) {
      sent += bytes.length;
      return write(bytes, rest.find((arg) => typeof arg === "function") as (() => void) | undefined);
    }
    const head = bytes.subarray(0, limit - sent);
    sent = limit;
    cut = true;
    write(head, drop);
    return false;
  }) as ServerResponse["write"];
  res.end = ((...args: unknown[]) => {
    const chunk = args.find((arg) => typeof arg === "string" || arg instanceof Uint8Array);
    if (chunk !== undefined) res.write(chunk as Buffer);
    // A body shorter than the limit is cut at its end, so the client still sees a connection closed mid-response.
    if (!cut) {
      cut = true;
      write(Buffer.alloc(0), drop);
    }
    return res;
  }) as ServerResponse["end"];
}

/** What a route answered, held back by captureResponse. */
export interface CapturedResponse {
  status: number;
  headers: Record<string, string | number | string[]>;
  body: Buffer;
}

/**
 * Holds back everything a route writes; when it ends, `onEnd` decides what the client gets, through `send`
 * (the real writeHead/end) or by destroying the socket.
 */
export function captureResponse(res: ServerResponse, onEnd: (captured: CapturedResponse, send: (status: number, headers: Record<string, string | number | string[]>, body: Buffer | string) => void) => void): void {
  const original = { writeHead: res.writeHead.bind(res), write: res.write.bind(res), end: res.end.bind(res) };
  let status = 200;
  let headers: Record<string, string | number | string[]> = {};
  const chunks: Buffer[] = [];
  const take = (chunk: unknown) => {
    if (typeof chunk === "string") chunks.push(Buffer.from(chunk));
    else if (chunk instanceof Uint8Array) chunks.push(Buffer.from(chunk));
  };
  res.writeHead = ((code: number, ...rest: unknown[]) => {
    status = code;
    const given = rest.find((arg) => typeof arg === "object" && arg !== null) as Record<string, string | number | string[]> | undefined;
    if (given) headers = { ...headers, ...given };
    return res;
  }) as ServerResponse["writeHead"];
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    take(chunk);
    (rest.find((arg) => typeof arg === "function") as (() => void) | undefined)?.();
    return true;
  }) as ServerResponse["write"];
  res.end = ((...args: unknown[]) => {
    take(args.find((arg) => typeof arg === "string" || arg instanceof Uint8Array));
    res.writeHead = original.writeHead;
    res.write = original.write;
    res.end = original.end;
    for (const name of res.getHeaderNames()) if (!(name in headers)) headers[name] = res.getHeader(name) as string;
    onEnd({ status, headers, body: Buffer.concat(chunks) }, (newStatus, newHeaders, body) => {
      for (const name of res.getHeaderNames()) res.removeHeader(name);
      const bytes = typeof body === "string" ? Buffer.from(body) : body;
      const kept = Object.fromEntries(Object.entries(newHeaders).filter(([key]) => key.toLowerCase() !== "content-length"));
      original.writeHead(newStatus, { ...kept, "Content-Length": String(bytes.length) });
      original.end(bytes);
    });
    return res;
  }) as ServerResponse["end"];
}

/** A transformBody that parses the JSON answer, hands it to `edit`, and sends what `edit` returns. */
export function editJson(edit: (value: any, req: IncomingMessage) => unknown): (body: Buffer, req: IncomingMessage) => string {
  return (body, req) => JSON.stringify(edit(JSON.parse(body.toString("utf8")), req));
}

/** A transformBody that flips one byte (wrong content, right size); `offset` counts from the end when negative. */
export function flipByte(offset = 0): (body: Buffer) => Buffer {
  return (body) => {
    if (body.length === 0) return body;
    const copy = Buffer.from(body);
    const at = ((offset % copy.length) + copy.length) % copy.length;
    copy[at] ^= 0xff;
    return copy;
  };
}
