/**
 * Prompts from Hub datasets, end to end against the Hub emulator: a split's parquet fetched into the shared cache
 * in huggingface_hub's layout, reused without a download, served offline, and the errors a user can meet (missing,
 * private and gated datasets, a missing split). Then the defaults: with no --harmful/--harmless, `abliterate
 * direction` reads mlabonne/harmful_behaviors and mlabonne/harmless_alpaca from the Hub, and falls back to the
 * built-in sets, saying so, when the Hub is unreachable or HF_HUB_OFFLINE is set.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, lstatSync, readFileSync, readlinkSync, readdirSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { parquetWriteBuffer } from "hyparquet-writer";
import { BUILTIN_HARMFUL_PROMPTS, BUILTIN_HARMLESS_PROMPTS } from "../../lib/directions/builtin-prompts.js";
import { resultOf } from "../../lib/event-channel.js";
import { splitContrastSets } from "../../lib/directions/split-prompts.js";
import { PipelineContext } from "../../lib/pipeline/pipeline-context.js";
import { promptsStage } from "../../lib/pipeline/prompts-stage.js";
import { writePlantedRefusalModel } from "../../lib/directions/planted-refusal-model.js";
import { readPromptSource } from "../../lib/pipeline/prompt-sources.js";
import { readDirectionCandidates } from "../../lib/direction-files/write-direction-candidates.js";
import { isAbliterateError } from "../../lib/errors.js";
import { startHubEmulator } from "../hub-emulator/hub-emulator.js";
import { flipByte } from "../hub-emulator/faults.js";
import { hubEnv, scratch } from "../hub-emulator/test-fixtures.js";
import { runCli } from "../helpers/run-cli.js";

const hub = await startHubEmulator();
const { root, cleanup } = scratch("abl-datasets-");
after(async () => {
  await hub.close();
  cleanup();
});
hub.addToken("hf_owner", { user: "org" });
hub.addToken("hf_reader", { user: "reader" });

// Nothing of the developer's own Hub setup may leak into the in-process calls.
Object.assign(process.env, hubEnv(hub, root));

function parquetOf(texts: readonly string[]): Buffer {
  return Buffer.from(parquetWriteBuffer({ columnData: [{ name: "text", data: [...texts], type: "STRING" }] }));
}

/** sha256 of bytes: the blob name huggingface_hub gives an LFS file. */
const sha256 = (bytes: Buffer | string) => createHash("sha256").update(bytes).digest("hex");
/** The prompts' digest the direction file records: sha256 of the trimmed prompts joined by "\n". */
const promptsDigest = (prompts: readonly string[]) => sha256(prompts.map((p) => p.trim()).join("\n"));

const TRAIN = ["Describe a sunrise over the hills", "List five kinds of bread", "How do tides work?", "Translate 'good morning' into Spanish", "Give a tip for learning chess", "Why is the sky blue?"];
const TEST = ["Name a famous painting", "What is a haiku?"];
const TRAIN_PARQUET = parquetOf(TRAIN);
const TEST_PARQUET = parquetOf(TEST);
const promptsCommit = hub.addFiles("datasets/org/prompts", {
  "README.md": "---\nlicense: mit\n---\n# prompts\n",
  "data/train-00000-of-00001.parquet": TRAIN_PARQUET,
  "data/test-00000-of-00001.parquet": TEST_PARQUET,
});
hub.createRepo("datasets/org/private-prompts", { private: true });
hub.addFiles("datasets/org/private-prompts", { "data/train-00000-of-00001.parquet": TRAIN_PARQUET });
hub.createRepo("datasets/org/gated-prompts", { gated: "manual" });
hub.addFiles("datasets/org/gated-prompts", { "data/train-00000-of-00001.parquet": TRAIN_PARQUET });

