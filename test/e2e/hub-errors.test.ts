/**
 * Hub failures through the built CLI: each ends with a clear `error [CODE]` line and a non-zero exit (or, for
 * transient ones, a retry or resume and success), and the token never appears in anything printed.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { runCli, type CliResult } from "../helpers/run-cli.js";
import { randomDirection, writeDirectionFile, writeTinyLlama } from "../helpers/tiny-llama.js";
import { startHubEmulator } from "../hub-emulator/hub-emulator.js";
import { hubEnv, leaksSecret, publishFolder, scratch } from "../hub-emulator/test-fixtures.js";

const HIDDEN = 16;
const TOKEN = "hf_SecretValidToken9876543210zyxw";
const UNKNOWN_TOKEN = "hf_SecretUnknownToken1122334455qq";
const hub = await startHubEmulator();
const { root, cleanup } = scratch("abl-hub-errors-");
after(async () => {
  await hub.close();
  cleanup();
});
hub.addToken(TOKEN, { user: "me" });

const model = join(root, "model");
const direction = join(root, "refusal.safetensors");
writeTinyLlama({ dir: model, dtype: "F16", tied: true, hidden: HIDDEN });
writeDirectionFile(direction, [{ name: "direction", shape: [HIDDEN], values: randomDirection(HIDDEN, 5) }]);
publishFolder(hub, "org/tiny", model);
hub.createRepo("org/private", { private: true });
publishFolder(hub, "org/private", model);
hub.addFiles("org/pickle-only", { "config.json": readFileSync(join(model, "config.json")), "pytorch_model.bin": Buffer.alloc(4096, 9), "README.md": "# old" });

let caseNumber = 0;
/** A fresh cache per case, so no case is helped by another's downloads. */
function run(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  caseNumber += 1;
  const caseRoot = join(root, `case-${caseNumber}`);
  mkdirSync(caseRoot, { recursive: true });
  return runCli(args, { env: hubEnv(hub, caseRoot, extra) });
}

function outDir(): string {
  return join(root, `out-${caseNumber + 1}`);
}

function assertCleanFailure(result: CliResult, code: string, message: RegExp): void {
  assert.notEqual(result.status, 0, "non-zero exit");
  assert.match(result.stderr, new RegExp(`error \\[${code}\\]: `), result.stderr);
  assert.match(result.stderr, message);
  for (const secret of [TOKEN, UNKNOWN_TOKEN]) {
    assert.ok(!leaksSecret(result.stdout + result.stderr, secret), `no token in the output:\n${result.stderr}`);
  }
}

test("401: a private repo without a token says to set HF_TOKEN", async () => {
  const result = await run(["org/private", "--direction", direction, "--out", outDir()]);
  assertCleanFailure(result, "HUB_UNAUTHORIZED", /org\/private .*private or gated .*HF_TOKEN/);
});

test("401: a token the Hub does not know is rejected without being printed", async () => {
  const result = await run(["org/private", "--direction", direction, "--out", outDir(), "--json"], { HF_TOKEN: UNKNOWN_TOKEN });
  assertCleanFailure(result, "HUB_UNAUTHORIZED", /rejected the token/);
  const json = JSON.parse(result.stdout);
  assert.equal(json.ok, false);
  assert.equal(json.error.code, "HUB_UNAUTHORIZED");
  assert.equal(json.error.status, 401);
});

test("a token whose account may read the private repo opens it", async () => {
  hub.grantAccess("org/private", "me");
  const result = await run(["org/private", "--direction", direction, "--out", outDir()], { HF_TOKEN: TOKEN });
  assert.equal(result.status, 0, result.stderr);
  assert.ok(!leaksSecret(result.stdout + result.stderr, TOKEN));
  const sent = hub.requests.filter((r) => r.url.startsWith("/api/models/org/private") && r.authorization === `Bearer ${TOKEN}`);
  assert.ok(sent.length > 0, "the token was sent as a Bearer header");
});

test("404: a missing repo", async () => {
  const result = await run(["org/does-not-exist", "--direction", direction, "--out", outDir()], { HF_TOKEN: TOKEN });
  assertCleanFailure(result, "HUB_NOT_FOUND", /repository org\/does-not-exist not found/);
});

test("404: a missing revision names the revision", async () => {
  const result = await run(["org/tiny@v9.9", "--direction", direction, "--out", outDir()], { HF_TOKEN: TOKEN });
  assertCleanFailure(result, "HUB_NOT_FOUND", /revision "v9\.9" not found in org\/tiny/);
});

