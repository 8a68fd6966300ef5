/**
 * The emulator against the real client library (@huggingface/hub) and raw HTTP: the endpoints, headers,
 * redirects, auth rules and error codes the Hub has, so the tests built on it mean something.
 * Expected hashes are git's and sha256sum's outputs for the same bytes (computed once with those tools).
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { commit, createRepo, fileDownloadInfo, listFiles, modelInfo, pathsInfo, uploadFiles } from "@huggingface/hub";
import { startHubEmulator } from "../hub-emulator/hub-emulator.js";
import { statusOf } from "../hub-emulator/test-fixtures.js";
import { parseYamlSubset, YamlSubsetError } from "../hub-emulator/simple-yaml.js";

const hub = await startHubEmulator({ treePageSize: 2, multipartThreshold: 50_000, multipartChunkSize: 20_000 });
after(() => hub.close());
hub.addToken("hf_owner", { user: "owner" });
hub.addToken("hf_stranger", { user: "stranger" });
const hubUrl = hub.url;

// `printf '{"a":1}' | git hash-object --stdin` and `head -c 5000 /dev/zero | tr '\0' '\7' | sha256sum`.
const CONFIG = '{"a":1}';
const CONFIG_GIT_OID = "daa5053ecf5f9a37b2de733d0751cc1ab53ac010";
const WEIGHTS = Buffer.alloc(5000, 7);
const WEIGHTS_SHA256 = "f302a3f85503eeb1a105c81a5fbea0aa461417fb3893919572949cadbfee86a7";

const firstCommit = hub.addFiles("owner/public", { "config.json": CONFIG, "model.safetensors": WEIGHTS, "sub/dir/notes.txt": "n", "README.md": "---\nlicense: mit\ntags:\n- x\n---\n# hi\n" });
hub.createRepo("owner/secret", { private: true });
hub.addFiles("owner/secret", { "model.safetensors": WEIGHTS });
hub.createRepo("owner/gated", { gated: "manual" });
hub.addFiles("owner/gated", { "model.safetensors": WEIGHTS });

test("model info: sha of the revision, siblings, card data; HEAD is the default branch; expand narrows the answer", async () => {
  const info = await modelInfo({ name: "owner/public", hubUrl, additionalFields: ["sha", "cardData"] });
  assert.equal(info.sha, firstCommit);
  assert.deepEqual(info.cardData, { license: "mit", tags: ["x"] });
  const full = (await (await fetch(`${hubUrl}/api/models/owner/public/revision/main?blobs=true`)).json()) as any;
  assert.equal(full.sha, firstCommit);
  const weights = full.siblings.find((s: { rfilename: string }) => s.rfilename === "model.safetensors");
  // The pointer is "version https://git-lfs.github.com/spec/v1\noid sha256:<64 hex>\nsize 5000\n": 43 + 76 + 10 bytes.
  assert.deepEqual(weights.lfs, { sha256: WEIGHTS_SHA256, size: 5000, pointerSize: 129 });
  assert.equal(full.siblings.find((s: { rfilename: string }) => s.rfilename === "config.json").blobId, CONFIG_GIT_OID);
  const narrow = (await (await fetch(`${hubUrl}/api/models/owner/public?expand=sha`)).json()) as object;
  assert.deepEqual(Object.keys(narrow).sort(), ["_id", "id", "sha"]);
});

test("tree: recursive listing across Link-header pages, LFS and git oids, directories, 404 for a missing path", async () => {
  const entries = [];
  for await (const entry of listFiles({ repo: "owner/public", recursive: true, expand: true, hubUrl })) entries.push(entry);
  assert.deepEqual(entries.map((e) => `${e.type}:${e.path}`).sort(), [
    "directory:sub", "directory:sub/dir", "file:.gitattributes", "file:README.md", "file:config.json", "file:model.safetensors", "file:sub/dir/notes.txt",
  ]);
  const weights = entries.find((e) => e.path === "model.safetensors")!;
  assert.equal(weights.lfs?.oid, WEIGHTS_SHA256);
  assert.equal(weights.size, 5000);
  assert.equal(weights.lastCommit?.id, firstCommit);
  assert.equal(entries.find((e) => e.path === "config.json")!.oid, CONFIG_GIT_OID);
  const pages = hub.requests.filter((r) => r.url.startsWith("/api/models/owner/public/tree/"));
  assert.ok(pages.length >= 4, `paginated (${pages.length} pages)`);
  const firstPage = await fetch(`${hubUrl}/api/models/owner/public/tree/main`);
  assert.match(firstPage.headers.get("Link")!, /^<http:\/\/127\.0\.0\.1:\d+\/api\/models\/owner\/public\/tree\/main\?cursor=[\w-]+>; rel="next"$/);
  const top = [];
  for await (const entry of listFiles({ repo: "owner/public", hubUrl })) top.push(entry);
  assert.deepEqual(top.map((e) => e.path).sort(), [".gitattributes", "README.md", "config.json", "model.safetensors", "sub"]);
  const missing = await fetch(`${hubUrl}/api/models/owner/public/tree/main/nope`);
  assert.equal(missing.status, 404);
  assert.equal(missing.headers.get("X-Error-Code"), "EntryNotFound");
});

test("paths-info: JSON (huggingface.js) and form-encoded (huggingface_hub) bodies", async () => {
  const info = await pathsInfo({ repo: "owner/public", paths: ["model.safetensors", "sub", "absent"], expand: true, hubUrl });
  assert.deepEqual(info.map((e) => `${e.type}:${e.path}`), ["file:model.safetensors", "directory:sub"]);
  assert.equal(info[0].lfs?.oid, WEIGHTS_SHA256);
  const form = await fetch(`${hubUrl}/api/models/owner/public/paths-info/main`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: "paths=config.json&paths=README.md&expand=False",
  });
  assert.deepEqual(((await form.json()) as { path: string }[]).map((e: { path: string }) => e.path), ["config.json", "README.md"]);
});

test("resolve: 307 relative for regular files, 302 to the CDN for LFS, with the Hub's headers", async () => {
  const regular = await fetch(`${hubUrl}/owner/public/resolve/main/config.json`, { redirect: "manual" });
  assert.equal(regular.status, 307);
  assert.match(regular.headers.get("Location")!, /^\/api\/resolve-cache\/models\/owner\/public\/[0-9a-f]{40}\/config\.json$/);
  assert.equal(regular.headers.get("ETag"), `"${CONFIG_GIT_OID}"`);
  assert.equal(regular.headers.get("X-Repo-Commit"), firstCommit);

  const lfs = await fetch(`${hubUrl}/owner/public/resolve/main/model.safetensors`, { method: "HEAD", redirect: "manual" });
  assert.equal(lfs.status, 302);
  assert.ok(lfs.headers.get("Location")!.startsWith(`${hubUrl}/cdn/`), "absolute CDN URL");
  assert.equal(lfs.headers.get("X-Linked-Etag"), `"${WEIGHTS_SHA256}"`);
  assert.equal(lfs.headers.get("X-Linked-Size"), "5000");
  assert.equal(lfs.headers.get("X-Repo-Commit"), firstCommit);

  const followed = await fetch(`${hubUrl}/owner/public/resolve/main/model.safetensors`);
  assert.equal(createHash("sha256").update(Buffer.from(await followed.arrayBuffer())).digest("hex"), WEIGHTS_SHA256);
  const raw = await (await fetch(`${hubUrl}/owner/public/raw/main/model.safetensors`)).text();
  assert.equal(raw, `version https://git-lfs.github.com/spec/v1\noid sha256:${WEIGHTS_SHA256}\nsize 5000\n`);
  const download = await fileDownloadInfo({ repo: "owner/public", path: "config.json", hubUrl });
  assert.equal(download?.size, CONFIG.length);
});

test("ranges: 206 with Content-Range, open-ended and suffix ranges, 416 past the end", async () => {
  const url = `${hubUrl}/owner/public/resolve/main/config.json`;
  const part = await fetch(url, { headers: { Range: "bytes=2-4" } });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get("Content-Range"), `bytes 2-4/${CONFIG.length}`);
  assert.equal(await part.text(), CONFIG.slice(2, 5));
  assert.equal(await (await fetch(url, { headers: { Range: "bytes=3-" } })).text(), CONFIG.slice(3));
  assert.equal(await (await fetch(url, { headers: { Range: "bytes=-2" } })).text(), CONFIG.slice(-2));
  const beyond = await fetch(url, { headers: { Range: "bytes=99-" } });
  assert.equal(beyond.status, 416);
  assert.equal(beyond.headers.get("Content-Range"), `bytes */${CONFIG.length}`);
});

test("404s carry X-Error-Code: EntryNotFound, RevisionNotFound, RepoNotFound", async () => {
  const entry = await fetch(`${hubUrl}/owner/public/resolve/main/nope.json`);
  assert.equal(entry.status, 404);
  assert.equal(entry.headers.get("X-Error-Code"), "EntryNotFound");
  assert.equal(await fileDownloadInfo({ repo: "owner/public", path: "nope.json", hubUrl }), null, "the library maps EntryNotFound to null");
  const revision = await fetch(`${hubUrl}/api/models/owner/public/revision/v9`);
  assert.equal(revision.status, 404);
  assert.equal(revision.headers.get("X-Error-Code"), "RevisionNotFound");
  const repo = await fetch(`${hubUrl}/api/models/owner/none`, { headers: { Authorization: "Bearer hf_owner" } });
  assert.equal(repo.status, 404);
  assert.equal(repo.headers.get("X-Error-Code"), "RepoNotFound");
  const anonymous = await fetch(`${hubUrl}/api/models/owner/none`);
  assert.equal(anonymous.status, 401, "the Hub answers 401 to anonymous lookups of repos it will not reveal");
  assert.equal(anonymous.headers.get("X-Error-Code"), "RepoNotFound");
});

test("private repos: 401 without a token, 401 for an unknown token, 404 for someone else's, 200 for the owner", async () => {
  assert.equal(await statusOf(modelInfo({ name: "owner/secret", hubUrl })), 401);
  assert.equal(await statusOf(modelInfo({ name: "owner/secret", hubUrl, accessToken: "hf_unknown" })), 401);
  assert.equal(await statusOf(modelInfo({ name: "owner/secret", hubUrl, accessToken: "hf_stranger" })), 404);
  assert.equal(await statusOf(modelInfo({ name: "owner/secret", hubUrl, accessToken: "hf_owner" })), 200);
  const cdnLink = (await fetch(`${hubUrl}/owner/secret/resolve/main/model.safetensors`, { headers: { Authorization: "Bearer hf_owner" }, redirect: "manual" })).headers.get("Location")!;
  const tampered = cdnLink.replace(/sig=[0-9a-f]{4}/, "sig=0000");
  assert.equal((await fetch(tampered)).status, 403, "CDN links are signed");
  assert.equal((await fetch(cdnLink)).status, 200, "a signed link works without credentials, like a presigned URL");
  assert.throws(() => hub.addToken("not_hf", { user: "x" }), /hf_/);
});

test("gated repos: metadata public, files 401 anonymous / 403 without access / 200 once granted", async () => {
  assert.equal(await statusOf(modelInfo({ name: "owner/gated", hubUrl })), 200);
  const file = `${hubUrl}/owner/gated/resolve/main/model.safetensors`;
  const anonymous = await fetch(file);
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.headers.get("X-Error-Code"), "GatedRepo");
  assert.equal((await fetch(file, { headers: { Authorization: "Bearer hf_stranger" } })).status, 403);
  hub.grantAccess("owner/gated", "stranger");
  assert.equal((await fetch(file, { headers: { Authorization: "Bearer hf_stranger" } })).status, 200);
});

test("create repo: needs a token of the namespace, 409 when it exists, private flag honoured", async () => {
  assert.equal(await statusOf(createRepo({ repo: "owner/new", accessToken: "hf_owner", hubUrl, visibility: "private" })), 200);
  assert.equal(hub.repo("owner/new").private, true);
  assert.deepEqual([...hub.files("owner/new").keys()], [".gitattributes"], "a new repo holds the default .gitattributes");
  assert.equal(await statusOf(createRepo({ repo: "owner/new", accessToken: "hf_owner", hubUrl })), 409);
  assert.equal(await statusOf(createRepo({ repo: "owner/other", accessToken: "hf_stranger", hubUrl })), 403);
});

test("upload through the library: regular and LFS, multipart for big objects, sha256 checked, branch advanced", async () => {
  hub.createRepo("owner/upload");
  const before = hub.head("owner/upload");
  const big = Buffer.alloc(70_000);
  for (let i = 0; i < big.length; i += 1) big[i] = (i * 31) % 251;
  await uploadFiles({
    repo: "owner/upload",
    accessToken: "hf_owner",
    hubUrl,
    useXet: false,
    files: [
      { path: "notes.md", content: new Blob(["hello"]) },
      { path: "w.safetensors", content: new Blob([WEIGHTS]) },
      { path: "big.bin", content: new Blob([big]) },
    ],
  });
  const files = hub.files("owner/upload");
  assert.equal(files.get("notes.md")!.lfs, false);
  assert.equal(files.get("w.safetensors")!.lfs, true);
  assert.equal(files.get("w.safetensors")!.sha256, WEIGHTS_SHA256);
  assert.deepEqual(files.get("big.bin")!.content, big);
  assert.deepEqual(hub.commit("owner/upload").parents, [before]);
  const log = hub.requests.map((r) => `${r.method} ${r.url.split("?")[0]}`);
  assert.ok(log.includes("POST /api/models/owner/upload/preupload/main"));
  assert.ok(log.includes("POST /owner/upload.git/info/lfs/objects/batch"));
  assert.equal(log.filter((line) => /^PUT \/lfs-upload\/[0-9a-f]+\/part\/\d$/.test(line)).length, 4, "70 kB in 20 kB parts");

  // A second upload of the same object: the batch API answers without actions and nothing is PUT.
  const puts = hub.requests.filter((r) => r.method === "PUT").length;
  await uploadFiles({ repo: "owner/upload", accessToken: "hf_owner", hubUrl, useXet: false, files: [{ path: "copy.safetensors", content: new Blob([WEIGHTS]) }] });
  assert.equal(hub.requests.filter((r) => r.method === "PUT").length, puts);
  assert.equal(hub.files("owner/upload").get("copy.safetensors")!.sha256, WEIGHTS_SHA256);
});

test("the LFS store refuses bytes that do not hash to the announced oid", async () => {
  hub.createRepo("owner/strict");
  const announced = createHash("sha256").update("good bytes").digest("hex");
  const batch = await fetch(`${hubUrl}/owner/strict.git/info/lfs/objects/batch`, {
    method: "POST",
    headers: { Authorization: "Bearer hf_owner", "Content-Type": "application/vnd.git-lfs+json" },
    body: JSON.stringify({ operation: "upload", transfers: ["basic"], objects: [{ oid: announced, size: 10 }] }),
  });
  const href = ((await batch.json()) as any).objects[0].actions.upload.href as string;
  const bad = await fetch(href, { method: "PUT", body: "evil bytes" });
  assert.equal(bad.status, 400);
  assert.equal(hub.repo("owner/strict").lfsObjects.has(announced), false);
  const good = await fetch(href, { method: "PUT", body: "good bytes" });
  assert.equal(good.status, 200);
  assert.equal(hub.repo("owner/strict").lfsObjects.has(announced), true);
});

test("NDJSON commit: refuses an LFS pointer to an object never uploaded; parentCommit guards; create_pr opens refs/pr/N", async () => {
  hub.createRepo("owner/commits");
  const head = hub.head("owner/commits");
  const post = (body: object[], query = "") =>
    fetch(`${hubUrl}/api/models/owner/commits/commit/main${query}`, {
      method: "POST",
      headers: { Authorization: "Bearer hf_owner", "Content-Type": "application/x-ndjson" },
      body: body.map((line) => JSON.stringify(line)).join("\n"),
    });
  const header = { key: "header", value: { summary: "add" } };
  const ghost = await post([header, { key: "lfsFile", value: { path: "w.safetensors", algo: "sha256", oid: "0".repeat(64), size: 3 } }]);
  assert.equal(ghost.status, 422);
  assert.equal(hub.head("owner/commits"), head, "a refused commit leaves the branch alone");
  const stale = await post([{ key: "header", value: { summary: "x", parentCommit: "f".repeat(40) } }]);
  assert.equal(stale.status, 400);

  const pr = await commit({
    repo: "owner/commits",
    accessToken: "hf_owner",
    hubUrl,
    title: "proposal",
    isPullRequest: true,
    useXet: false,
    operations: [{ operation: "addOrUpdate", path: "a.txt", content: new Blob(["a"]) }],
  });
  assert.match(pr!.pullRequestUrl!, /\/owner\/commits\/discussions\/1$/);
  assert.equal(hub.head("owner/commits"), head, "main is not advanced by a PR");
  assert.equal(hub.head("owner/commits", "refs/pr/1"), pr!.commit.oid);
  assert.equal(hub.files("owner/commits", "refs/pr/1").get("a.txt")!.content.toString(), "a");

  const deleted = await post([header, { key: "deletedFile", value: { path: ".gitattributes" } }]);
  assert.equal(deleted.status, 200);
  assert.equal(hub.files("owner/commits").has(".gitattributes"), false);
  const writeStranger = await fetch(`${hubUrl}/api/models/owner/public/commit/main`, { method: "POST", headers: { Authorization: "Bearer hf_stranger" }, body: JSON.stringify(header) });
  assert.equal(writeStranger.status, 403);
});

test("fault injection: a status on the Nth match, Retry-After, a reset before answering, a cut mid-body", async () => {
  const url = `${hubUrl}/api/models/owner/public`;
  const fault = hub.injectFault({ pathMatches: "/api/models/owner/public", nth: 2, status: 503, retryAfter: 7 });
  assert.equal((await fetch(url)).status, 200);
  const second = await fetch(url);
  assert.equal(second.status, 503);
  assert.equal(second.headers.get("Retry-After"), "7");
  assert.equal((await fetch(url)).status, 200);
  assert.equal(fault.fired, 1);

  hub.injectFault({ pathMatches: "/api/models/owner/public", reset: true });
  await assert.rejects(fetch(url), TypeError);

  hub.injectFault({ pathMatches: /\/cdn\//, resetAfterBytes: 1000 });
  const cut = await fetch(`${hubUrl}/owner/public/resolve/main/model.safetensors`);
  assert.equal(cut.status, 200);
  await assert.rejects(cut.arrayBuffer());
  hub.clearFaults();
});

test("simple-yaml is strict: it refuses what it does not understand", () => {
  assert.deepEqual(parseYamlSubset("a: 1\nb:\n  c: [x, 'y z']\nd:\n- e\n"), { a: 1, b: { c: ["x", "y z"] }, d: ["e"] });
  for (const bad of ["a: 1\na: 2", "a: &anchor 1", "a:\n\t- x", "- a\n- b", "a: b: c", "list:\n- k: v", "a: 'unterminated", "a: |\n  text"]) {
    assert.throws(() => parseYamlSubset(bad), YamlSubsetError, bad);
  }
});