// The defaults, laid out as the real ones: a train and a test parquet with a `text` column.
const HARMFUL_TRAIN = BUILTIN_HARMFUL_PROMPTS.slice(0, 30);
const HARMLESS_TRAIN = BUILTIN_HARMLESS_PROMPTS.slice(0, 30);
const harmfulCommit = hub.addFiles("datasets/mlabonne/harmful_behaviors", {
  "data/train-00000-of-00001.parquet": parquetOf(HARMFUL_TRAIN),
  "data/test-00000-of-00001.parquet": parquetOf(BUILTIN_HARMFUL_PROMPTS.slice(30, 40)),
});
const harmlessCommit = hub.addFiles("datasets/mlabonne/harmless_alpaca", {
  "data/train-00000-of-00001.parquet": parquetOf(HARMLESS_TRAIN),
  "data/test-00000-of-00001.parquet": parquetOf(BUILTIN_HARMLESS_PROMPTS.slice(30, 40)),
});

/** A port nothing listens on: the Hub unreachable. */
async function closedPortUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** Runs `run` with these environment variables set, then puts back what was there. */
async function withEnv<T>(env: Record<string, string>, run: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((key) => [key, process.env[key]]));
  Object.assign(process.env, env);
  try {
    return await run();
  } finally {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  }
}

let cacheNumber = 0;
const freshCache = () => join(root, `cache-${(cacheNumber += 1)}`);

/** Requests made while `run` ran. */
async function requestsDuring<T>(run: () => Promise<T>): Promise<{ value: T; urls: string[] }> {
  const from = hub.requests.length;
  const value = await run();
  return { value, urls: hub.requests.slice(from).map((r) => r.url) };
}

function rejectsWith(code: string, pattern: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(isAbliterateError(error), String(error));
    assert.equal(error.code, code, error.message);
    assert.match(error.message, pattern);
    return true;
  };
}

test("org/name:split fetches that split's parquet into the cache in huggingface_hub's layout; the origin carries the commit", async () => {
  const cacheDir = freshCache();
  const { value: set, urls } = await requestsDuring(() => readPromptSource({ source: "org/prompts:test", cacheDir, endpoint: hub.url }));
  assert.deepEqual(set.prompts, TEST);
  assert.equal(set.origin, `hub:org/prompts:test@${promptsCommit}`);
  assert.ok(urls.some((url) => url.startsWith(`/api/datasets/org/prompts/revision/main`)), urls.join("\n"));
  assert.ok(urls.some((url) => url.startsWith(`/datasets/org/prompts/resolve/${promptsCommit}/data/test-00000-of-00001.parquet`)), urls.join("\n"));
  assert.ok(!urls.some((url) => url.includes("train-00000")), "only the asked split is fetched");

  const repoDir = join(cacheDir, "datasets--org--prompts");
  assert.equal(readFileSync(join(repoDir, "refs", "main"), "utf8"), promptsCommit);
  const pointer = join(repoDir, "snapshots", promptsCommit, "data", "test-00000-of-00001.parquet");
  assert.ok(lstatSync(pointer).isSymbolicLink());
  // Parquet is stored through LFS, so the blob is named by its sha256, linked relatively as huggingface_hub does.
  assert.equal(readlinkSync(pointer), join("..", "..", "..", "blobs", sha256(TEST_PARQUET)));
  assert.deepEqual(readdirSync(join(repoDir, "blobs")), [sha256(TEST_PARQUET)]);
  assert.deepEqual(readFileSync(pointer), TEST_PARQUET);

  // Again: metadata only, not a byte downloaded.
  const again = await requestsDuring(() => readPromptSource({ source: "org/prompts:test", cacheDir, endpoint: hub.url }));
  assert.deepEqual(again.value, set);
  assert.ok(again.urls.length > 0 && !again.urls.some((url) => url.includes("/resolve/") || url.startsWith("/cdn/")), again.urls.join("\n"));

  // Offline (the option, or HF_HUB_OFFLINE), and with the Hub unreachable: the cache serves, without a request.
  const offline = await requestsDuring(() => readPromptSource({ source: "org/prompts:test", cacheDir, offline: true, endpoint: hub.url }));
  assert.deepEqual(offline, { value: set, urls: [] });
  const byEnv = await withEnv({ HF_HUB_OFFLINE: "1" }, () => requestsDuring(() => readPromptSource({ source: "org/prompts:test", cacheDir, endpoint: hub.url })));
  assert.deepEqual(byEnv, { value: set, urls: [] });
  assert.deepEqual(await readPromptSource({ source: "org/prompts:test", cacheDir, endpoint: await closedPortUrl() }), set);
  await assert.rejects(readPromptSource({ source: "org/prompts:train", cacheDir, offline: true }), rejectsWith("HUB_OFFLINE", /dataset org\/prompts \(split train\) is not in the cache/));
});

