/** Token precedence and the cache root, exactly as huggingface_hub resolves them from the environment. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { resolveHubToken, redactToken } from "../../lib/hub/hub-token.js";
import { hubCacheRoot, hubTokenPath, repoCachePaths, repoFolderName } from "../../lib/hub/cache-paths.js";
import { hubEndpoint, isHubOffline } from "../../lib/hub/hub-endpoint.js";
import { isAbliterateError } from "../../lib/errors.js";
import { scratch } from "../hub-emulator/test-fixtures.js";

test("token: --token, then HF_TOKEN, then the legacy variable, then $HF_HOME/token, else none", () => {
  const { root, cleanup } = scratch();
  try {
    const home = join(root, "home");
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, "token"), "hf_fromfile\n");
    const env = { HF_HOME: home, HF_TOKEN: "hf_fromenv", HUGGING_FACE_HUB_TOKEN: "hf_legacy" };
    assert.deepEqual(resolveHubToken({ explicit: "hf_explicit", env }), { token: "hf_explicit", source: "--token" });
    assert.deepEqual(resolveHubToken({ env }), { token: "hf_fromenv", source: "HF_TOKEN" });
    assert.deepEqual(resolveHubToken({ env: { ...env, HF_TOKEN: "" } }), { token: "hf_legacy", source: "HUGGING_FACE_HUB_TOKEN" });
    assert.deepEqual(resolveHubToken({ env: { HF_HOME: home } }), { token: "hf_fromfile", source: "token file", file: join(home, "token") });
    assert.deepEqual(resolveHubToken({ env: { HF_HOME: join(root, "empty") } }), { source: "none" });
  } finally {
    cleanup();
  }
});

test("token file: HF_TOKEN_PATH overrides $HF_HOME/token; the default home is ~/.cache/huggingface", () => {
  const { root, cleanup } = scratch();
  try {
    writeFileSync(join(root, "custom-token"), "  hf_custom  \n");
    assert.equal(resolveHubToken({ env: { HF_TOKEN_PATH: join(root, "custom-token"), HF_HOME: root } }).token, "hf_custom");
    assert.equal(hubTokenPath({}), join(homedir(), ".cache", "huggingface", "token"));
    assert.equal(hubTokenPath({ XDG_CACHE_HOME: "/xdg" }), "/xdg/huggingface/token");
  } finally {
    cleanup();
  }
});

test("a malformed token is refused without being echoed", () => {
  const secret = "sk-not-a-hub-token-123456";
  assert.throws(
    () => resolveHubToken({ env: { HF_TOKEN: secret } }),
    (error) => isAbliterateError(error) && error.code === "HUB_UNAUTHORIZED" && /HF_TOKEN/.test(error.message) && !error.message.includes(secret),
  );
  assert.equal(redactToken(`GET with Bearer hf_abc123 failed; hf_abc123 again`, "hf_abc123"), "GET with Bearer hf_*** failed; hf_*** again");
});

test("cache root: HF_HUB_CACHE, then HUGGINGFACE_HUB_CACHE, then $HF_HOME/hub, then XDG, then ~/.cache/huggingface/hub", () => {
  assert.equal(hubCacheRoot({ HF_HUB_CACHE: "/a", HUGGINGFACE_HUB_CACHE: "/b", HF_HOME: "/c" }), "/a");
  assert.equal(hubCacheRoot({ HUGGINGFACE_HUB_CACHE: "/b", HF_HOME: "/c" }), "/b");
  assert.equal(hubCacheRoot({ HF_HOME: "/c" }), "/c/hub");
  assert.equal(hubCacheRoot({ XDG_CACHE_HOME: "/x" }), "/x/huggingface/hub");
  assert.equal(hubCacheRoot({}), join(homedir(), ".cache", "huggingface", "hub"));
  assert.equal(hubCacheRoot({ HF_HOME: "~/hf" }), join(homedir(), "hf", "hub"));
});

test("repo folders and paths follow huggingface_hub's layout", () => {
  assert.equal(repoFolderName("meta-llama/Llama-3.1-8B"), "models--meta-llama--Llama-3.1-8B");
  const paths = repoCachePaths({ repo: "org/name", cacheDir: "/cache" });
  assert.equal(paths.blob("abc"), "/cache/models--org--name/blobs/abc");
  assert.equal(paths.pointer("c0ffee", "sub/file.json"), "/cache/models--org--name/snapshots/c0ffee/sub/file.json");
  assert.equal(paths.ref("main"), "/cache/models--org--name/refs/main");
  assert.equal(paths.ref("refs/pr/1"), "/cache/models--org--name/refs/refs/pr/1");
});

test("endpoint and offline switches read the environment like huggingface_hub", () => {
  assert.equal(hubEndpoint({}), "https://huggingface.co");
  assert.equal(hubEndpoint({ HF_ENDPOINT: "http://127.0.0.1:9/ " }), "http://127.0.0.1:9");
  for (const value of ["1", "true", "YES", "on"]) assert.equal(isHubOffline({ HF_HUB_OFFLINE: value }), true, value);
  for (const value of ["", "0", "false", undefined]) assert.equal(isHubOffline({ HF_HUB_OFFLINE: value }), false, String(value));
});

test("repos are {type, name} through cache paths and snapshot lookup, as huggingface.js designates them", async () => {
  const { findSnapshotFolder } = await import("../../lib/hub/cached-snapshot.js");
  const { mkdtempSync, mkdirSync: mkdir, writeFileSync: write, rmSync: remove } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join: joinPath } = await import("node:path");
  assert.equal(repoFolderName({ type: "dataset", name: "org/prompts" }), "datasets--org--prompts");
  assert.equal(repoFolderName({ type: "model", name: "org/m" }), repoFolderName("org/m"));
  const cache = mkdtempSync(joinPath(tmpdir(), "abl-types-"));
  try {
    const commit = "a".repeat(40);
    const paths = repoCachePaths({ repo: { type: "dataset", name: "org/prompts" }, cacheDir: cache });
    assert.equal(paths.repoDir, joinPath(cache, "datasets--org--prompts"));
    mkdir(paths.snapshot(commit), { recursive: true });
    mkdir(joinPath(paths.repoDir, "refs"), { recursive: true });
    write(paths.ref("main"), commit);
    assert.deepEqual(findSnapshotFolder({ repo: { type: "dataset", name: "org/prompts" }, revision: "main", cacheDir: cache }), { dir: paths.snapshot(commit), commit });
    const model = findSnapshotFolder({ repo: "org/prompts", revision: "main", cacheDir: cache });
    assert.ok("missing" in model && /org\/prompts is not in the cache/.test(model.missing), "the model of the same name is another repo");
  } finally {
    remove(cache, { recursive: true, force: true });
  }
});
