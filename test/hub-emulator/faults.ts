/** Fault injection: answer the Nth matching request with a status, or cut the connection (before or mid-body). */
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
  /** Seconds, sent as `Retry-After` with the status. */
  retryAfter?: number;
  /** Destroy the socket without answering. */
  reset?: boolean;
  /** Let the route answer, but close the connection after this many body bytes. */
  resetAfterBytes?: number;
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
