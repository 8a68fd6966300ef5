/**
 * Hostile repos through the built CLI: a tree listing that names `..`, absolute, backslash, NUL or invisible
 * paths, a traversing oid, a duplicate; an index whose weight_map leaves the folder; a revision that would
 * leave refs/. Each is refused with a clear, escaped message before anything is written: no folder for the repo
 * in the cache (so no blob, snapshot or ref), no output folder, and nothing downloaded. Hostile names in the
 * siblings and paths-info answers are never used as file names at all.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { runCli, type CliResult } from "../helpers/run-cli.js";
import { randomDirection, writeDirectionFile, writeTinyLlama } from "../helpers/tiny-llama.js";
import { editJson } from "../hub-emulator/faults.js";
import { startHubEmulator } from "../hub-emulator/hub-emulator.js";
import { filesUnder, hubEnv, publishFolder, scratch } from "../hub-emulator/test-fixtures.js";

const TOKEN = "hf_HostileFaultsR8kW2nQ5vT9mB3xL6";
const hub = await startHubEmulator();
const { root, cleanup } = scratch("abl-hub-faults-hostile-");
after(async () => {
  await hub.close();
  cleanup();
});
hub.addToken(TOKEN, { user: "me" });

const model = join(root, "model");
writeTinyLlama({ dir: model, dtype: "F16", tied: true, hidden: 16, shards: 2 });
publishFolder(hub, "org/tiny", model);
const direction = join(root, "refusal.safetensors");
writeDirectionFile(direction, [{ name: "direction", shape: [16], values: randomDirection(16, 2) }]);

let caseNumber = 0;
async function run(args: string[]): Promise<CliResult & { caseRoot: string; cache: string }> {
  caseNumber += 1;
  const caseRoot = join(root, `case-${caseNumber}`);
  mkdirSync(caseRoot, { recursive: true });
  const result = await runCli(args, { env: hubEnv(hub, caseRoot, { HF_TOKEN: TOKEN }) });
  return { ...result, caseRoot, cache: join(caseRoot, "hub-cache") };
}

/** The refusal: exit 1, the code, the message; no raw control character printed; nothing of the repo cached. */
function assertRefused(result: Awaited<ReturnType<typeof run>>, code: string, message: RegExp, repo = "org/tiny"): void {
  assert.equal(result.status, 1, result.stderr);
  assert.match(result.stderr, new RegExp(`error \\[${code}\\]: `), result.stderr);
  assert.match(result.stderr, message);
  assert.doesNotMatch(result.stderr, /[\u0000-\u0008\u000b-\u001f\u007f\u202e]/, "hostile characters are shown escaped");
  const repoDir = join(result.cache, `models--${repo.replace("/", "--")}`);
  assert.equal(existsSync(repoDir), false, `nothing of ${repo} in the cache: ${existsSync(repoDir) ? filesUnder(repoDir).join(", ") : ""}`);
}

const SHA1 = "0123456789abcdef0123456789abcdef01234567";

/** A fault that adds (or changes) entries of org/tiny's tree listing. */
function hostileTree(edit: (entries: { path: string; type: string; oid: string; size: number; lfs?: { oid: string; size: number } }[]) => unknown) {
  return hub.injectFault({ pathMatches: "/api/models/org/tiny/tree/", times: 100, transformBody: editJson(edit) });
}

