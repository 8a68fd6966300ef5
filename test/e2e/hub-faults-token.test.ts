/**
 * Token hygiene through the built CLI. A real-looking token reaches runs that fail in every way a Hub run can
 * fail (401, 403 gated, 404, 500 after the retries, resets after the retries, a download that does not verify, a
 * surgery that does not verify, a push refused by the namespace or by the commit, a usage error) and a push that
 * succeeds; the token comes in turn through HF_TOKEN, --token and the token file, so each source meets several
 * failures. Each time the token must have been sent (so the run really used it), and must appear nowhere: not in
 * stdout or stderr, not in any file the run wrote (abliteration.json, the cache and its refs, temporary folders),
 * not in what reached the Hub (the pushed model card and files), never in a request URL, and never sent to the
 * CDN's host (a separate origin here, as on the real Hub).
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli, type CliResult } from "../helpers/run-cli.js";
import { randomDirection, writeDirectionFile, writeTinyLlama } from "../helpers/tiny-llama.js";
import { flipByte, type FaultSpec } from "../hub-emulator/faults.js";
import { startHubEmulator } from "../hub-emulator/hub-emulator.js";
import { filesUnder, hubEnv, leaksSecret, publishFolder, scratch } from "../hub-emulator/test-fixtures.js";

const TOKEN = "hf_kQ3vXn8LbT2mRz6WcY9pJd4HsF7gAe1UoV";
const UNKNOWN_TOKEN = "hf_Zr5tGm2NwQ8xLc4VbK7yPs3JhD6fTa9EuX";
const HIDDEN = 16;
// LFS downloads come from another origin, answering like CloudFront, as on the real Hub: the token must stay home.
const hub = await startHubEmulator({ separateCdn: true });
const cdnHost = new URL(hub.cdnUrl).host;
const { root, cleanup } = scratch("abl-hub-faults-token-");
after(async () => {
  await hub.close();
  cleanup();
});
hub.addToken(TOKEN, { user: "me" });

const model = join(root, "model");
const direction = join(root, "refusal.safetensors");
writeTinyLlama({ dir: model, dtype: "F16", tied: true, hidden: HIDDEN });
writeDirectionFile(direction, [{ name: "direction", shape: [HIDDEN], values: randomDirection(HIDDEN, 9) }]);
publishFolder(hub, "org/tiny", model);
hub.createRepo("org/private", { private: true });
publishFolder(hub, "org/private", model);
hub.grantAccess("org/private", "me");
hub.createRepo("org/gated", { gated: "manual" });
publishFolder(hub, "org/gated", model);
// Published unmodified but named as the edit: verifying it against its base must fail.
hub.createRepo("me/not-abliterated", { private: true });
publishFolder(hub, "me/not-abliterated", model);
const shard = [...hub.files("org/tiny").values()].find((file) => file.lfs && file.size > 1000)!;

type Source = "HF_TOKEN" | "--token" | "token file";
const SOURCES: Source[] = ["HF_TOKEN", "--token", "token file"];

interface Scenario {
  name: string;
  args: (out: string, n: number) => string[];
  code?: string;
  token?: string;
  fault?: FaultSpec;
  /** Fails before any request (a usage error). */
  noRequest?: boolean;
}

