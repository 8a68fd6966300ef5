/**
 * Dataset repos in the emulator, through the real client library (@huggingface/hub) and raw HTTP: the URLs the Hub
 * gives datasets (`/api/datasets/…`, `/datasets/…/resolve/…`, `/api/resolve-cache/datasets/…`,
 * `/datasets/….git/info/lfs/…`), the same redirects, headers, auth rules and faults as models, and a namespace of
 * their own. Expected hashes are git's and sha256sum's outputs for the same bytes (computed once with those tools).
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createRepo, datasetInfo, downloadFile, fileDownloadInfo, listFiles, modelInfo, uploadFiles } from "@huggingface/hub";
import { startHubEmulator } from "../hub-emulator/hub-emulator.js";
import { statusOf } from "../hub-emulator/test-fixtures.js";
import { flipByte } from "../hub-emulator/faults.js";

const hub = await startHubEmulator({ treePageSize: 2 });
after(() => hub.close());
hub.addToken("hf_owner", { user: "owner" });
hub.addToken("hf_stranger", { user: "stranger" });
const hubUrl = hub.url;

// `head -c 3000 /dev/zero | tr '\0' '\5' | sha256sum` and `| git hash-object --stdin`.
const SHARD = Buffer.alloc(3000, 5);
const SHARD_SHA256 = "27215f3afdd7525aebf98de69a86634257f380f75dd31f4aa743ed8fff5c03e4";
// `printf 'text\nhello\n' | git hash-object --stdin`
const CSV = "text\nhello\n";
const CSV_GIT_OID = "40faa2f0cf48640188a5c648df1e5217830355bf";
const README = "---\nlicense: mit\ntask_categories:\n- text-generation\n---\n# prompts\n";
const README_GIT_OID = "545490de7ab0eac70a33ceaa7e1ab310b8a507be";

const dataset = { type: "dataset" as const, name: "owner/prompts" };
const firstCommit = hub.addFiles("datasets/owner/prompts", {
  "README.md": README,
  "data/train-00000-of-00001.parquet": SHARD,
  "data/test.csv": CSV,
});
// A model with the same id: the two types do not share a namespace.
const modelCommit = hub.addFiles("owner/prompts", { "config.json": "{}" });
hub.createRepo("datasets/owner/secret", { private: true });
hub.addFiles("datasets/owner/secret", { "data/train.csv": CSV });
hub.createRepo("datasets/owner/gated", { gated: "auto" });
hub.addFiles("datasets/owner/gated", { "data/train.csv": CSV });

test("dataset info: the library's datasetInfo gets the revision's sha and card data; models and datasets are apart", async () => {
  const info = await datasetInfo({ name: "owner/prompts", hubUrl, additionalFields: ["sha", "cardData", "author"] });
  assert.equal(info.sha, firstCommit);
  assert.equal(info.name, "owner/prompts");
  assert.equal(info.private, false);
  assert.equal(info.author, "owner");
  assert.deepEqual(info.cardData, { license: "mit", task_categories: ["text-generation"] });
  const full = (await (await fetch(`${hubUrl}/api/datasets/owner/prompts/revision/main?blobs=true`)).json()) as any;
  assert.equal(full.sha, firstCommit);
  assert.equal("modelId" in full, false, "a dataset has no modelId");
  const shard = full.siblings.find((s: { rfilename: string }) => s.rfilename === "data/train-00000-of-00001.parquet");
  // The pointer is "version https://git-lfs.github.com/spec/v1\noid sha256:<64 hex>\nsize 3000\n": 43 + 76 + 10 bytes.
  assert.deepEqual(shard.lfs, { sha256: SHARD_SHA256, size: 3000, pointerSize: 129 });
  const narrow = (await (await fetch(`${hubUrl}/api/datasets/owner/prompts?expand=sha`)).json()) as object;
  assert.deepEqual(Object.keys(narrow).sort(), ["_id", "id", "sha"]);

  assert.equal((await modelInfo({ name: "owner/prompts", hubUrl, additionalFields: ["sha"] })).sha, modelCommit);
  assert.equal(await statusOf(datasetInfo({ name: "owner/secret", hubUrl })), 401);
  assert.equal(await statusOf(modelInfo({ name: "owner/secret", hubUrl, accessToken: "hf_owner" })), 404, "the dataset owner/secret is no model");
});

test("dataset tree: recursive listing over Link pages, LFS for parquet (the dataset .gitattributes), git oids for the rest", async () => {
  const entries = [];
  for await (const entry of listFiles({ repo: dataset, revision: firstCommit, recursive: true, hubUrl })) entries.push(entry);
  assert.deepEqual(entries.map((e) => `${e.type}:${e.path}`).sort(), [
    "directory:data", "file:.gitattributes", "file:README.md", "file:data/test.csv", "file:data/train-00000-of-00001.parquet",
  ]);
  const shard = entries.find((e) => e.path === "data/train-00000-of-00001.parquet")!;
  assert.equal(shard.lfs?.oid, SHARD_SHA256);
  assert.equal(entries.find((e) => e.path === "data/test.csv")!.oid, CSV_GIT_OID);
  assert.equal(entries.find((e) => e.path === "README.md")!.oid, README_GIT_OID);
  const pages = hub.requests.filter((r) => r.url.startsWith(`/api/datasets/owner/prompts/tree/${firstCommit}`));
  assert.equal(pages.length, 3, "5 entries in pages of 2");
  const attributes = hub.files("datasets/owner/prompts").get(".gitattributes")!.content.toString();
  assert.match(attributes, /^\*\.parquet filter=lfs/m);
  assert.match(attributes, /^\*\.png filter=lfs/m, "a dataset repo also stores images through LFS");
  const missing = await fetch(`${hubUrl}/api/datasets/owner/prompts/tree/main/nope`);
  assert.equal(missing.status, 404);
  assert.equal(missing.headers.get("X-Error-Code"), "EntryNotFound");
});

test("dataset resolve: 307 to /api/resolve-cache/datasets for regular files, 302 to the signed CDN for LFS, X-Repo-Commit", async () => {
  const regular = await fetch(`${hubUrl}/datasets/owner/prompts/resolve/main/data/test.csv`, { redirect: "manual" });
  assert.equal(regular.status, 307);
  assert.match(regular.headers.get("Location")!, /^\/api\/resolve-cache\/datasets\/owner\/prompts\/[0-9a-f]{40}\/data\/test\.csv$/);
  assert.equal(regular.headers.get("ETag"), `"${CSV_GIT_OID}"`);
  assert.equal(regular.headers.get("X-Repo-Commit"), firstCommit);
  assert.equal(await (await fetch(`${hubUrl}${regular.headers.get("Location")}`)).text(), CSV);

  const lfs = await fetch(`${hubUrl}/datasets/owner/prompts/resolve/main/data/train-00000-of-00001.parquet`, { method: "HEAD", redirect: "manual" });
  assert.equal(lfs.status, 302);
  assert.ok(lfs.headers.get("Location")!.startsWith(`${hubUrl}/cdn/`));
  assert.equal(lfs.headers.get("X-Linked-Etag"), `"${SHARD_SHA256}"`);
  assert.equal(lfs.headers.get("X-Linked-Size"), "3000");
  assert.equal(lfs.headers.get("X-Repo-Commit"), firstCommit);

  // The library's view: fileDownloadInfo asks bytes=0-0 and follows the redirect.
  const info = await fileDownloadInfo({ repo: dataset, path: "data/train-00000-of-00001.parquet", revision: firstCommit, hubUrl });
  assert.equal(info?.size, 3000);
  assert.equal(info?.etag, `"${SHARD_SHA256}"`);
  const blob = await downloadFile({ repo: dataset, path: "data/train-00000-of-00001.parquet", hubUrl });
  assert.equal(createHash("sha256").update(Buffer.from(await blob!.arrayBuffer())).digest("hex"), SHARD_SHA256);
  const raw = await (await fetch(`${hubUrl}/datasets/owner/prompts/raw/main/data/train-00000-of-00001.parquet`)).text();
  assert.equal(raw, `version https://git-lfs.github.com/spec/v1\noid sha256:${SHARD_SHA256}\nsize 3000\n`);
  // The same path under the model of the same id does not exist.
  const modelSide = await fetch(`${hubUrl}/owner/prompts/resolve/main/data/test.csv`);
  assert.equal(modelSide.status, 404);
  assert.equal(modelSide.headers.get("X-Error-Code"), "EntryNotFound");
});

test("dataset errors: RepoNotFound 401 anonymous / 404 with a token, private and gated rules, RevisionNotFound, EntryNotFound", async () => {
  const anonymous = await fetch(`${hubUrl}/api/datasets/owner/none/revision/main`);
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.headers.get("X-Error-Code"), "RepoNotFound");
  const known = await fetch(`${hubUrl}/api/datasets/owner/none/revision/main`, { headers: { Authorization: "Bearer hf_owner" } });
  assert.equal(known.status, 404);
  assert.equal(known.headers.get("X-Error-Code"), "RepoNotFound");

  assert.equal(await statusOf(datasetInfo({ name: "owner/secret", hubUrl, accessToken: "hf_unknown" })), 401);
  assert.equal(await statusOf(datasetInfo({ name: "owner/secret", hubUrl, accessToken: "hf_stranger" })), 404);
  assert.equal(await statusOf(datasetInfo({ name: "owner/secret", hubUrl, accessToken: "hf_owner" })), 200);
  const secretFile = `${hubUrl}/datasets/owner/secret/resolve/main/data/train.csv`;
  assert.equal((await fetch(secretFile)).status, 401);
  assert.equal(await (await fetch(secretFile, { headers: { Authorization: "Bearer hf_owner" } })).text(), CSV);

  assert.equal(await statusOf(datasetInfo({ name: "owner/gated", hubUrl })), 200, "gated metadata is public");
  const gatedFile = `${hubUrl}/datasets/owner/gated/resolve/main/data/train.csv`;
  const gated = await fetch(gatedFile);
  assert.equal(gated.status, 401);
  assert.equal(gated.headers.get("X-Error-Code"), "GatedRepo");
  assert.match(((await gated.json()) as { error: string }).error, /Access to dataset owner\/gated is restricted/);
  assert.equal((await fetch(gatedFile, { headers: { Authorization: "Bearer hf_stranger" } })).status, 403);

  const revision = await fetch(`${hubUrl}/api/datasets/owner/prompts/revision/v9`);
  assert.equal(revision.status, 404);
  assert.equal(revision.headers.get("X-Error-Code"), "RevisionNotFound");
  assert.equal(await fileDownloadInfo({ repo: dataset, path: "data/nope.parquet", hubUrl }), null, "EntryNotFound maps to null");
});

test("faults fire on dataset paths: a 503 on resolve, and a CDN serving wrong bytes", async () => {
  const url = `${hubUrl}/datasets/owner/prompts/resolve/main/data/train-00000-of-00001.parquet`;
  const unavailable = hub.injectFault({ pathMatches: "/datasets/owner/prompts/resolve/", status: 503, retryAfter: 1 });
  const refused = await fetch(url);
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get("Retry-After"), "1");
  assert.equal((await fetch(url)).status, 200, "only the first matching request breaks");
  assert.deepEqual([unavailable.seen, unavailable.fired], [2, 1]);
  hub.clearFaults();

  const corrupt = hub.injectFault({ pathMatches: `/cdn/lfs/${SHARD_SHA256}`, transformBody: flipByte(10) });
  const bytes = Buffer.from(await (await fetch(url)).arrayBuffer());
  assert.equal(bytes.length, 3000);
  assert.notEqual(createHash("sha256").update(bytes).digest("hex"), SHARD_SHA256);
  assert.equal(corrupt.fired, 1);
  hub.clearFaults();
});

test("dataset writes through the library: create (type dataset), LFS batch under /datasets, commit, 409 on re-create", async () => {
  assert.equal(await statusOf(createRepo({ repo: { type: "dataset", name: "owner/uploaded" }, accessToken: "hf_owner", hubUrl })), 200);
  assert.equal(hub.repo("datasets/owner/uploaded").type, "dataset");
  assert.equal(hub.repos.has("owner/uploaded"), false, "no model was created");
  assert.equal(await statusOf(createRepo({ repo: { type: "dataset", name: "owner/uploaded" }, accessToken: "hf_owner", hubUrl })), 409);
  const result = await uploadFiles({
    repo: { type: "dataset", name: "owner/uploaded" },
    accessToken: "hf_owner",
    hubUrl,
    useXet: false,
    files: [
      { path: "data/train-00000-of-00001.parquet", content: new Blob([SHARD]) },
      { path: "data/test.csv", content: new Blob([CSV]) },
    ],
  });
  assert.ok(result, "uploadFiles answers the commit");
  assert.match(result.commit.url, /\/datasets\/owner\/uploaded\/commit\/[0-9a-f]{40}$/);
  const files = hub.files("datasets/owner/uploaded");
  assert.equal(files.get("data/train-00000-of-00001.parquet")!.lfs, true);
  assert.equal(files.get("data/train-00000-of-00001.parquet")!.sha256, SHARD_SHA256);
  assert.equal(files.get("data/test.csv")!.gitOid, CSV_GIT_OID);
  const log = hub.requests.map((r) => `${r.method} ${r.url.split("?")[0]}`);
  assert.ok(log.includes("POST /api/datasets/owner/uploaded/preupload/main"));
  assert.ok(log.includes("POST /datasets/owner/uploaded.git/info/lfs/objects/batch"));
  assert.ok(log.includes("POST /api/datasets/owner/uploaded/commit/main"));
  assert.equal(await statusOf(createRepo({ repo: { type: "dataset", name: "owner/theirs" }, accessToken: "hf_stranger", hubUrl })), 403);
});
