/** HubHttp: which failures are retried, how long it waits, what it remembers, and streamed uploads. */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { HubHttp, HubNetworkError, type RetryInfo } from "../../lib/hub/hub-http.js";
import { DiskFileBlob } from "../../lib/hub/disk-file-blob.js";
import { startHubEmulator } from "../hub-emulator/hub-emulator.js";
import { scratch } from "../hub-emulator/test-fixtures.js";

const hub = await startHubEmulator();
after(() => hub.close());
hub.addToken("hf_owner", { user: "owner" });
hub.addFiles("owner/m", { "config.json": "{}" });
const infoUrl = `${hub.url}/api/models/owner/m`;

function client(retries?: RetryInfo[]): HubHttp {
  return new HubHttp({ baseDelayMs: 2, onRetry: (info) => retries?.push(info) });
}

function requestsTo(path: string, since: number): number {
  return hub.requests.slice(since).filter((r) => r.url.startsWith(path)).length;
}

test("500, 502, 503, 504 and a dropped connection are retried until the Hub answers", async () => {
  for (const fault of [{ status: 500 }, { status: 502 }, { status: 503 }, { status: 504 }, { reset: true }]) {
    const retries: RetryInfo[] = [];
    hub.injectFault({ pathMatches: "/api/models/owner/m", ...fault });
    const response = await client(retries).fetch(infoUrl);
    assert.equal(response.status, 200, JSON.stringify(fault));
    assert.equal(retries.length, 1);
    assert.equal(retries[0].reason, fault.status ? `HTTP ${fault.status}` : retries[0].reason);
    assert.equal(retries[0].url, infoUrl);
    hub.clearFaults();
  }
});

test("429 waits for Retry-After", async () => {
  const retries: RetryInfo[] = [];
  hub.injectFault({ pathMatches: "/api/models/owner/m", status: 429, retryAfter: 1 });
  const started = Date.now();
  const response = await client(retries).fetch(infoUrl);
  assert.equal(response.status, 200);
  assert.equal(retries[0].delayMs, 1000);
  assert.ok(Date.now() - started >= 950, `waited ${Date.now() - started} ms`);
  hub.clearFaults();
});

test("backoff doubles from the base and is capped at 8× base; the environment sets the base", () => {
  const http = new HubHttp({ baseDelayMs: 5 });
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((attempt) => http.delayFor(attempt)), [5, 10, 20, 40, 40, 40]);
  assert.equal(new HubHttp({ env: { ABLITERATE_RETRY_BASE_MS: "7" } }).delayFor(2), 14);
  assert.equal(new HubHttp({ env: {} }).delayFor(1), 1000);
});

test("retries are bounded: after 5 the failure is handed back", async () => {
  const retries: RetryInfo[] = [];
  hub.injectFault({ pathMatches: "/api/models/owner/m", status: 503, times: 100 });
  const since = hub.requests.length;
  const response = await client(retries).fetch(infoUrl);
  assert.equal(response.status, 503);
  assert.equal(retries.length, 5);
  assert.equal(requestsTo("/api/models/owner/m", since), 6);
  hub.clearFaults();
});

test("a host that does not resolve is not retried, a failed lookup once, a refused or reset connection 5 times", async () => {
  for (const [code, sent] of [["ENOTFOUND", 1], ["EAI_AGAIN", 2], ["ECONNREFUSED", 6], ["ECONNRESET", 6]] as const) {
    let calls = 0;
    const failing = (async () => {
      calls += 1;
      throw new TypeError("fetch failed", { cause: Object.assign(new Error(`getaddrinfo ${code} huggingface.co`), { code }) });
    }) as typeof fetch;
    const http = new HubHttp({ baseDelayMs: 1, fetch: failing });
    await assert.rejects(http.fetch(`${hub.url}/api/models/owner/m?signed=secret`), (error: unknown) => {
      assert.ok(error instanceof HubNetworkError, String(error));
      assert.equal(error.attempts, sent);
      assert.match(error.message, new RegExp(`after ${sent} attempts? \\(${code}\\)`));
      assert.doesNotMatch(error.message, /secret/);
      return true;
    });
    assert.equal(calls, sent, code);
  }
});

test("commits are never retried; 4xx answers are not retried and their X-Error-Code is remembered", async () => {
  hub.injectFault({ pathMatches: "/commit/main", status: 500 });
  const since = hub.requests.length;
  const http = client();
  const commit = await http.fetch(`${hub.url}/api/models/owner/m/commit/main`, { method: "POST", body: "{}" });
  assert.equal(commit.status, 500);
  assert.equal(requestsTo("/api/models/owner/m/commit", since), 1);
  hub.clearFaults();

  const missing = await http.fetch(`${hub.url}/api/models/owner/m/revision/nope`);
  assert.equal(missing.status, 404);
  assert.equal(requestsTo("/api/models/owner/m/revision/nope", since), 1);
  assert.equal(http.errorCodeFor(missing.url), "RevisionNotFound");
});

test("a DiskFileBlob is PUT streamed from disk, reported, and re-sent whole after a reset", async () => {
  const { root, cleanup } = scratch();
  try {
    const path = join(root, "weights.bin");
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < bytes.length; i += 1) bytes[i] = (i * 7 + (i >> 11)) & 0xff;
    writeFileSync(path, bytes);
    const oid = createHash("sha256").update(bytes).digest("hex");
    hub.createRepo("owner/streamed");
    const batch = await fetch(`${hub.url}/owner/streamed.git/info/lfs/objects/batch`, {
      method: "POST",
      headers: { Authorization: "Bearer hf_owner" },
      body: JSON.stringify({ operation: "upload", transfers: ["basic"], objects: [{ oid, size: bytes.length }] }),
    });
    const href = ((await batch.json()) as { objects: { actions: { upload: { href: string } } }[] }).objects[0].actions.upload.href;

    const progress: number[] = [];
    const retries: RetryInfo[] = [];
    const http = new HubHttp({ baseDelayMs: 2, onRetry: (info) => retries.push(info), onUploadProgress: (p) => progress.push(p.loaded) });
    hub.injectFault({ pathMatches: "/lfs-upload/", method: "PUT", reset: true });
    const blob = await DiskFileBlob.open(path);
    const response = await http.fetch(href, { method: "PUT", body: blob, progressHint: { path: "weights.bin", progressCallback: () => undefined } } as RequestInit);
    assert.equal(response.status, 200, await response.text());
    assert.equal(retries.length, 1, "the reset upload was retried");
    assert.equal(progress.at(-1), bytes.length);
    assert.ok(progress.length > 3, "progress arrives while streaming");
    assert.equal(hub.repo("owner/streamed").lfsObjects.has(oid), true, "the emulator checked the sha256 and stored it");
    assert.deepEqual(Buffer.from(await blob.slice(100, 5000).arrayBuffer()), bytes.subarray(100, 5000));
    assert.equal(await new Response(blob.slice(bytes.length - 10).stream()).text(), bytes.subarray(bytes.length - 10).toString());
  } finally {
    hub.clearFaults();
    cleanup();
  }
});