const SCENARIOS: Scenario[] = [
  { name: "401, a token the Hub does not know", args: () => ["inspect", "org/private"], code: "HUB_UNAUTHORIZED", token: UNKNOWN_TOKEN },
  { name: "403, a gated repo", args: () => ["inspect", "org/gated"], code: "HUB_UNAUTHORIZED" },
  { name: "404, a missing repo", args: () => ["inspect", "org/missing"], code: "HUB_NOT_FOUND" },
  { name: "500 after the retries", args: () => ["inspect", "org/private"], code: "HUB", fault: { pathMatches: "/api/models/org/private/tree/", status: 500, times: 100 } },
  { name: "resets after the retries", args: () => ["inspect", "org/private"], code: "HUB", fault: { pathMatches: "/org/private/resolve/", reset: true, times: 100 } },
  { name: "a download that does not verify", args: () => ["inspect", "org/tiny"], code: "HUB_INTEGRITY", fault: { pathMatches: `/cdn/lfs/${shard.sha256}`, transformBody: flipByte(-1), times: 100 } },
  { name: "a surgery that does not verify", args: () => ["verify", "org/private", "me/not-abliterated", "--direction", direction], code: "VERIFY_FAILED" },
  { name: "a push refused by the namespace (403)", args: (out) => ["org/private", "--direction", direction, "--out", out, "--push", "someone-else/x"], code: "HUB_UNAUTHORIZED" },
  { name: "a push refused at the commit (422)", args: (out, n) => ["org/private", "--direction", direction, "--out", out, "--push", `me/refused-${n}`], code: "HUB", fault: { pathMatches: /\/api\/models\/me\/refused-\d+\/commit\//, status: 422, times: 100 } },
  { name: "a push that succeeds", args: (out, n) => ["org/private", "--direction", direction, "--out", out, "--push", `me/pushed-${n}`] },
  { name: "a usage error", args: () => ["inspect", "org/private", "--no-such-flag"], code: "USAGE", noRequest: true },
];

let caseNumber = 0;

/** Every file under the folder (symlinks followed) that holds the token or a long piece of it. */
function filesHolding(dir: string, token: string, except: string[] = []): string[] {
  return filesUnder(dir).filter((path) => !except.includes(join(dir, path)) && leaksSecret(readFileSync(join(dir, path)).toString("latin1"), token));
}

async function runWithToken(scenario: Scenario, source: Source): Promise<void> {
  caseNumber += 1;
  const token = scenario.token ?? TOKEN;
  const caseRoot = join(root, `case-${caseNumber}`);
  const tmp = join(caseRoot, "tmp");
  mkdirSync(tmp, { recursive: true });
  const env = hubEnv(hub, caseRoot, { TMPDIR: tmp, ...(source === "HF_TOKEN" ? { HF_TOKEN: token } : {}) });
  const tokenFile = env.HF_TOKEN_PATH!;
  if (source === "token file") {
    mkdirSync(join(caseRoot, "hf-home"), { recursive: true });
    writeFileSync(tokenFile, `${token}\n`);
  }
  const out = join(caseRoot, "out");
  const args = [...scenario.args(out, caseNumber), ...(source === "--token" ? ["--token", token] : [])];
  if (scenario.fault) hub.injectFault(scenario.fault);
  const index = hub.requests.length;
  let result: CliResult;
  try {
    result = await runCli(args, { env });
  } finally {
    hub.clearFaults();
  }
  const label = `${scenario.name} (token from ${source})`;
  if (scenario.code) {
    assert.equal(result.status, scenario.code === "USAGE" ? 2 : 1, `${label}: exit code\n${result.stderr}`);
    assert.match(result.stderr, new RegExp(`error \\[${scenario.code}\\]: `), `${label}\n${result.stderr}`);
  } else {
    assert.equal(result.status, 0, `${label}\n${result.stderr}`);
  }
  const sent = hub.requests.slice(index);
  if (scenario.noRequest) assert.equal(sent.length, 0);
  else assert.ok(sent.some((request) => request.authorization === `Bearer ${token}`), `${label}: the token was sent`);
  assert.deepEqual(sent.filter((request) => leaksSecret(decodeURIComponent(request.url), token)).map((r) => r.url), [], `${label}: never in a URL`);
  assert.deepEqual(sent.filter((request) => request.host === cdnHost && request.authorization).map((r) => r.url), [], `${label}: never sent to the CDN's host`);
  assert.ok(!leaksSecret(result.stdout, token), `${label}: stdout\n${result.stdout}`);
  assert.ok(!leaksSecret(result.stderr, token), `${label}: stderr\n${result.stderr}`);
  assert.deepEqual(filesHolding(caseRoot, token, [tokenFile]), [], `${label}: no file the run wrote holds the token`);
  assert.deepEqual(filesHolding(hub.store.dir, token), [], `${label}: nothing that reached the Hub holds the token`);
  if (scenario.args(out, 0).includes("--out")) {
    assert.ok(filesUnder(out).includes("abliteration.json"), `${label}: the output was written, so it was checked`);
  }
  if (!scenario.code) {
    assert.ok(sent.some((request) => request.host === cdnHost), "the weights came from the CDN's host");
    const pushed = hub.files(`me/pushed-${caseNumber}`);
    assert.ok(pushed.get("README.md")!.content.toString().includes("abliterat"), "a model card was pushed");
    for (const [path, file] of pushed) assert.ok(!leaksSecret(file.content.toString("latin1"), token), `${label}: pushed ${path}`);
  }
}

for (const [index, scenario] of SCENARIOS.entries()) {
  const source = SOURCES[index % SOURCES.length];
  test(`no token leaks: ${scenario.name}, token from ${source}`, () => runWithToken(scenario, source));
}