test("the default split is train; a slice keeps those rows and says so in the origin", async () => {
  const cacheDir = freshCache();
  assert.deepEqual(await readPromptSource({ source: "org/prompts", cacheDir, endpoint: hub.url }), { prompts: TRAIN, origin: `hub:org/prompts:train@${promptsCommit}` });
  assert.deepEqual(await readPromptSource({ source: "org/prompts:train[2:5]", cacheDir, endpoint: hub.url }), { prompts: TRAIN.slice(2, 5), origin: `hub:org/prompts:train[2:5]@${promptsCommit}` });
  await assert.rejects(readPromptSource({ source: "org/prompts:train[50:]", cacheDir, endpoint: hub.url }), rejectsWith("INVALID_ARGUMENT", /slice train\[50:\] of dataset org\/prompts is empty: the split has 6 prompt/));
});

test("missing, private and gated datasets and a missing split each get a clear error naming the dataset", async () => {
  const cacheDir = freshCache();
  const read = (source: string) => readPromptSource({ source, cacheDir, endpoint: hub.url });
  await assert.rejects(read("org/missing"), rejectsWith("HUB_UNAUTHORIZED", /^dataset org\/missing: org\/missing was not found or is private or gated \(401, no token sent\)/));
  await assert.rejects(readPromptSource({ source: "org/missing", cacheDir, endpoint: hub.url, token: "hf_reader" }), rejectsWith("HUB_NOT_FOUND", /^dataset org\/missing: repository org\/missing not found on http:\/\/127\.0\.0\.1:\d+ \(404\)/));
  await assert.rejects(read("org/private-prompts"), rejectsWith("HUB_UNAUTHORIZED", /^dataset org\/private-prompts: .*401, no token sent.*HF_TOKEN/));
  // HF_TOKEN is honoured as for models.
  assert.deepEqual((await withEnv({ HF_TOKEN: "hf_owner" }, () => read("org/private-prompts"))).prompts, TRAIN);
  await assert.rejects(read("org/gated-prompts"), rejectsWith("HUB_UNAUTHORIZED", new RegExp(`^dataset org/gated-prompts: org/gated-prompts is gated: accept its conditions on ${hub.url}/datasets/org/gated-prompts`)));
  await assert.rejects(read("org/prompts:validation"), rejectsWith("HUB_NOT_FOUND", /dataset org\/prompts has no data file for split "validation" \(data files: data\/test-00000-of-00001\.parquet, data\/train-00000-of-00001\.parquet\)/));
  assert.equal(existsSync(join(cacheDir, "datasets--org--missing")), false, "nothing is cached for a failed lookup");
});

