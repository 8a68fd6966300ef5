/**
 * lib/hub in-process against the emulator, for behaviour the CLI tests do not reach: revisions that are commits,
 * tags or pull requests; index-driven shard selection; gated repos; falling back to the cache when the Hub is
 * unreachable; and the base license looked up on the Hub for a generated card.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { downloadModel, type DownloadEvent, type DownloadResult } from "../../lib/hub/download-model.js";
import { resolveModelDir } from "../../lib/hub/resolve-model-dir.js";
import { pushModel } from "../../lib/hub/push-model.js";
import { isAbliterateError } from "../../lib/errors.js";
import { startHubEmulator } from "../hub-emulator/hub-emulator.js";
import { parseFrontMatter } from "../hub-emulator/simple-yaml.js";
import { scratch } from "../hub-emulator/test-fixtures.js";

const hub = await startHubEmulator();
const { root, cleanup } = scratch("abl-hub-lib-");
after(async () => {
  await hub.close();
  cleanup();
});
hub.addToken("hf_reader", { user: "reader" });
hub.addToken("hf_me", { user: "me" });

const index = JSON.stringify({ metadata: { total_size: 8 }, weight_map: { a: "model-00001-of-00002.safetensors", b: "model-00002-of-00002.safetensors" } });
const mainCommit = hub.addFiles("org/sharded", {
  "config.json": "{}",
  "model.safetensors.index.json": index,
  "model-00001-of-00002.safetensors": Buffer.from("shard one"),
  "model-00002-of-00002.safetensors": Buffer.from("shard two"),
  "model-old-format.safetensors": Buffer.from("not in the index"),
  "consolidated.safetensors": Buffer.from("mistral-format duplicate"),
});

let caseNumber = 0;
async function download(params: Partial<Parameters<typeof downloadModel>[0]> & { repo: string }): Promise<{ result: DownloadResult; events: DownloadEvent[]; cacheDir: string }> {
  const cacheDir = params.cacheDir ?? join(root, `cache-${(caseNumber += 1)}`);
  const events: DownloadEvent[] = [];
  const run = downloadModel({ endpoint: hub.url, offline: false, ...params, cacheDir });
  let step = await run.next();
  while (!step.done) {
    events.push(step.value);
    step = await run.next();
  }
  return { result: step.value, events, cacheDir };
}

test("with an index, exactly the shards it names are fetched", async () => {
  const { result } = await download({ repo: "org/sharded" });
  assert.deepEqual(readdirSync(result.dir).sort(), ["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"]);
  assert.equal(readFileSync(join(result.dir, "model-00002-of-00002.safetensors"), "utf8"), "shard two");
});

test("an index naming a shard the repo lacks is refused", async () => {
  hub.addFiles("org/broken-index", { "model.safetensors.index.json": JSON.stringify({ weight_map: { a: "missing.safetensors" } }), "x.safetensors": "x" });
  await assert.rejects(download({ repo: "org/broken-index" }), (error) => isAbliterateError(error) && error.code === "INDEX_INVALID" && error.message.includes("missing.safetensors"));
});

test("revisions: a commit writes no ref; a tag and refs/pr/N are recorded under refs/ like huggingface_hub", async () => {
  const byCommit = await download({ repo: "org/sharded", revision: mainCommit });
  assert.equal(byCommit.result.commit, mainCommit);
  assert.equal(existsSync(join(byCommit.cacheDir, "models--org--sharded", "refs")), false);

  hub.createTag("org/sharded", "v1.0");
  const prCommit = hub.addFiles("org/sharded", { "config.json": '{"pr":1}' }, { branch: "main" });
  hub.repo("org/sharded").pullRequests.set(1, prCommit);
  const tagged = await download({ repo: "org/sharded", revision: "v1.0" });
  assert.equal(readFileSync(join(tagged.cacheDir, "models--org--sharded", "refs", "v1.0"), "utf8"), mainCommit);
  const pr = await download({ repo: "org/sharded", revision: "refs/pr/1" });
  assert.equal(readFileSync(join(pr.cacheDir, "models--org--sharded", "refs", "refs", "pr", "1"), "utf8"), prCommit);
  assert.equal(readFileSync(join(pr.result.dir, "config.json"), "utf8"), '{"pr":1}');
  // Both snapshots share blobs: the unchanged shards are not stored twice.
  const both = await download({ repo: "org/sharded", revision: "v1.0", cacheDir: pr.cacheDir });
  const resolved = both.events.find((e) => e.type === "resolved");
  assert.equal(resolved?.type === "resolved" ? resolved.bytesToDownload : undefined, 2, "only the 2-byte config.json differs");
});

test("gated repos: 401 without a token and 403 without access, each saying what to do", async () => {
  hub.createRepo("org/gated", { gated: "auto" });
  hub.addFiles("org/gated", { "model.safetensors": "weights" });
  await assert.rejects(download({ repo: "org/gated" }), (error) => isAbliterateError(error) && error.code === "HUB_UNAUTHORIZED" && error.status === 401 && /gated/.test(error.message));
  await assert.rejects(
    download({ repo: "org/gated", token: "hf_reader" }),
    (error) => isAbliterateError(error) && error.code === "HUB_UNAUTHORIZED" && error.status === 403 && /gated .*request access/.test(error.message) && !error.message.includes("hf_reader"),
  );
  hub.grantAccess("org/gated", "reader");
  const { result } = await download({ repo: "org/gated", token: "hf_reader" });
  assert.equal(readFileSync(join(result.dir, "model.safetensors"), "utf8"), "weights");
});

test("an unreachable Hub falls back to a complete cached snapshot, and says so", async () => {
  const first = await download({ repo: "org/sharded" });
  const fallback = await download({ repo: "org/sharded", cacheDir: first.cacheDir, endpoint: "http://127.0.0.1:9" });
  assert.equal(fallback.result.offline, true);
  assert.equal(fallback.result.dir, first.result.dir);
  assert.ok(fallback.events.some((e) => e.type === "offline" && /cannot reach the Hub at http:\/\/127\.0\.0\.1:9/.test(e.reason)));
  await assert.rejects(
    download({ repo: "org/never", endpoint: "http://127.0.0.1:9" }),
    (error) => isAbliterateError(error) && error.code === "HUB" && /cannot reach the Hub .*HF_HUB_OFFLINE=1/.test(error.message),
  );
});

test("offline mode refuses a snapshot whose shards are incomplete", async () => {
  const first = await download({ repo: "org/sharded" });
  rmSync(join(first.result.dir, "model-00002-of-00002.safetensors"));
  await assert.rejects(
    download({ repo: "org/sharded", cacheDir: first.cacheDir, offline: true }),
    (error) => isAbliterateError(error) && error.code === "HUB_OFFLINE" && error.message.includes("model-00002-of-00002.safetensors"),
  );
  // Online, the missing pointer is restored from the blob still in the cache: nothing is downloaded.
  const since = hub.requests.length;
  const again = await download({ repo: "org/sharded", cacheDir: first.cacheDir });
  assert.equal(readFileSync(join(again.result.dir, "model-00002-of-00002.safetensors"), "utf8"), "shard two");
  assert.deepEqual(hub.requests.slice(since).filter((r) => r.url.includes("/cdn/") || r.url.includes("resolve")), []);
});

test("resolveModelDir: a folder is itself; a repo id is downloaded with events", async () => {
  const folder = join(root, "folder");
  mkdirSync(folder);
  assert.deepEqual(await resolveModelDir({ model: folder }), { dir: folder });
  const events: DownloadEvent[] = [];
  const previous = { endpoint: process.env.HF_ENDPOINT, cache: process.env.HF_HUB_CACHE, offline: process.env.HF_HUB_OFFLINE };
  process.env.HF_ENDPOINT = hub.url;
  process.env.HF_HUB_CACHE = join(root, "resolve-cache");
  delete process.env.HF_HUB_OFFLINE;
  try {
    const resolved = await resolveModelDir({ model: `org/sharded@${mainCommit}`, token: "hf_me", onEvent: (event) => events.push(event) });
    assert.equal(resolved.repo, "org/sharded");
    assert.equal(resolved.commit, mainCommit);
    assert.ok(resolved.dir.endsWith(join("models--org--sharded", "snapshots", mainCommit)));
    assert.ok(events.some((e) => e.type === "resolved") && events.some((e) => e.type === "file-done"));
  } finally {
    for (const [key, value] of [["HF_ENDPOINT", previous.endpoint], ["HF_HUB_CACHE", previous.cache], ["HF_HUB_OFFLINE", previous.offline]] as const) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
});

test("a generated card takes the base model's license from the Hub when the folder has none", async () => {
  hub.addFiles("org/licensed-base", { "README.md": "---\nlicense: other\nlicense_name: custom-license\nlicense_link: LICENSE\n---\n# base\n", "x.safetensors": "x" });
  const dir = join(root, "to-push");
  mkdirSync(dir);
  writeFileSync(join(dir, "model.safetensors"), "edited");
  writeFileSync(join(dir, "abliteration.json"), JSON.stringify({ tool: { name: "abliterate", version: "0" }, source: { repo: "org/licensed-base" }, scale: 1, layers: "0:1", targets: ["mlp"], notes: [], tensors_changed: [], verification: { passed: true, tensors_checked: 1, elements_checked: 1, mismatches: 0, max_ulp_error: 0, max_ablation_residual: 0, untouched_identical: true } }));
  const run = pushModel({ dir, repo: "me/with-license", token: "hf_me", endpoint: hub.url });
  let step = await run.next();
  while (!step.done) step = await run.next();
  const card = parseFrontMatter(hub.files("me/with-license").get("README.md")!.content.toString())!;
  assert.deepEqual(card.data, { base_model: "org/licensed-base", tags: ["abliterated"], library_name: "transformers", license: "other", license_name: "custom-license", license_link: "LICENSE" });

  // A base the token cannot read leaves the card without a license rather than failing the push.
  writeFileSync(join(dir, "abliteration.json"), JSON.stringify({ tool: { name: "abliterate", version: "0" }, source: { repo: "org/absent" }, scale: 1, notes: [], tensors_changed: [] }));
  const second = pushModel({ dir, repo: "me/without-license", token: "hf_me", endpoint: hub.url });
  let next = await second.next();
  while (!next.done) next = await second.next();
  assert.equal(parseFrontMatter(hub.files("me/without-license").get("README.md")!.content.toString())!.data.license, undefined);
});
