/**
 * Xet failure paths against the emulator: LFS end to end when the Hub does not offer Xet (or HF_HUB_DISABLE_XET
 * is set); a CAS token revoked mid-upload is refreshed and the upload goes on; CAS 5xx answers and cut
 * connections are retried; a CAS that keeps failing fails the push clearly and nothing is committed.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { pushModel, type PushResult, type UploadEvent } from "../../lib/hub/push-model.js";
import { writeTinyLlama } from "../helpers/tiny-llama.js";
import { startHubEmulator, type HubEmulator } from "../hub-emulator/hub-emulator.js";
import { scratch } from "../hub-emulator/test-fixtures.js";

process.env.ABLITERATE_RETRY_BASE_MS = "5";
const TOKEN = "hf_XetFaults0123456789abcdef";
const { root, cleanup } = scratch("abl-hub-xet-faults-");
const hubs: HubEmulator[] = [];
after(async () => {
  for (const hub of hubs) await hub.close();
  cleanup();
});
const model = join(root, "model");
writeTinyLlama({ dir: model, dtype: "BF16", tied: true, hidden: 256, intermediate: 512, layers: 2, vocab: 1024, shards: 2 });

async function hubWith(options: { xet: boolean }): Promise<HubEmulator> {
  const hub = await startHubEmulator(options);
  hub.addToken(TOKEN, { user: "me" });
  hubs.push(hub);
  return hub;
}

async function push(hub: HubEmulator, repo: string, events: UploadEvent[] = []): Promise<PushResult> {
  const run = pushModel({ dir: model, repo, token: TOKEN, endpoint: hub.url });
  let step = await run.next();
  while (!step.done) {
    events.push(step.value);
    step = await run.next();
  }
  return step.value;
}

function assertSameAsLocal(hub: HubEmulator, repo: string, revision = "main"): void {
  const files = hub.files(repo, revision);
  for (const name of readdirSync(model)) if (name !== "README.md") assert.deepEqual(files.get(name)?.content, readFileSync(join(model, name)), name);
}

test("LFS end to end when the Hub does not offer Xet", async () => {
  const hub = await hubWith({ xet: false });
  const result = await push(hub, "me/lfs");
  assert.equal(result.transfer.protocol, "lfs");
  assert.ok(hub.counter("lfs-upload").bytesIn > 0);
  assert.equal(hub.requests.filter((r) => r.url.startsWith("/cas/")).length, 0);
  assert.equal(result.transfer.bytesSent, result.transfer.files.reduce((sum, file) => sum + file.bytes, 0), "every large file sent whole");
  assertSameAsLocal(hub, "me/lfs");
});

test("HF_HUB_DISABLE_XET=1 pushes through LFS to a Hub that offers Xet", async () => {
  const hub = await hubWith({ xet: true });
  process.env.HF_HUB_DISABLE_XET = "1";
  try {
    const result = await push(hub, "me/lfs-forced");
    assert.equal(result.transfer.protocol, "lfs");
    assert.equal(hub.counter("xorb-upload").requests, 0);
  } finally {
    delete process.env.HF_HUB_DISABLE_XET;
  }
  assertSameAsLocal(hub, "me/lfs-forced");
});

test("a CAS token that expires mid-upload is refreshed once and the upload goes on", async () => {
  const hub = await hubWith({ xet: true });
  const fault = hub.injectFault({ pathMatches: "/cas/v1/xorbs/", expireXetToken: true });
  const events: UploadEvent[] = [];
  const result = await push(hub, "me/expired", events);
  assert.equal(fault.fired, 1);
  assert.equal(result.transfer.protocol, "xet");
  assert.ok(events.some((event) => event.type === "retry" && /xet token expired/.test(event.reason)), JSON.stringify(events.filter((e) => e.type === "retry")));
  assert.ok(hub.counter("xet-token").requests >= 1, "a fresh token was asked for");
  assertSameAsLocal(hub, "me/expired");
});

test("CAS 5xx answers and a cut connection are retried", async () => {
  const hub = await hubWith({ xet: true });
  const busy = hub.injectFault({ pathMatches: "/cas/v1/xorbs/", status: 503, times: 2 });
  const cut = hub.injectFault({ pathMatches: "/cas/v1/shards", reset: true });
  await push(hub, "me/retried");
  assert.equal(busy.fired, 2);
  assert.equal(cut.fired, 1);
  assertSameAsLocal(hub, "me/retried");
});

test("a pull request through Xet opens one PR and leaves main alone", async () => {
  const hub = await hubWith({ xet: true });
  hub.createRepo("me/pr");
  const main = hub.head("me/pr");
  const run = pushModel({ dir: model, repo: "me/pr", token: TOKEN, endpoint: hub.url, createPr: true });
  let step = await run.next();
  while (!step.done) step = await run.next();
  assert.match(step.value.pullRequestUrl ?? "", /\/me\/pr\/discussions\/1$/);
  assert.equal(step.value.transfer.protocol, "xet");
  assert.equal(hub.head("me/pr"), main);
  assertSameAsLocal(hub, "me/pr", "refs/pr/1");
});

test("a CAS that keeps failing fails the push clearly, and nothing is committed", async () => {
  const hub = await hubWith({ xet: true });
  hub.createRepo("me/broken");
  const head = hub.head("me/broken");
  hub.injectFault({ pathMatches: "/cas/v1/shards", status: 500, times: 1000 });
  await assert.rejects(push(hub, "me/broken"), (error: Error & { code?: string }) => {
    assert.equal(error.code, "HUB");
    assert.match(error.message, /status 500/);
    assert.doesNotMatch(error.message, new RegExp(TOKEN));
    return true;
  });
  assert.equal(hub.head("me/broken"), head, "no commit");
  assert.equal(hub.requests.filter((r) => /\/commit\//.test(r.url)).length, 0, "the commit was never sent");
  assert.deepEqual([...hub.files("me/broken").keys()], [".gitattributes"]);
});

test("the one command with --push goes through Xet and reports the transfer in --json", async () => {
  const { runCli } = await import("../helpers/run-cli.js");
  const { hubEnv, publishFolder } = await import("../hub-emulator/test-fixtures.js");
  const { randomDirection, writeDirectionFile } = await import("../helpers/tiny-llama.js");
  const hub = await hubWith({ xet: true });
  publishFolder(hub, "org/tiny", model);
  const direction = join(root, "one-command-direction.safetensors");
  writeDirectionFile(direction, [{ name: "direction", shape: [256], values: randomDirection(256, 3) }]);
  const run = await runCli(["org/tiny", "--direction", direction, "--push", "me/one", "--json"], { env: hubEnv(hub, join(root, "one-command"), { HF_TOKEN: TOKEN }) });
  assert.equal(run.status, 0, run.stderr);
  const result = JSON.parse(run.stdout) as { push: PushResult };
  assert.equal(result.push.transfer.protocol, "xet");
  assert.equal(result.push.transfer.bytesSent, hub.counter("xorb-upload").bytesIn);
  assert.deepEqual(result.push.transfer.files.map((file) => file.path).filter((path) => path.endsWith(".safetensors")).sort(), ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
  assert.ok(hub.counter("xorb-download").bytesOut > 0, "the model was downloaded through Xet");
});
