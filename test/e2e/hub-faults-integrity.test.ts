/**
 * Wrong bytes from the Hub, through the built CLI: an LFS shard whose bytes do not hash to its sha256 oid, a
 * regular file whose git blob sha1 does not match, and a body longer than announced are rejected with
 * HUB_INTEGRITY naming the file, and leave nothing in the cache that a later run could trust (no blob, no
 * .incomplete, no snapshot link, no ref). A rerun against the repaired server then succeeds from the same cache.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { runCli, type CliResult } from "../helpers/run-cli.js";
import { writeTinyLlama } from "../helpers/tiny-llama.js";
import { flipByte } from "../hub-emulator/faults.js";
import { startHubEmulator } from "../hub-emulator/hub-emulator.js";
import { hubEnv, leaksSecret, publishFolder, scratch } from "../hub-emulator/test-fixtures.js";

const TOKEN = "hf_IntegrityFaultsP3sD7gJ1kY5hN9c";
const hub = await startHubEmulator();
const { root, cleanup } = scratch("abl-hub-faults-integrity-");
after(async () => {
  await hub.close();
  cleanup();
});
hub.addToken(TOKEN, { user: "me" });

const model = join(root, "model");
writeTinyLlama({ dir: model, dtype: "BF16", tied: false, hidden: 16, shards: 2 });
const commit = publishFolder(hub, "org/tiny", model);
const published = hub.files("org/tiny");
const repoDir = (cache: string) => join(cache, "models--org--tiny");

function run(caseRoot: string): Promise<CliResult> {
  mkdirSync(caseRoot, { recursive: true });
  return runCli(["inspect", "org/tiny"], { env: hubEnv(hub, caseRoot, { HF_TOKEN: TOKEN }) });
}

function linkExists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Nothing a later run could trust: no blob or partial blob under the etag, no snapshot link, no ref. */
function assertNothingKept(cache: string, file: string, etag: string): void {
  const blobs = join(repoDir(cache), "blobs");
  const names = existsSync(blobs) ? readdirSync(blobs) : [];
  assert.deepEqual(names.filter((name) => name.startsWith(etag)), [], `no blob or .incomplete for ${file}`);
  assert.deepEqual(names.filter((name) => name.endsWith(".incomplete")), [], "no partial file at all");
  assert.equal(linkExists(join(repoDir(cache), "snapshots", commit, file)), false, `no snapshot link for ${file}`);
  assert.equal(existsSync(join(repoDir(cache), "refs", "main")), false, "no ref to a snapshot that is not complete");
}

const cases = [
  {
    name: "an LFS shard whose bytes do not match its sha256 oid",
    file: "model-00001-of-00002.safetensors",
    etag: published.get("model-00001-of-00002.safetensors")!.sha256,
    fault: { pathMatches: `/cdn/lfs/${published.get("model-00001-of-00002.safetensors")!.sha256}`, transformBody: flipByte(-1) },
    message: new RegExp(`downloaded org/tiny/model-00001-of-00002\\.safetensors does not match the Hub's record: expected \\d+ bytes with sha256 ${published.get("model-00001-of-00002.safetensors")!.sha256}, got \\d+ bytes with [0-9a-f]{64}; nothing was kept in the cache`),
  },
  {
    name: "a regular file whose git blob sha1 does not match",
    file: "config.json",
    etag: published.get("config.json")!.gitOid,
    fault: { pathMatches: /\/api\/resolve-cache\/models\/org\/tiny\/[0-9a-f]+\/config\.json/, transformBody: flipByte(3) },
    message: new RegExp(`downloaded org/tiny/config\\.json does not match the Hub's record: expected \\d+ bytes with git-sha1 ${published.get("config.json")!.gitOid}`),
  },
  {
    name: "an LFS shard longer than its oid says",
    file: "model-00002-of-00002.safetensors",
    etag: published.get("model-00002-of-00002.safetensors")!.sha256,
    fault: { pathMatches: `/cdn/lfs/${published.get("model-00002-of-00002.safetensors")!.sha256}`, transformBody: (body: Buffer) => Buffer.concat([body, Buffer.from("trailing junk")]) },
    message: /downloaded org\/tiny\/model-00002-of-00002\.safetensors does not match the Hub's record/,
    rerun: false,
  },
];

for (const { name, file, etag, fault, message, rerun: checkRerun = true } of cases) {
  test(`${name}: HUB_INTEGRITY naming the file, nothing kept${checkRerun ? "; the repaired server then serves a clean rerun" : ""}`, async () => {
    const caseRoot = join(root, file);
    const cache = join(caseRoot, "hub-cache");
    const handle = hub.injectFault({ ...fault, times: 1000 });
    const failed = await run(caseRoot);
    hub.clearFaults();
    assert.ok(handle.fired >= 2, "the download was tried again from zero before giving up");
    assert.equal(failed.status, 1, failed.stderr);
    assert.match(failed.stderr, /error \[HUB_INTEGRITY\]: /);
    assert.match(failed.stderr, message);
    assert.ok(!leaksSecret(failed.stdout + failed.stderr, TOKEN));
    assertNothingKept(cache, file, etag);
    if (!checkRerun) return;

    const rerun = await run(caseRoot);
    assert.equal(rerun.status, 0, rerun.stderr);
    const blob = join(repoDir(cache), "blobs", etag);
    assert.deepEqual(readFileSync(blob), readFileSync(join(model, file)), "the blob holds the published bytes");
    if (etag.length === 64) assert.equal(createHash("sha256").update(readFileSync(blob)).digest("hex"), etag);
    assert.deepEqual(readFileSync(join(repoDir(cache), "snapshots", commit, file)), readFileSync(join(model, file)));
    assert.equal(readFileSync(join(repoDir(cache), "refs", "main"), "utf8"), commit);
  });
}
