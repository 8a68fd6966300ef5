/**
 * `abliterate push DIR REPO` through the built CLI (visibility, branch, message, pull request, existing repos,
 * existing cards), and pushModel's memory use on a large file: it streams from disk instead of buffering.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { pushModel } from "../../lib/hub/push-model.js";
import { runCli, type CliResult } from "../helpers/run-cli.js";
import { randomDirection, writeDirectionFile, writeTinyLlama } from "../helpers/tiny-llama.js";
import { startHubEmulator } from "../hub-emulator/hub-emulator.js";
import { parseFrontMatter } from "../hub-emulator/simple-yaml.js";
import { filesUnder, hubEnv, leaksSecret, scratch } from "../hub-emulator/test-fixtures.js";

const HIDDEN = 16;
const TOKEN = "hf_PushTokenabcdefghij0123456789";
const hub = await startHubEmulator();
const { root, cleanup } = scratch("abl-hub-push-");
after(async () => {
  await hub.close();
  cleanup();
});
hub.addToken(TOKEN, { user: "me" });
const env = hubEnv(hub, root, { HF_TOKEN: TOKEN });
const out = join(root, "out");

before(async () => {
  const model = join(root, "model");
  const direction = join(root, "refusal.safetensors");
  writeTinyLlama({ dir: model, dtype: "F32", tied: false, hidden: HIDDEN, shards: 2 });
  writeDirectionFile(direction, [{ name: "direction", shape: [HIDDEN], values: randomDirection(HIDDEN, 3) }]);
  const applied = await runCli(["apply", model, "--direction", direction, "--out", out], { env });
  assert.equal(applied.status, 0, applied.stderr);
});

function push(args: string[], extra: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runCli(["push", ...args], { env: { ...env, ...extra } });
}

test("push --private --branch --message: one commit on a new branch of a new private repo", async () => {
  const result = await push([out, "me/branchy", "--private", "--branch", "dev", "--message", "first cut", "--json"]);
  assert.equal(result.status, 0, result.stderr);
  assert.ok(!leaksSecret(result.stdout + result.stderr, TOKEN));
  const json = JSON.parse(result.stdout);
  assert.equal(json.ok, true);
  assert.equal(json.push.created, true);
  assert.equal(json.push.branch, "dev");
  assert.equal(hub.repo("me/branchy").private, true);
  const commit = hub.commit("me/branchy", "dev");
  assert.equal(commit.title, "first cut");
  assert.equal(json.push.commitOid, commit.oid);
  assert.deepEqual([...hub.files("me/branchy", "main").keys()], [".gitattributes"], "main is untouched");
  const pushed = [...hub.files("me/branchy", "dev").keys()].filter((path) => path !== ".gitattributes").sort();
  assert.deepEqual(pushed, filesUnder(out));
  const commits = [...hub.repo("me/branchy").commits.values()];
  assert.equal(commits.length, 2, "the initial commit and exactly one upload commit");
});

test("pushing again to an existing repo: 409 is fine, the card's section is replaced, not stacked", async () => {
  const first = await push([out, "me/again", "--json"]);
  assert.equal(first.status, 0, first.stderr);
  const second = await push([out, "me/again", "--json"]);
  assert.equal(second.status, 0, second.stderr);
  assert.equal(JSON.parse(second.stdout).push.created, false);
  const card = hub.files("me/again").get("README.md")!.content.toString();
  assert.equal(card.split("<!-- abliterate:begin -->").length, 2);
  const parsed = parseFrontMatter(card)!;
  assert.deepEqual(parsed.data.tags, ["abliterated"]);
  assert.equal(parsed.data.license, "apache-2.0");
});

test("push --create-pr opens refs/pr/N and leaves main alone", async () => {
  hub.createRepo("me/reviewed");
  const mainBefore = hub.head("me/reviewed");
  const result = await push([out, "me/reviewed", "--create-pr", "--json"]);
  assert.equal(result.status, 0, result.stderr);
  const json = JSON.parse(result.stdout);
  assert.match(json.push.pullRequestUrl, /\/me\/reviewed\/discussions\/1$/);
  assert.equal(hub.head("me/reviewed"), mainBefore);
  assert.equal(hub.head("me/reviewed", "refs/pr/1"), json.push.commitOid);
  assert.ok(hub.files("me/reviewed", "refs/pr/1").has("model-00001-of-00002.safetensors"));
});

test("a folder without abliteration.json keeps its own README untouched", async () => {
  const plain = join(root, "plain");
  mkdirSync(join(plain, "nested"), { recursive: true });
  writeFileSync(join(plain, "README.md"), "# mine, exactly\n");
  writeFileSync(join(plain, "nested", "notes.txt"), "nested files keep their path");
  mkdirSync(join(plain, ".cache", "huggingface"), { recursive: true });
  writeFileSync(join(plain, ".cache", "huggingface", "download.lock"), "");
  const result = await push([plain, "me/plain"]);
  assert.equal(result.status, 0, result.stderr);
  const files = hub.files("me/plain");
  assert.equal(files.get("README.md")!.content.toString(), "# mine, exactly\n");
  assert.equal(files.get("nested/notes.txt")!.content.toString(), "nested files keep their path");
  assert.equal([...files.keys()].some((path) => path.startsWith(".cache")), false, "bookkeeping folders stay home");
  assert.match(result.stderr, /pushed 2 file\(s\) to me\/plain@main/);
});

test("push errors: no token, offline mode, a missing folder, a bad repo id", async () => {
  const noToken = await push([out, "me/x"], { HF_TOKEN: "" });
  assert.notEqual(noToken.status, 0);
  assert.match(noToken.stderr, /error \[HUB_UNAUTHORIZED\]: pushing to me\/x needs a token/);
  const missing = await push([join(root, "nope"), "me/x"]);
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /error \[IO\]: .*nope is not a folder/);
  const offline = await push([out, "me/x"], { HF_HUB_OFFLINE: "1" });
  assert.notEqual(offline.status, 0);
  assert.match(offline.stderr, /error \[HUB_OFFLINE\]: HF_HUB_OFFLINE is set, so nothing can be pushed to me\/x/);
  const badId = await push([out, "not a repo"]);
  assert.notEqual(badId.status, 0);
  assert.match(badId.stderr, /error \[INVALID_ARGUMENT\]: "not a repo" is not a repo id/);
});

test("a large file is uploaded streamed from disk: memory stays far below its size", async () => {
  const big = join(root, "big");
  mkdirSync(big);
  // Streaming costs a constant ~50 MiB of buffers and uncollected garbage here whatever the size; a buffered
  // upload (Node 20 fetch with a Blob body) grows with the file, past 100 MiB for this one.
  const size = 160 * 1024 * 1024;
  const fd = openSync(join(big, "model.safetensors"), "w");
  const block = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < size / block.length; i += 1) {
    block.fill(i & 0xff);
    writeSync(fd, block);
  }
  closeSync(fd);
  global.gc?.();
  const baseline = process.memoryUsage().arrayBuffers;
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers)), 2);
  try {
    const run = pushModel({ dir: big, repo: "me/big", token: TOKEN, endpoint: hub.url });
    let step = await run.next();
    while (!step.done) step = await run.next();
    assert.equal(step.value.bytes > size, true);
  } finally {
    clearInterval(sampler);
  }
  const stored = hub.files("me/big").get("model.safetensors")!;
  assert.equal(stored.size, size);
  assert.equal(stored.lfs, true);
  const growthMiB = (peak - baseline) / (1024 * 1024);
  assert.ok(growthMiB < 96, `ArrayBuffer memory grew by ${growthMiB.toFixed(0)} MiB for a 160 MiB upload`);
});