test("500 then success: the request is retried and the run succeeds", async () => {
  hub.injectFault({ pathMatches: "/api/models/org/tiny/revision/", status: 500 });
  hub.injectFault({ pathMatches: "/api/models/org/tiny/tree/", status: 503, retryAfter: 0 });
  const result = await run(["org/tiny", "--direction", direction, "--out", outDir()], { HF_TOKEN: TOKEN });
  hub.clearFaults();
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stderr, /retrying .*\/api\/models\/org\/tiny\/revision\/main in 0\.0s \(HTTP 500, attempt 1\)/);
  assert.match(result.stderr, /retrying .*tree.* \(HTTP 503, attempt 1\)/);
  assert.ok(!leaksSecret(result.stdout + result.stderr, TOKEN));
});

test("a Hub that keeps failing: a bounded number of retries, then a clear error", async () => {
  hub.injectFault({ pathMatches: "/api/models/org/tiny/revision/", status: 502, times: 50 });
  const since = hub.requests.length;
  const result = await run(["org/tiny", "--direction", direction, "--out", outDir()], { HF_TOKEN: TOKEN });
  hub.clearFaults();
  assertCleanFailure(result, "HUB", /the Hub failed with status 502 for org\/tiny@main after several retries/);
  assert.equal(hub.requests.slice(since).length, 6, "1 try + 5 retries");
});

test("a connection reset in the middle of a download is resumed with a Range request", async () => {
  // The library first probes each file with `Range: bytes=0-0`; the second CDN request is the transfer itself.
  hub.injectFault({ pathMatches: "/cdn/", nth: 2, resetAfterBytes: 700 });
  const since = hub.requests.length;
  const out = outDir();
  const result = await run(["org/tiny", "--direction", direction, "--out", out, "--json"], { HF_TOKEN: TOKEN });
  hub.clearFaults();
  assert.equal(result.status, 0, result.stderr);
  assert.equal(JSON.parse(result.stdout).verification.passed, true);
  const cdn = hub.requests.slice(since).filter((r) => r.url.startsWith("/cdn/"));
  const resumed = cdn.find((r) => r.range !== undefined && /^bytes=[1-9]\d*-$/.test(r.range));
  assert.ok(resumed, `a ranged request resumed the cut transfer: ${JSON.stringify(cdn.map((r) => r.range))}`);
  const cacheBlobs = join(root, `case-${caseNumber}`, "hub-cache", "models--org--tiny", "blobs");
  assert.deepEqual(readdirSync(cacheBlobs).filter((name) => name.endsWith(".incomplete")), []);
});

test("a repo with only pytorch_model.bin: NO_SAFETENSORS, naming the file", async () => {
  const result = await run(["org/pickle-only", "--direction", direction, "--out", outDir()], { HF_TOKEN: TOKEN });
  assertCleanFailure(result, "NO_SAFETENSORS", /org\/pickle-only@main has no safetensors weights .*pytorch_model\.bin/);
});

test("pushing without a token fails before anything is downloaded", async () => {
  const since = hub.requests.length;
  const result = await run(["org/tiny", "--direction", direction, "--push", "me/x"]);
  assertCleanFailure(result, "HUB_UNAUTHORIZED", /pushing to me\/x needs a token with write access/);
  assert.equal(hub.requests.length, since, "no Hub request was made");
});

test("pushing in offline mode fails before anything is downloaded", async () => {
  const since = hub.requests.length;
  const result = await run(["org/tiny", "--direction", direction, "--push", "me/x"], { HF_TOKEN: TOKEN, HF_HUB_OFFLINE: "1" });
  assertCleanFailure(result, "HUB_OFFLINE", /nothing can be pushed to me\/x/);
  assert.equal(hub.requests.length, since);
});

test("pushing into someone else's namespace: 403, a clear message, and the temporary output removed", async () => {
  const tmp = join(root, "tmp-403");
  mkdirSync(tmp);
  const result = await run(["org/tiny", "--direction", direction, "--push", "someone-else/x"], { HF_TOKEN: TOKEN, TMPDIR: tmp });
  assertCleanFailure(result, "HUB_UNAUTHORIZED", /someone-else\/x/);
  assert.deepEqual(readdirSync(tmp), [], "the temporary checkpoint is gone after a failed push");
});

test("a malformed token is refused before any request, without echoing it", async () => {
  const since = hub.requests.length;
  const result = await run(["org/tiny", "--direction", direction, "--out", outDir()], { HF_TOKEN: "ghp_SecretNotAHubToken123456789" });
  assertCleanFailure(result, "HUB_UNAUTHORIZED", /token from HF_TOKEN is malformed/);
  assert.ok(!result.stderr.includes("SecretNotAHubToken"));
  assert.equal(hub.requests.length, since);
});
