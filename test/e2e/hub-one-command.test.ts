/**
 * The one command against the Hub emulator, through the built CLI: a tiny sharded checkpoint is published,
 * `abliterate org/tiny --direction D --push me/tiny-abl` downloads, edits, verifies and pushes it, and then:
 * the pushed files, downloaded back, equal a local `apply --out` byte for byte; the card parses; the cache is laid
 * out as huggingface_hub lays it out; an offline rerun works from the cache alone; a Python-fetched cache is reused.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { downloadModel } from "../../lib/hub/download-model.js";
import { runCli } from "../helpers/run-cli.js";
import { randomDirection, writeDirectionFile, writeTinyLlama } from "../helpers/tiny-llama.js";
import { startHubEmulator } from "../hub-emulator/hub-emulator.js";
import { parseFrontMatter } from "../hub-emulator/simple-yaml.js";
import { filesUnder, hubEnv, publishFolder, scratch } from "../hub-emulator/test-fixtures.js";

const HIDDEN = 16;
const TOKEN = "hf_WriterToken0123456789abcdef";
const hub = await startHubEmulator({ multipartThreshold: 4000, multipartChunkSize: 2048 });
const { root, cleanup } = scratch("abl-hub-e2e-");
after(async () => {
  await hub.close();
  cleanup();
});
hub.addToken(TOKEN, { user: "me" });

const model = join(root, "model");
const direction = join(root, "refusal.safetensors");
writeTinyLlama({ dir: model, dtype: "BF16", tied: false, hidden: HIDDEN });
writeDirectionFile(direction, [{ name: "direction", shape: [HIDDEN], values: randomDirection(HIDDEN, 11) }]);
// Files the surgery does not need, which must stay on the Hub.
const unwanted = [
  { path: "pytorch_model.bin", content: Buffer.alloc(3000, 1) },
  { path: "model.gguf", content: Buffer.alloc(2000, 2) },
  { path: "onnx/model.onnx", content: Buffer.alloc(1000, 3) },
];
const baseCommit = publishFolder(hub, "org/tiny", model, unwanted);
const tmp = join(root, "tmp");
mkdirSync(tmp);
const env = hubEnv(hub, root, { HF_TOKEN: TOKEN, TMPDIR: tmp });

const localOut = join(root, "local-out");
let pushedJson: { ok: boolean; out: null; push: { repo: string; commitOid: string; branch: string }; verification: { passed: boolean } };
let pushRequests: { method: string; url: string }[] = [];

before(async () => {
  const local = await runCli(["apply", model, "--direction", direction, "--out", localOut, "--json"], { env });
  assert.equal(local.status, 0, local.stderr);
  const since = hub.requests.length;
  const run = await runCli(["org/tiny", "--direction", direction, "--push", "me/tiny-abl", "--json"], { env });
  assert.equal(run.status, 0, run.stderr);
  pushRequests = hub.requests.slice(since);
  pushedJson = JSON.parse(run.stdout);
});

test("the one command exits 0 with one JSON result, and leaves no temporary folder", () => {
  assert.equal(pushedJson.ok, true);
  assert.equal(pushedJson.out, null);
  assert.equal(pushedJson.verification.passed, true);
  assert.equal(pushedJson.push.repo, "me/tiny-abl");
  assert.equal(pushedJson.push.commitOid, hub.head("me/tiny-abl"));
  assert.deepEqual(readdirSync(tmp), [], "the temporary output was removed");
  assert.ok(pushRequests.some((r) => /^\/lfs-upload\/\w+\/part\/\d+$/.test(r.url)), "large shards went through multipart LFS");
  assert.ok(!pushRequests.some((r) => /pytorch_model\.bin|model\.gguf|onnx/.test(r.url) && r.url.includes("resolve")), "unneeded files were not downloaded");
});

test("the pushed repo, downloaded back, is byte-identical to a local apply --out", async () => {
  const backCache = join(root, "download-back");
  const run = downloadModel({ repo: "me/tiny-abl", cacheDir: backCache, token: TOKEN, endpoint: hub.url });
  let step = await run.next();
  while (!step.done) step = await run.next();
  const back = step.value.dir;
  const localFiles = filesUnder(localOut);
  assert.deepEqual(filesUnder(back), localFiles, "same file set (README.md and abliteration.json included)");
  for (const file of localFiles) {
    if (file === "README.md" || file === "abliteration.json") continue;
    assert.deepEqual(readFileSync(join(back, file)), readFileSync(join(localOut, file)), file);
  }
  // The record differs only in when it was made and where the input came from.
  const pushedRecord = JSON.parse(readFileSync(join(back, "abliteration.json"), "utf8"));
  const localRecord = JSON.parse(readFileSync(join(localOut, "abliteration.json"), "utf8"));
  assert.deepEqual(pushedRecord.source, { repo: "org/tiny", revision: "main", commit: baseCommit });
  for (const record of [pushedRecord, localRecord]) {
    delete record.created;
    delete record.source;
  }
  assert.deepEqual(pushedRecord, localRecord);
  // Every LFS object the Hub holds is the sha256 of its bytes (the emulator checked it on upload).
  for (const [path, file] of hub.files("me/tiny-abl")) {
    if (file.lfs) assert.equal(createHash("sha256").update(file.content).digest("hex"), file.sha256, path);
  }
});

test("the model card parses and carries base_model, tags, library_name, the base license and the verification", () => {
  const card = hub.files("me/tiny-abl").get("README.md")!.content.toString("utf8");
  const parsed = parseFrontMatter(card);
  assert.ok(parsed, "front matter present");
  assert.equal(parsed.data.base_model, "org/tiny");
  assert.deepEqual(parsed.data.tags, ["abliterated"]);
  assert.equal(parsed.data.library_name, "transformers");
  assert.equal(parsed.data.license, "apache-2.0", "copied from the base model's card");
  const record = JSON.parse(hub.files("me/tiny-abl").get("abliteration.json")!.content.toString("utf8"));
  assert.ok(parsed.body.includes(`| Tensors checked | ${record.verification.tensors_checked} |`));
  assert.ok(parsed.body.includes(`| Elements checked | ${record.verification.elements_checked} |`));
  assert.ok(parsed.body.includes(`| Elements off by more than 1 ulp | 0 |`));
  assert.ok(parsed.body.includes("**passed**"));
  assert.ok(parsed.body.includes("## Original model card (org/tiny)"), "the base card is kept below our section");
});

test("the cache is laid out as huggingface_hub lays it out: refs, relative snapshot symlinks, blobs by etag", () => {
  const repoDir = join(root, "hub-cache", "models--org--tiny");
  assert.equal(readFileSync(join(repoDir, "refs", "main"), "utf8"), baseCommit);
  const snapshot = join(repoDir, "snapshots", baseCommit);
  const expected = ["README.md", "chat_template.jinja", "config.json", "generation_config.json", "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", "model.safetensors.index.json", "tokenizer_config.json"];
  assert.deepEqual(readdirSync(snapshot).sort(), expected);
  const remote = hub.files("org/tiny");
  for (const name of expected) {
    const pointer = join(snapshot, name);
    assert.ok(lstatSync(pointer).isSymbolicLink(), `${name} is a symlink`);
    const file = remote.get(name)!;
    const etag = file.lfs ? file.sha256 : file.gitOid;
    assert.equal(readlinkSync(pointer), `../../blobs/${etag}`, `${name} points relatively to its blob`);
    assert.deepEqual(readFileSync(pointer), readFileSync(join(model, name)));
  }
  assert.equal(readdirSync(join(repoDir, "blobs")).filter((name) => name.endsWith(".incomplete")).length, 0);
});

test("a rerun reuses complete blobs: only metadata is fetched", async () => {
  const since = hub.requests.length;
  const out = join(root, "rerun-out");
  const run = await runCli(["org/tiny", "--direction", direction, "--out", out, "--json"], { env });
  assert.equal(run.status, 0, run.stderr);
  const fetched = hub.requests.slice(since).filter((r) => /\/resolve\/|\/cdn\/|resolve-cache/.test(r.url));
  assert.deepEqual(fetched, []);
});

test("HF_HUB_OFFLINE=1: a second run works from the cache alone, with the Hub unreachable", async () => {
  const since = hub.requests.length;
  const out = join(root, "offline-out");
  const run = await runCli(["org/tiny", "--direction", direction, "--out", out, "--json"], { env: { ...env, HF_HUB_OFFLINE: "1", HF_ENDPOINT: "http://127.0.0.1:9" } });
  assert.equal(run.status, 0, run.stderr);
  assert.equal(hub.requests.length, since, "no request reached the Hub");
  for (const file of filesUnder(localOut).filter((name) => name.endsWith(".safetensors"))) {
    assert.deepEqual(readFileSync(join(out, file)), readFileSync(join(localOut, file)), file);
  }
  const missing = await runCli(["org/never-fetched", "--direction", direction, "--out", join(root, "x")], { env: { ...env, HF_HUB_OFFLINE: "1" } });
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /error \[HUB_OFFLINE\]: .*org\/never-fetched is not in the cache/);
});

test("a model huggingface_hub already fetched is used from its cache without downloading", async () => {
  // What `snapshot_download("org/pyfetched")` leaves behind, built here by hand.
  const commit = publishFolder(hub, "org/pyfetched", model);
  const repoDir = join(root, "hub-cache", "models--org--pyfetched");
  mkdirSync(join(repoDir, "blobs"), { recursive: true });
  mkdirSync(join(repoDir, "refs"), { recursive: true });
  writeFileSync(join(repoDir, "refs", "main"), commit);
  for (const [path, file] of hub.files("org/pyfetched")) {
    if (path === ".gitattributes") continue;
    const etag = file.lfs ? file.sha256 : file.gitOid;
    writeFileSync(join(repoDir, "blobs", etag), file.content);
    const pointer = join(repoDir, "snapshots", commit, path);
    mkdirSync(join(pointer, ".."), { recursive: true });
    symlinkSync(`../../blobs/${etag}`, pointer);
  }
  const since = hub.requests.length;
  const run = await runCli(["org/pyfetched", "--direction", direction, "--out", join(root, "py-out")], { env });
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(hub.requests.slice(since).filter((r) => /\/resolve\/|\/cdn\//.test(r.url)), []);
  assert.ok(existsSync(join(root, "py-out", "model-00001-of-00003.safetensors")));
});

test("--quiet prints nothing on success; without a TTY there are no bars", async () => {
  const quiet = await runCli(["org/tiny", "--direction", direction, "--out", join(root, "quiet-out"), "--quiet"], { env });
  assert.equal(quiet.status, 0, quiet.stderr);
  assert.equal(quiet.stderr, "");
  assert.equal(quiet.stdout, "");
  const plain = await runCli(["org/tiny", "--direction", direction, "--out", join(root, "plain-out")], { env });
  assert.equal(plain.status, 0, plain.stderr);
  assert.ok(!plain.stderr.includes("\u001b["), "no terminal control codes in a non-TTY stream");
  assert.match(plain.stderr, /org\/tiny@main is commit [0-9a-f]{12}/);
});
