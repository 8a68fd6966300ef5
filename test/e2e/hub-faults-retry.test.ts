/**
 * Transient Hub failures through the built CLI, on the download path (`inspect org/tiny` fetches the model) and
 * on every step of the push path: 429 with Retry-After (honoured, bounded), 500/502/503/504 and connection resets
 * are retried with backoff; a commit whose answer was lost is not made twice; and once the retry budget is spent,
 * the run stops with an error naming the URL path and the attempts, a non-zero exit, and no token anywhere.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli, type CliResult } from "../helpers/run-cli.js";
import { writeTinyLlama } from "../helpers/tiny-llama.js";
import { startHubEmulator } from "../hub-emulator/hub-emulator.js";
import { hubEnv, leaksSecret, publishFolder, scratch } from "../hub-emulator/test-fixtures.js";

const TOKEN = "hf_RetryFaultsZ4mQ8tV1nK6pX3wB7cJ2";
// Small multipart settings, so the push below goes through part PUTs and a completion as well.
const hub = await startHubEmulator({ multipartThreshold: 4000, multipartChunkSize: 2048 });
const { root, cleanup } = scratch("abl-hub-faults-retry-");
after(async () => {
  await hub.close();
  cleanup();
});
hub.addToken(TOKEN, { user: "me" });

const model = join(root, "model");
writeTinyLlama({ dir: model, dtype: "F16", tied: true, hidden: 16, shards: 2 });
const commit = publishFolder(hub, "org/tiny", model);

// A folder to push: a regular file, a basic LFS upload and a multipart one.
const folder = join(root, "to-push");
mkdirSync(folder);
writeFileSync(join(folder, "config.json"), JSON.stringify({ model_type: "llama" }));
writeFileSync(join(folder, "small.safetensors"), Buffer.alloc(3000, 7));
writeFileSync(join(folder, "big.safetensors"), Buffer.from(Array.from({ length: 6000 }, (_, i) => (i * 31) & 0xff)));

let caseNumber = 0;
function run(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<CliResult & { cache: string }> {
  caseNumber += 1;
  const caseRoot = join(root, `case-${caseNumber}`);
  mkdirSync(caseRoot, { recursive: true });
  return runCli(args, { env: hubEnv(hub, caseRoot, { HF_TOKEN: TOKEN, ...extra }) }).then((result) => ({ ...result, cache: join(caseRoot, "hub-cache") }));
}

function assertNoToken(result: CliResult): void {
  assert.ok(!leaksSecret(result.stdout + result.stderr, TOKEN), `no token in the output:\n${result.stderr}`);
}

function assertFailure(result: CliResult, code: string, message: RegExp): void {
  assert.equal(result.status, 1, `exit 1:\n${result.stderr}`);
  assert.match(result.stderr, new RegExp(`error \\[${code}\\]: `), result.stderr);
  assert.match(result.stderr, message);
  assertNoToken(result);
}

function requestsSince(index: number, fragment: string | RegExp, method?: string) {
  return hub.requests.slice(index).filter((r) => (typeof fragment === "string" ? r.url.includes(fragment) : fragment.test(r.url)) && (!method || r.method === method));
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

test("downloads: 429, 500, 502, 503, 504 and resets on every endpoint are retried, and the model arrives intact", async () => {
  const faults = [
    hub.injectFault({ pathMatches: "/api/models/org/tiny/revision/", status: 429, retryAfter: 0 }),
    hub.injectFault({ pathMatches: "/api/models/org/tiny/tree/", status: 500 }),
    hub.injectFault({ pathMatches: "/api/models/org/tiny/tree/", reset: true }),
    hub.injectFault({ pathMatches: "/org/tiny/resolve/", status: 502 }),
    hub.injectFault({ pathMatches: "/api/resolve-cache/", status: 504 }),
    hub.injectFault({ pathMatches: "/api/resolve-cache/", reset: true }),
    hub.injectFault({ pathMatches: "/cdn/lfs/", status: 503 }),
    hub.injectFault({ pathMatches: "/cdn/lfs/", reset: true }),
  ];
  // Without --json, so the retries are reported on stderr.
  const result = await run(["inspect", "org/tiny"]);
  hub.clearFaults();
  assert.equal(result.status, 0, result.stderr);
  assert.deepEqual(faults.map((fault) => fault.fired), faults.map(() => 1), "every fault was met once");
  for (const reason of ["HTTP 429", "HTTP 500", "HTTP 502", "HTTP 504", "HTTP 503"]) assert.match(result.stderr, new RegExp(`retrying http://\\S+ in \\d+\\.\\ds \\(${reason}, attempt \\d\\)`));
  const blobs = readdirSync(join(result.cache, "models--org--tiny", "blobs"));
  assert.equal(blobs.filter((name) => name.endsWith(".incomplete")).length, 0);
  const snapshot = join(result.cache, "models--org--tiny", "snapshots", commit);
  for (const name of readdirSync(model)) assert.deepEqual(readFileSync(join(snapshot, name)), readFileSync(join(model, name)), `${name} arrived intact`);
  assertNoToken(result);
});

test("429 and 503 with Retry-After: a short wait is honoured, an hour's (seconds or a date) is capped, the run goes on", async () => {
  hub.injectFault({ pathMatches: "/api/models/org/tiny/revision/", status: 429, retryAfter: 1 });
  hub.injectFault({ pathMatches: "/api/models/org/tiny/tree/", status: 429, retryAfter: 3600 });
  hub.injectFault({ pathMatches: "/org/tiny/resolve/", status: 503, retryAfter: new Date(Date.now() + 3_600_000).toUTCString() });
  const started = Date.now();
  const result = await run(["inspect", "org/tiny"], { ABLITERATE_RETRY_MAX_WAIT_MS: "1200" });
  hub.clearFaults();
  const elapsed = Date.now() - started;
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stderr, /retrying \S+\/api\/models\/org\/tiny\/revision\/main in 1\.0s \(HTTP 429, attempt 1\)/);
  assert.match(result.stderr, /retrying \S+\/api\/models\/org\/tiny\/tree\/\S+ in 1\.2s \(HTTP 429, attempt 1\)/);
  assert.match(result.stderr, /retrying \S+\/org\/tiny\/resolve\/\S+ in 1\.2s \(HTTP 503, attempt 1\)/);
  assert.ok(elapsed >= 3400, `the run waited what it was asked, within the cap (${elapsed} ms)`);
  assert.ok(elapsed < 20_000);
});

test("downloads: each kind of failure that outlives the retries ends in a clear error naming the URL path", async () => {
  const cases: { fault: Parameters<typeof hub.injectFault>[0]; code: string; message: RegExp; counted: string | RegExp; attempts: number }[] = [
    { fault: { pathMatches: "/api/models/org/tiny/tree/", status: 500, times: 100 }, code: "HUB", message: new RegExp(`failed with status 500 for org/tiny@main after several retries \\(at /api/models/org/tiny/tree/${commit}, 6 attempts\\)`), counted: "/tree/", attempts: 6 },
    { fault: { pathMatches: "/api/models/org/tiny/revision/", status: 429, retryAfter: 0, times: 100 }, code: "HUB", message: /kept rate-limiting requests for org\/tiny@main \(429\) after several retries \(at \/api\/models\/org\/tiny\/revision\/main, 6 attempts\); try again later/, counted: "/revision/", attempts: 6 },
    { fault: { pathMatches: "/api/models/org/tiny/revision/", reset: true, times: 100 }, code: "HUB", message: new RegExp(`cannot reach the Hub at ${escape(hub.url)}: GET ${escape(hub.url)}/api/models/org/tiny/revision/main got no answer after 6 attempts \\(\\w+\\)`), counted: "/revision/", attempts: 6 },
    { fault: { pathMatches: "/org/tiny/resolve/", reset: true, times: 100 }, code: "HUB", message: /GET \S+\/org\/tiny\/resolve\/\S+ got no answer after 6 attempts/, counted: "/resolve/", attempts: 6 },
    // The first CDN request is the library's 1-byte probe; the ones after it are the transfer, cut each time.
    { fault: { pathMatches: "/cdn/lfs/", nth: 2, resetAfterBytes: 100, times: 100 }, code: "HUB", message: /download of org\/tiny\/model-0000\d-of-00002\.safetensors from \S+\/cdn\/lfs\/[0-9a-f]{64} kept failing after 5 resumed attempts/, counted: "/cdn/lfs/", attempts: 7 },
  ];
  for (const { fault, code, message, counted, attempts } of cases) {
    hub.injectFault(fault);
    const index = hub.requests.length;
    const result = await run(["inspect", "org/tiny"]);
    hub.clearFaults();
    assertFailure(result, code, message);
    assert.doesNotMatch(result.stderr, /[?&](sig|expires)=/, "no signed query in the message");
    assert.equal(requestsSince(index, counted).length, attempts, `${JSON.stringify(fault)}: a bounded number of attempts`);
    assert.equal(existsSync(join(result.cache, "models--org--tiny", "refs", "main")), false, "a failed download records no ref");
  }
});

function push(repo: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}) {
  return run(["push", folder, repo, "--json", ...extra], env);
}

function assertPushed(result: CliResult, repo: string, revision = "main"): void {
  assert.equal(result.status, 0, result.stderr);
  const json = JSON.parse(result.stdout);
  assert.equal(json.push.commitOid, hub.head(repo, revision));
  const files = hub.files(repo, revision);
  assert.deepEqual([...files.keys()].sort(), [".gitattributes", "README.md", "big.safetensors", "config.json", "small.safetensors"]);
  assert.equal(files.get("big.safetensors")!.size, 6000);
  assert.equal(files.get("big.safetensors")!.lfs, true);
  assertNoToken(result);
}

test("push: a transient failure at every step (create, preupload, LFS batch, PUT, parts, completion, commit) is retried; one commit", async () => {
  const faults = [
    hub.injectFault({ pathMatches: "/api/repos/create", status: 503, retryAfter: 0 }),
    hub.injectFault({ pathMatches: "/preupload/", status: 500 }),
    hub.injectFault({ pathMatches: "/info/lfs/objects/batch", status: 502 }),
    hub.injectFault({ pathMatches: /\/lfs-upload\/\w+$/, method: "PUT", reset: true }),
    hub.injectFault({ pathMatches: "/part/", method: "PUT", status: 500 }),
    hub.injectFault({ pathMatches: "/complete", afterHandling: true, reset: true }),
    hub.injectFault({ pathMatches: "/commit/main", status: 429, retryAfter: 0 }),
  ];
  const index = hub.requests.length;
  const result = await push("me/steps");
  hub.clearFaults();
  assert.deepEqual(faults.map((fault) => fault.fired), faults.map(() => 1), "every fault was met once");
  assertPushed(result, "me/steps");
  assert.equal(hub.repo("me/steps").commits.size, 2, "the initial commit and one upload commit");
  assert.equal(requestsSince(index, "/commit/main", "POST").length, 2, "the 429 commit was sent again");
});

test("push: a commit that landed but whose answer was lost (reset, 504) is not committed twice", async () => {
  for (const [repo, fault] of [
    ["me/lost-reset", { reset: true }],
    ["me/lost-504", { status: 504, retryAfter: 0 }],
  ] as const) {
    hub.injectFault({ pathMatches: `/api/models/${repo}/commit/`, afterHandling: true, ...fault });
    const index = hub.requests.length;
    const result = await push(repo);
    hub.clearFaults();
    assertPushed(result, repo);
    assert.equal(hub.repo(repo).commits.size, 2, `${repo}: one upload commit`);
    assert.equal(requestsSince(index, "/commit/main", "POST").length, 1, `${repo}: the commit was sent once`);
  }
});

test("push --create-pr: a pull request whose answer was lost is not opened twice", async () => {
  hub.addFiles("me/pr-lost", { "config.json": "{}" });
  hub.injectFault({ pathMatches: "/api/models/me/pr-lost/commit/", afterHandling: true, reset: true });
  const result = await push("me/pr-lost", ["--create-pr"]);
  hub.clearFaults();
  assert.equal(result.status, 0, result.stderr);
  assert.equal(hub.repo("me/pr-lost").pullRequests.size, 1, "one pull request");
  assert.equal(JSON.parse(result.stdout).push.pullRequestUrl, `${hub.url}/me/pr-lost/discussions/1`);
  assert.equal(hub.files("me/pr-lost", "refs/pr/1").get("big.safetensors")?.size, 6000);
});

test("push: a commit refused before it landed (503, reset) is sent again once the Hub shows it did not land", async () => {
  hub.injectFault({ pathMatches: "/api/models/me/resent/commit/", status: 503 });
  hub.injectFault({ pathMatches: "/api/models/me/resent/commit/", reset: true });
  const index = hub.requests.length;
  const result = await push("me/resent");
  hub.clearFaults();
  assertPushed(result, "me/resent");
  assert.equal(hub.repo("me/resent").commits.size, 2);
  assert.equal(requestsSince(index, "/commit/main", "POST").length, 3);
});

test("push: a commit that keeps failing stops after the retry budget with the URL path, and nothing is committed", async () => {
  for (const [repo, fault, message] of [
    ["me/dead-503", { status: 503, times: 100 }, /the Hub failed with status 503 for me\/dead-503@main after several retries \(at \/api\/models\/me\/dead-503\/commit\/main, 6 attempts\)/],
    ["me/dead-reset", { reset: true, times: 100 }, /POST http:\/\/\S+\/api\/models\/me\/dead-reset\/commit\/main got no answer after 6 attempts/],
  ] as const) {
    hub.injectFault({ pathMatches: `/api/models/${repo}/commit/`, ...fault });
    const index = hub.requests.length;
    const result = await push(repo);
    hub.clearFaults();
    assertFailure(result, "HUB", message);
    assert.equal(hub.repo(repo).commits.size, 1, "only the repo's initial commit");
    assert.equal(requestsSince(index, "/commit/main", "POST").length, 6);
  }
});