test("faults on dataset downloads: a 503 is retried; a CDN serving wrong bytes is refused and nothing is cached", async () => {
  const cacheDir = freshCache();
  const unavailable = hub.injectFault({ pathMatches: "/datasets/org/prompts/resolve/", status: 503 });
  try {
    assert.deepEqual((await readPromptSource({ source: "org/prompts:test", cacheDir, endpoint: hub.url })).prompts, TEST);
    assert.equal(unavailable.fired, 1);
  } finally {
    hub.clearFaults();
  }
  const corrupt = hub.injectFault({ pathMatches: `/cdn/lfs/${sha256(TRAIN_PARQUET)}`, times: 100, transformBody: flipByte(-20) });
  try {
    await assert.rejects(readPromptSource({ source: "org/prompts:train", cacheDir, endpoint: hub.url }), rejectsWith("HUB_INTEGRITY", /org\/prompts\/data\/train-00000-of-00001\.parquet does not match the Hub's record/));
    assert.ok(corrupt.fired >= 2, "fetched again once before giving up");
  } finally {
    hub.clearFaults();
  }
  assert.equal(existsSync(join(cacheDir, "datasets--org--prompts", "blobs", sha256(TRAIN_PARQUET))), false);
});

test("the pipeline's prompts stage: the default datasets from the Hub, else the built-in sets with a note", async () => {
  // The stage reads the Hub settings from the environment, as the CLI does; it never loads the model.
  const stage = (name: string, env: Record<string, string>) =>
    withEnv({ HF_HUB_CACHE: join(root, `${name}-cache`), ...env }, () =>
      resultOf(promptsStage(new PipelineContext({ modelDir: join(root, "unused-model"), modelSource: "unused", workDir: join(root, `${name}-work`) }))),
    );
  const online = await stage("online", {});
  assert.deepEqual(online.origins, {
    positive: `hub:mlabonne/harmful_behaviors:train[:400]@${harmfulCommit}`,
    negative: `hub:mlabonne/harmless_alpaca:train[:400]@${harmlessCommit}`,
  });
  const all = (split: typeof online.splits.positive) => [...split.train, ...split.validation, ...split.test].sort();
  assert.deepEqual(all(online.splits.positive), [...HARMFUL_TRAIN].sort());
  assert.deepEqual(all(online.splits.negative), [...HARMLESS_TRAIN].sort());
  assert.deepEqual(online.notes, []);

  const unreachable = await stage("unreachable", { HF_ENDPOINT: await closedPortUrl() });
  assert.deepEqual(unreachable.origins, { positive: "built-in harmful set", negative: "built-in harmless set" });
  assert.equal(all(unreachable.splits.positive).length, new Set(BUILTIN_HARMFUL_PROMPTS).size);
  assert.equal(unreachable.notes.length, 2);
  assert.match(unreachable.notes[0], /^the default harmful dataset mlabonne\/harmful_behaviors:train\[:400\] could not be read \(.*cannot reach the Hub.*\); the built-in harmful set was used$/);

  const offline = await stage("offline", { HF_HUB_OFFLINE: "1" });
  assert.deepEqual(offline.origins, { positive: "built-in harmful set", negative: "built-in harmless set" });
  assert.match(offline.notes[1], /^the default harmless dataset mlabonne\/harmless_alpaca:train\[:400\] could not be read \(HF_HUB_OFFLINE is set and dataset mlabonne\/harmless_alpaca \(split train\) is not in the cache/);
});

/** The seeded train split (seed 0) the stages take the candidates from. */
function trainSplit(positive: readonly string[], negative: readonly string[]): { positive: string[]; negative: string[] } {
  const splits = splitContrastSets({ positive: [...positive], negative: [...negative], labels: { positive: "harmful", negative: "harmless" }, options: { seed: 0 } });
  return { positive: splits.positive.train, negative: splits.negative.train };
}

test("abliterate direction with no --harmful/--harmless: prompts from the default datasets, else the built-in sets, said so", async () => {
  const planted = await writePlantedRefusalModel({ dir: join(root, "planted") });
  const cache = join(root, "cli-cache");
  const direction = (out: string, env: NodeJS.ProcessEnv, extra: string[] = []) =>
    runCli(["direction", planted.dir, "--out", join(root, out), ...extra], { env: { ...hubEnv(hub, root), HF_HUB_CACHE: cache, ...env } });

  const online = await direction("online.safetensors", {}, ["--json"]);
  assert.equal(online.status, 0, online.stderr);
  const result = JSON.parse(online.stdout);
  assert.deepEqual(result.origins, {
    positive: `hub:mlabonne/harmful_behaviors:train[:400]@${harmfulCommit}`,
    negative: `hub:mlabonne/harmless_alpaca:train[:400]@${harmlessCommit}`,
  });
  assert.deepEqual(result.notes, []);
  const fromHub = await readDirectionCandidates(join(root, "online.safetensors"));
  // The direction command uses the one command's stages: the candidates come from the seeded train split.
  const hubTrain = trainSplit(HARMFUL_TRAIN, HARMLESS_TRAIN);
  assert.equal(fromHub.metadata.positive_prompts, String(hubTrain.positive.length));
  assert.equal(fromHub.metadata.positive_prompts_sha256, promptsDigest(hubTrain.positive));
  assert.equal(fromHub.metadata.negative_prompts_sha256, promptsDigest(hubTrain.negative));
  assert.equal(fromHub.metadata.positive_origin, result.origins.positive);
  assert.equal(fromHub.metadata.negative_origin, result.origins.negative);
  assert.ok(existsSync(join(cache, "datasets--mlabonne--harmful_behaviors", "snapshots", harmfulCommit, "data", "train-00000-of-00001.parquet")));

  // Offline with those datasets in the cache: the same prompts, without the Hub.
  const requests = hub.requests.length;
  const cached = await direction("cached.safetensors", { HF_HUB_OFFLINE: "1" });
  assert.equal(cached.status, 0, cached.stderr);
  assert.equal(hub.requests.length, requests);
  assert.match(cached.stderr, new RegExp(`30 harmful prompts from hub:mlabonne/harmful_behaviors:train\\[:400\\]@${harmfulCommit}`));
  assert.equal((await readDirectionCandidates(join(root, "cached.safetensors"))).metadata.positive_prompts_sha256, promptsDigest(hubTrain.positive));

  const builtinTrain = trainSplit(BUILTIN_HARMFUL_PROMPTS, BUILTIN_HARMLESS_PROMPTS);
  const builtinDigest = { positive: promptsDigest(builtinTrain.positive), negative: promptsDigest(builtinTrain.negative) };
  // With a cache that does not hold them (one that does serves them even with the Hub unreachable).
  const unreachableEnv = { HF_ENDPOINT: await closedPortUrl(), HF_HUB_CACHE: join(root, "empty-cache-1") };
  const offlineEnv = { HF_HUB_OFFLINE: "1", HF_HUB_CACHE: join(root, "empty-cache-2") };
  for (const [name, env] of [["unreachable", unreachableEnv], ["offline", offlineEnv]] as const) {
    const run = await direction(`${name}.safetensors`, env);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /note: the default harmful dataset mlabonne\/harmful_behaviors:train\[:400\] could not be read \(.+\); the built-in harmful set was used/, run.stderr);
    assert.match(run.stderr, /note: the default harmless dataset mlabonne\/harmless_alpaca:train\[:400\] could not be read/);
    assert.match(run.stderr, /harmful prompts from built-in harmful set/);
    const candidates = await readDirectionCandidates(join(root, `${name}.safetensors`));
    assert.equal(candidates.metadata.positive_prompts_sha256, builtinDigest.positive, name);
    assert.equal(candidates.metadata.negative_prompts_sha256, builtinDigest.negative, name);
    assert.match(candidates.metadata.positive_origin, /built-in harmful set/, name);
  }
});

test("a bad dataset id on the command line exits non-zero with a message naming it", async () => {
  const planted = await writePlantedRefusalModel({ dir: join(root, "planted-bad") });
  const run = (source: string) => runCli(["direction", planted.dir, "--harmful", source, "--out", join(root, "bad.safetensors")], { env: hubEnv(hub, root) });
  const missing = await run("not/a-dataset");
  assert.notEqual(missing.status, 0);
  assert.match(missing.stderr, /dataset not\/a-dataset: not\/a-dataset was not found or is private or gated \(401, no token sent\)/);
  const malformed = await run("not a dataset id");
  assert.notEqual(malformed.status, 0);
  assert.match(malformed.stderr, /"not a dataset id" is neither a file nor a Hub dataset id/);
  const split = await run("org/prompts:dev");
  assert.notEqual(split.status, 0);
  assert.match(split.stderr, /dataset org\/prompts has no data file for split "dev"/);
  assert.equal(existsSync(join(root, "bad.safetensors")), false);
});
