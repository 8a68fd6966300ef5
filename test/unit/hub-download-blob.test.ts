/**
 * downloadBlob: resumes from a partial file, restarts when the server ignores ranges or the partial bytes are
 * wrong, and never leaves a blob (or a partial file) whose size and hash do not check out.
 */
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { downloadBlob, type ExpectedBlob } from "../../lib/hub/download-blob.js";
import { isAbliterateError } from "../../lib/errors.js";
import { startHubEmulator } from "../hub-emulator/hub-emulator.js";
import { scratch } from "../hub-emulator/test-fixtures.js";

const hub = await startHubEmulator();
after(() => hub.close());
const content = Buffer.alloc(200_000);
for (let i = 0; i < content.length; i += 1) content[i] = (i * 13 + 5) & 0xff;
const sha256 = createHash("sha256").update(content).digest("hex");
hub.addFiles("org/blob", [{ path: "w.safetensors", content }, { path: "config.json", content: '{"a":1}' }]);
const lfsUrl = `${hub.url}/org/blob/resolve/main/w.safetensors`;
const expected: ExpectedBlob = { size: content.length, hash: sha256, algorithm: "sha256" };

function rangesSince(index: number): (string | undefined)[] {
  return hub.requests.slice(index).filter((r) => r.url.startsWith("/cdn/")).map((r) => r.range);
}

test("a partial file from an earlier run is resumed with a Range request", async () => {
  const { root, cleanup } = scratch();
  try {
    const blobPath = join(root, sha256);
    writeFileSync(`${blobPath}.incomplete`, content.subarray(0, 70_000));
    const since = hub.requests.length;
    await downloadBlob({ url: lfsUrl, headers: {}, fetch, blobPath, expected, label: "w.safetensors" });
    assert.deepEqual(rangesSince(since), ["bytes=70000-"]);
    assert.deepEqual(readFileSync(blobPath), content);
    assert.equal(existsSync(`${blobPath}.incomplete`), false);
  } finally {
    cleanup();
  }
});

test("a connection cut mid-body is resumed from the bytes already on disk", async () => {
  const { root, cleanup } = scratch();
  try {
    const blobPath = join(root, sha256);
    hub.injectFault({ pathMatches: "/cdn/", resetAfterBytes: 50_000 });
    const since = hub.requests.length;
    const resumes: number[] = [];
    await downloadBlob({ url: lfsUrl, headers: {}, fetch, blobPath, expected, label: "w", onResume: ({ from }) => resumes.push(from) });
    const ranges = rangesSince(since);
    assert.equal(ranges[0], undefined, "first transfer from the start");
    assert.equal(ranges.length, 2);
    assert.match(ranges[1]!, /^bytes=\d+-$/);
    const from = Number(/=(\d+)-/.exec(ranges[1]!)![1]);
    assert.ok(from > 0 && from <= 50_000, `resumed from ${from}`);
    assert.deepEqual(resumes, [from]);
    assert.deepEqual(readFileSync(blobPath), content);
  } finally {
    hub.clearFaults();
    cleanup();
  }
});

test("wrong bytes in the partial file: the hash check fails, the download restarts from zero and succeeds", async () => {
  const { root, cleanup } = scratch();
  try {
    const blobPath = join(root, sha256);
    writeFileSync(`${blobPath}.incomplete`, Buffer.alloc(1000, 0xee));
    const since = hub.requests.length;
    await downloadBlob({ url: lfsUrl, headers: {}, fetch, blobPath, expected, label: "w" });
    assert.deepEqual(rangesSince(since), ["bytes=1000-", undefined]);
    assert.deepEqual(readFileSync(blobPath), content);
  } finally {
    cleanup();
  }
});

test("a server that ignores Range gets a clean restart, not an appended duplicate", async () => {
  const { root, cleanup } = scratch();
  try {
    const blobPath = join(root, sha256);
    writeFileSync(`${blobPath}.incomplete`, content.subarray(0, 1234));
    const ignoringRange: typeof fetch = (input, init) => {
      const headers = { ...(init?.headers as Record<string, string>) };
      delete headers.Range;
      return fetch(input, { ...init, headers });
    };
    await downloadBlob({ url: lfsUrl, headers: {}, fetch: ignoringRange, blobPath, expected, label: "w" });
    assert.deepEqual(readFileSync(blobPath), content);
  } finally {
    cleanup();
  }
});

test("bytes that never match the Hub's hash: HUB_INTEGRITY, and nothing left in the cache", async () => {
  const { root, cleanup } = scratch();
  try {
    const blobPath = join(root, sha256);
    const corrupting: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      const bytes = Buffer.from(await response.arrayBuffer());
      bytes[bytes.length >> 1] ^= 1;
      return new Response(bytes, { status: response.status, headers: response.headers });
    };
    await assert.rejects(
      downloadBlob({ url: lfsUrl, headers: {}, fetch: corrupting, blobPath, expected, label: "org/blob/w.safetensors" }),
      (error) => isAbliterateError(error) && error.code === "HUB_INTEGRITY" && error.message.includes("org/blob/w.safetensors") && error.message.includes(sha256),
    );
    assert.equal(existsSync(blobPath), false);
    assert.equal(existsSync(`${blobPath}.incomplete`), false);
  } finally {
    cleanup();
  }
});

test("regular files are checked against their git blob sha1; a longer partial file is discarded", async () => {
  const { root, cleanup } = scratch();
  try {
    // `printf '{"a":1}' | git hash-object --stdin`
    const oid = "daa5053ecf5f9a37b2de733d0751cc1ab53ac010";
    const blobPath = join(root, oid);
    writeFileSync(`${blobPath}.incomplete`, "this is longer than the real file");
    await downloadBlob({ url: `${hub.url}/org/blob/resolve/main/config.json`, headers: {}, fetch, blobPath, expected: { size: 7, hash: oid, algorithm: "git-sha1" }, label: "config.json" });
    assert.equal(readFileSync(blobPath, "utf8"), '{"a":1}');
    await assert.rejects(
      downloadBlob({ url: `${hub.url}/org/blob/resolve/main/config.json`, headers: {}, fetch, blobPath: join(root, "x"), expected: { size: 7, hash: "0".repeat(40), algorithm: "git-sha1" }, label: "config.json" }),
      (error) => isAbliterateError(error) && error.code === "HUB_INTEGRITY",
    );
  } finally {
    cleanup();
  }
});

test("a transfer that keeps failing gives up after the resume budget with an actionable message", async () => {
  const { root, cleanup } = scratch();
  try {
    const blobPath = join(root, sha256);
    hub.injectFault({ pathMatches: "/cdn/", resetAfterBytes: 10, times: 100 });
    await assert.rejects(
      downloadBlob({ url: lfsUrl, headers: {}, fetch, blobPath, expected, label: "org/blob/w", maxResumes: 2 }),
      (error) => isAbliterateError(error) && error.code === "HUB" && /run again to resume/.test(error.message),
    );
    assert.equal(existsSync(blobPath), false, "no blob from an unfinished transfer");
  } finally {
    hub.clearFaults();
    cleanup();
  }
});