test("tree listings naming paths outside the repo, or hiding characters, are refused before anything is fetched", async () => {
  const cases: [string, RegExp][] = [
    ["../evil.safetensors", /names the path "\.\.\/evil\.safetensors", which is unsafe: it has a "\.\." segment/],
    ["/etc/evil.safetensors", /"\/etc\/evil\.safetensors".*absolute path/],
    ["..\\evil.safetensors", /"\.\.\\\\evil\.safetensors".*backslash/],
    ["evil\u0000.safetensors", /"evil\\u0000\.safetensors".*control or invisible characters/],
    ["\u202eevil.safetensors", /control or invisible characters/],
  ];
  for (const [path, message] of cases) {
    hostileTree((entries) => [...entries, { type: "file", path, oid: SHA1, size: 10 }]);
    const index = hub.requests.length;
    const result = await run(["inspect", "org/tiny"]);
    hub.clearFaults();
    assertRefused(result, "HUB_UNSAFE_LISTING", message);
    assert.match(result.stderr, /the Hub's file listing of org\/tiny@main .*; the repo was refused and nothing was written to the cache/);
    const fetched = hub.requests.slice(index).filter((r) => /\/resolve\/|\/cdn\/|resolve-cache/.test(r.url));
    assert.deepEqual(fetched, [], `${JSON.stringify(path)}: no file was downloaded`);
  }
});

test("a traversing LFS oid and a path listed twice are refused too", async () => {
  const cases: [Parameters<typeof hostileTree>[0], RegExp][] = [
    [(entries) => entries.map((entry) => (entry.lfs ? { ...entry, lfs: { ...entry.lfs, oid: "../../../../outside" } } : entry)), /malformed LFS sha256 "\.\.\/\.\.\/\.\.\/\.\.\/outside"/],
    [(entries) => [...entries, entries.find((entry) => entry.path === "config.json")], /names "config\.json" twice/],
  ];
  for (const [edit, message] of cases) {
    hostileTree(edit);
    const result = await run(["inspect", "org/tiny"]);
    hub.clearFaults();
    assertRefused(result, "HUB_UNSAFE_LISTING", message);
  }
});

test("the one command writes no output folder for a hostile repo", async () => {
  hostileTree((entries) => [...entries, { type: "file", path: "../../escape.safetensors", oid: SHA1, size: 10 }]);
  const out = join(root, "one-command-out");
  const result = await run(["org/tiny", "--direction", direction, "--out", out]);
  hub.clearFaults();
  assertRefused(result, "HUB_UNSAFE_LISTING", /"\.\.\/\.\.\/escape\.safetensors"/);
  assert.equal(existsSync(out), false, "no output folder");
  assert.deepEqual(readdirSync(root).filter((name) => name.includes("escape")), []);
});

test("hostile names in siblings and paths-info are never used as file names", async () => {
  const evil = "../../../siblings-escape.safetensors";
  hub.injectFault({ pathMatches: "/api/models/org/tiny/revision/", transformBody: editJson((info) => ({ ...info, siblings: [{ rfilename: evil }, { rfilename: "/abs-escape" }] })) });
  hub.injectFault({ pathMatches: "/paths-info/", times: 100, transformBody: editJson((entries) => [...entries, { type: "file", path: evil, oid: SHA1, size: 1 }]) });
  const result = await run(["inspect", "org/tiny"]);
  hub.clearFaults();
  assert.equal(result.status, 0, result.stderr);
  const everything = filesUnder(result.caseRoot);
  assert.deepEqual(everything.filter((path) => path.includes("escape")), []);
  assert.deepEqual(readdirSync(root).filter((name) => name.includes("escape")), []);
});

test("an index whose weight_map leaves the folder is refused, and its own blob is taken back", async () => {
  const cases: [string, RegExp][] = [
    ["../model.safetensors", /weight_map names the shard "\.\.\/model\.safetensors", which is unsafe: it has a "\.\." segment/],
    ["model\u0000.safetensors", /"model\\u0000\.safetensors".*control/],
  ];
  for (const [index, [shard, message]] of cases.entries()) {
    const repo = `org/weight-map-${index}`;
    hub.addFiles(repo, {
      "config.json": "{}",
      "model.safetensors": Buffer.alloc(64, 1),
      "model.safetensors.index.json": JSON.stringify({ metadata: {}, weight_map: { "a.weight": "model.safetensors", "b.weight": shard } }),
    });
    const result = await run(["inspect", repo]);
    assertRefused(result, "INDEX_INVALID", message, repo);
    assert.match(result.stderr, new RegExp(`${repo}@main/model\\.safetensors\\.index\\.json: `), "the message names the index");
  }
});

test("a revision that would leave refs/ is a usage error, and the Hub is not asked", async () => {
  const index = hub.requests.length;
  const result = await run(["inspect", "org/tiny@../../../../escape"]);
  assertRefused(result, "INVALID_ARGUMENT", /the revision "\.\.\/\.\.\/\.\.\/\.\.\/escape" cannot be used: it has a "\.\." segment/);
  assert.equal(hub.requests.length, index);
});
