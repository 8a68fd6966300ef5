/** Small HTTP helpers shared by the emulator's routes: bodies, JSON answers, and Hub-shaped errors. */
import type { IncomingMessage, ServerResponse } from "node:http";

/** The `X-Error-Code` values the Hub sends and the clients branch on. */
export type HubErrorCode = "RepoNotFound" | "RevisionNotFound" | "EntryNotFound" | "GatedRepo";

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errorCode?: HubErrorCode,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { "Content-Type": "application/json; charset=utf-8", "Content-Length": body.length, ...headers });
  res.end(body);
}

export function sendError(res: ServerResponse, error: HttpError, method: string): void {
  const headers: Record<string, string> = { ...error.headers };
  if (error.errorCode) headers["X-Error-Code"] = error.errorCode;
  // Header values must be ASCII/latin1; the JSON body carries the full message.
  headers["X-Error-Message"] = error.message.replace(/[^\x20-\x7e]/g, "?");
  if (method === "HEAD") {
    res.writeHead(error.status, headers);
    res.end();
    return;
  }
  sendJson(res, error.status, { error: error.message }, headers);
}

export async function readBody(req: IncomingMessage, limit = 64 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, "request body too large");
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const body = await readBody(req);
  try {
    const value = JSON.parse(body.toString("utf8") || "{}");
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("not an object");
    return value as Record<string, unknown>;
  } catch {
    throw new HttpError(400, "request body is not a JSON object");
  }
}

/** JSON or form-encoded body (huggingface_hub sends form data to paths-info); repeated form keys become arrays. */
export async function readJsonOrForm(req: IncomingMessage): Promise<Record<string, unknown>> {
  if ((req.headers["content-type"] ?? "").includes("application/x-www-form-urlencoded")) {
    const params = new URLSearchParams((await readBody(req)).toString("utf8"));
    const result: Record<string, unknown> = {};
    for (const key of new Set(params.keys())) {
      const values = params.getAll(key);
      result[key] = key === "paths" ? values : values[values.length - 1];
    }
    return result;
  }
  return readJson(req);
}

export function isTruthy(value: unknown): boolean {
  return value === true || (typeof value === "string" && ["1", "true", "yes", "on"].includes(value.toLowerCase()));
}

/** Origin of this request as the client reached it, for absolute URLs (Link headers, CDN redirects). */
export function originOf(req: IncomingMessage): string {
  return `http://${req.headers.host ?? "127.0.0.1"}`;
}

export function encodePath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

/** Parses `Range: bytes=a-b` / `bytes=a-` / `bytes=-n` against a size; undefined when absent or unsatisfiable-as-whole. */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | "invalid" | undefined {
  if (!header) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === "" && match[2] === "")) return undefined;
  let start: number;
  let end: number;
  if (match[1] === "") {
    const suffix = Number(match[2]);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  }
  if (start >= size || start > end) return "invalid";
  return { start, end };
}
