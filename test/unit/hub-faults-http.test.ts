/**
 * HubHttp's fault handling below the CLI: Retry-After honoured but bounded, the final network failure naming
 * the URL without its query, commits sent once (looked up on the Hub before any resend), and the redaction of
 * tokens and signed URLs from every message and error object.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { HubApiError } from "@huggingface/hub";
import { isAbliterateError } from "../../lib/errors.js";
import { parseCommitRequest } from "../../lib/hub/commit-once.js";
import { redactHubText, toHubError } from "../../lib/hub/hub-errors.js";
import { HubHttp, HubNetworkError, type RetryInfo } from "../../lib/hub/hub-http.js";
import { knownSecrets, redactSecrets } from "../../lib/cli/redact-secrets.js";
import { startHubEmulator } from "../hub-emulator/hub-emulator.js";
import { scratch } from "../hub-emulator/test-fixtures.js";

const TOKEN = "hf_UnitFaultToken7Hq2LmZx9PwRk4";
const hub = await startHubEmulator();
after(() => hub.close());
hub.addToken(TOKEN, { user: "me" });
hub.addFiles("me/m", { "config.json": "{}" });
const infoUrl = `${hub.url}/api/models/me/m`;

function since(index: number, fragment: string, method?: string): number {
  return hub.requests.slice(index).filter((r) => r.url.includes(fragment) && (!method || r.method === method)).length;
}

test("Retry-After is honoured on 429 and 503, as seconds or a date, but never beyond the bound", async () => {
  const cases: { status: number; retryAfter: number | string; expect: (ms: number) => boolean }[] = [
    { status: 429, retryAfter: 3600, expect: (ms) => ms === 40 },
    { status: 503, retryAfter: 3600, expect: (ms) => ms === 40 },
    { status: 429, retryAfter: new Date(Date.now() + 3_600_000).toUTCString(), expect: (ms) => ms === 40 },
    { status: 429, retryAfter: 0, expect: (ms) => ms === 0 },
    { status: 503, retryAfter: "soon", expect: (ms) => ms === 2 }, // unreadable: the backoff
  ];
  for (const { status, retryAfter, expect } of cases) {
    const retries: RetryInfo[] = [];
    hub.injectFault({ pathMatches: "/api/models/me/m", status, retryAfter });
    const http = new HubHttp({ baseDelayMs: 2, maxRetryWaitMs: 40, onRetry: (info) => retries.push(info) });
    const started = Date.now();
    const response = await http.fetch(infoUrl);
    hub.clearFaults();
    assert.equal(response.status, 200);
    assert.equal(retries.length, 1);
    assert.ok(expect(retries[0].delayMs), `${status} Retry-After ${retryAfter}: waited ${retries[0].delayMs} ms`);
    assert.ok(Date.now() - started < 2000);
  }
  assert.equal(new HubHttp({ env: { ABLITERATE_RETRY_MAX_WAIT_MS: "25" } })["maxRetryWaitMs"], 25);
  assert.equal(new HubHttp({ env: {} })["maxRetryWaitMs"], 60_000, "one minute unless told otherwise");
});

test("a connection that keeps dropping ends in a HubNetworkError naming the URL without its query", async () => {
  hub.injectFault({ pathMatches: "/api/models/me/m", reset: true, times: 100 });
  const index = hub.requests.length;
  const http = new HubHttp({ baseDelayMs: 1, retries: 3 });
  await assert.rejects(http.fetch(`${infoUrl}?sig=SECRETSIG&token=${TOKEN}`), (error) => {
    assert.ok(error instanceof HubNetworkError);
    assert.equal(error.attempts, 4);
    assert.equal(error.url, infoUrl);
    assert.match(error.message, new RegExp(`^GET ${infoUrl.replace(/[.]/g, "\\.")} got no answer after 4 attempts \\(`));
    assert.ok(!error.message.includes("SECRETSIG") && !error.message.includes(TOKEN));
    return true;
  });
  hub.clearFaults();
  assert.equal(since(index, "/api/models/me/m"), 4);
});

function commitBody(files: Record<string, string>, summary = "add"): string {
  return [
    { key: "header", value: { summary } },
    ...Object.entries(files).map(([path, text]) => ({ key: "file", value: { path, content: Buffer.from(text).toString("base64"), encoding: "base64" } })),
  ].map((line) => JSON.stringify(line)).join("\n");
}

function commitInit(body: string): RequestInit {
  return { method: "POST", headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/x-ndjson" }, body };
}

test("parseCommitRequest reads the repo, revision, PR flag and the files a commit sends", () => {
  const body = [
    JSON.stringify({ key: "header", value: { summary: "s" } }),
    JSON.stringify({ key: "file", value: { path: "a.txt", content: Buffer.from("hi").toString("base64"), encoding: "base64" } }),
    JSON.stringify({ key: "lfsFile", value: { path: "w.safetensors", algo: "sha256", oid: "c".repeat(64), size: 3 } }),
    JSON.stringify({ key: "deletedFile", value: { path: "old.txt" } }),
  ].join("\n");
  const request = parseCommitRequest(`${hub.url}/api/models/me/m/commit/refs%2Fpr%2F2?create_pr=1`, commitInit(body));
  assert.ok(request);
  assert.equal(request.repo, "me/m");
  assert.equal(request.revision, "refs/pr/2");
  assert.equal(request.createPr, true);
  assert.equal(request.authorization, `Bearer ${TOKEN}`);
  // git hash-object of "hi": printf hi | git hash-object --stdin
  assert.deepEqual(request.expected.map((e) => [e.path, e.gitOid ?? e.sha256, e.absent ?? false]), [
    ["a.txt", "32f95c0d1244a78b2be1bab8de17906fabb2c4a8", false],
    ["w.safetensors", "c".repeat(64), false],
    ["old.txt", undefined, true],
  ]);
  assert.equal(parseCommitRequest(`${hub.url}/api/models/me/m/commit/main`, { method: "POST", body: new Blob(["x"]) }), undefined, "an unreadable body: no lookup, no resend");
});

test("idempotent commits: an answer lost after the commit landed is recovered from the Hub, not re-sent", async () => {
  hub.createRepo("me/once");
  const before = hub.repo("me/once").commits.size;
  const index = hub.requests.length;
  hub.injectFault({ pathMatches: "/api/models/me/once/commit/", afterHandling: true, reset: true });
  const retries: RetryInfo[] = [];
  const http = new HubHttp({ baseDelayMs: 1, idempotentCommits: true, onRetry: (info) => retries.push(info) });
  const response = await http.fetch(`${hub.url}/api/models/me/once/commit/main`, commitInit(commitBody({ "a.txt": "one" })));
  hub.clearFaults();
  assert.equal(response.status, 200);
  const json = (await response.json()) as { commitOid: string; commitUrl: string };
  assert.equal(hub.repo("me/once").commits.size, before + 1, "exactly one commit");
  assert.equal(json.commitOid, hub.head("me/once"));
  assert.equal(json.commitUrl, `${hub.url}/me/once/commit/${json.commitOid}`);
  assert.equal(since(index, "/commit/main", "POST"), 1, "the commit was sent once");
  assert.equal(retries.length, 1);
});

test("idempotent commits: a commit refused before it landed (503) is sent again, once it is clear it did not land", async () => {
  hub.createRepo("me/twice");
  const before = hub.repo("me/twice").commits.size;
  const index = hub.requests.length;
  hub.injectFault({ pathMatches: "/api/models/me/twice/commit/", status: 503, times: 2 });
  const http = new HubHttp({ baseDelayMs: 1, idempotentCommits: true });
  const response = await http.fetch(`${hub.url}/api/models/me/twice/commit/main`, commitInit(commitBody({ "a.txt": "two" })));
  hub.clearFaults();
  assert.equal(response.status, 200);
  assert.equal(hub.repo("me/twice").commits.size, before + 1);
  assert.equal(since(index, "/commit/main", "POST"), 3);
  assert.equal(hub.files("me/twice").get("a.txt")?.content.toString(), "two");
});

test("idempotent commits: a PR whose answer was lost is found among the new pull requests, not opened twice", async () => {
  hub.addFiles("me/pr", { "a.txt": "base" });
  hub.injectFault({ pathMatches: "/api/models/me/pr/commit/", afterHandling: true, status: 504 });
  const http = new HubHttp({ baseDelayMs: 1, idempotentCommits: true });
  const response = await http.fetch(`${hub.url}/api/models/me/pr/commit/main?create_pr=1`, commitInit(commitBody({ "a.txt": "proposal" })));
  hub.clearFaults();
  assert.equal(response.status, 200);
  const json = (await response.json()) as { pullRequestUrl: string; commitOid: string };
  assert.equal(hub.repo("me/pr").pullRequests.size, 1, "one pull request");
  assert.equal(json.pullRequestUrl, `${hub.url}/me/pr/discussions/1`);
  assert.equal(json.commitOid, hub.head("me/pr", "refs/pr/1"));
});

test("without idempotent commits a commit is tried once, and the raw failure comes back", async () => {
  hub.createRepo("me/raw");
  hub.injectFault({ pathMatches: "/api/models/me/raw/commit/", reset: true });
  const http = new HubHttp({ baseDelayMs: 1 });
  await assert.rejects(http.fetch(`${hub.url}/api/models/me/raw/commit/main`, commitInit(commitBody({ "a.txt": "x" }))), (error) => error instanceof HubNetworkError && error.attempts === 1);
  hub.clearFaults();
});

test("library errors are redacted: no token, no signed query, no server echo travels on", () => {
  const signed = `https://cdn.example/lfs/abc?X-Amz-Signature=deadbeef&token=${TOKEN}`;
  assert.equal(redactHubText(`fetch ${signed}, then https://user:${TOKEN}@host.example/x.`, TOKEN), "fetch https://cdn.example/lfs/abc, then https://host.example/x.");

  const apiError = new HubApiError(signed, 500, "req-1", `Api error with status 500. URL: ${signed}`);
  apiError.data = { error: `upstream said: Bearer ${TOKEN}` };
  const translated = toHubError(apiError, { repo: "org/x", endpoint: "https://huggingface.co", token: TOKEN, action: "download" });
  assert.ok(!translated.message.includes(TOKEN) && !translated.message.includes("deadbeef"), translated.message);
  assert.match(translated.message, /status 500 .*at \/lfs\/abc/);
  assert.equal(translated.cause, undefined, "the library's error object is not kept");

  const odd = new Error(`Cannot get ETag of part during multipart upload from ${signed} with ${TOKEN}`);
  const wrapped = toHubError(odd, { repo: "org/x", endpoint: "https://huggingface.co", token: TOKEN, action: "push" });
  assert.ok(isAbliterateError(wrapped));
  for (const text of [wrapped.message, String((wrapped.cause as Error).message), String((wrapped.cause as Error).stack)]) {
    assert.ok(!text.includes(TOKEN) && !text.includes("deadbeef"), text);
  }
  assert.notEqual(wrapped.cause, odd);
});

test("the CLI's redaction knows every token source: HF_TOKEN, the legacy variable, --token, the token file", () => {
  const { root, cleanup } = scratch();
  try {
    const file = join(root, "token");
    writeFileSync(file, "hf_fromFile.with$odd%chars\n");
    const env = { HF_TOKEN: "hf_fromEnv", HUGGING_FACE_HUB_TOKEN: "hf_legacyEnv", HF_TOKEN_PATH: file };
    assert.deepEqual(knownSecrets(env, ["node", "cli", "--token", "hf_fromArg", "--token=hf_fromArgEq"]).sort(), ["hf_fromArg", "hf_fromArgEq", "hf_fromEnv", "hf_fromFile.with$odd%chars", "hf_legacyEnv"]);

    const saved = process.env.HF_TOKEN_PATH;
    process.env.HF_TOKEN_PATH = file;
    try {
      // The shape-based pattern alone would leave ".with$odd%chars" behind; the verbatim token goes whole.
      assert.equal(redactSecrets("token hf_fromFile.with$odd%chars was refused"), "token hf_*** was refused");
    } finally {
      if (saved === undefined) delete process.env.HF_TOKEN_PATH;
      else process.env.HF_TOKEN_PATH = saved;
    }
    assert.equal(redactSecrets(`Bearer ${TOKEN} at https://me:pw@host/x?sig=abc`), "Bearer hf_*** at https://host/x");
  } finally {
    cleanup();
  }
});
