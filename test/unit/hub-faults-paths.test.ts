/**
 * What the Hub may name, checked before it becomes a file name: listing paths and oids, a user's revision, and
 * the shards an index's weight_map points to. Every hostile shape is refused with the reason; real Hub paths pass.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ErrorCodes, isAbliterateError } from "../../lib/errors.js";
import { checkListedEntry, checkRevision, describePath, unsafePathReason } from "../../lib/hub/safe-repo-path.js";
import { shardsOfIndex } from "../../lib/hub/select-model-files.js";

const SHA1 = "a".repeat(40);
const SHA256 = "b".repeat(64);

const HOSTILE: [string, RegExp][] = [
  ["../evil.safetensors", /"\.\." segment/],
  ["..", /"\.\." segment/],
  ["sub/../../evil.safetensors", /"\.\." segment/],
  ["sub/..", /"\.\." segment/],
  ["/etc/passwd", /absolute/],
  ["/", /absolute/],
  ["..\\evil.safetensors", /backslash/],
  ["sub\\evil.safetensors", /backslash/],
  ["C:evil.safetensors", /drive letter/],
  ["c:/Windows/evil.safetensors", /drive letter/],
  ["evil\u0000.safetensors", /control/],
  ["evil\n.safetensors", /control/],
  ["evil\u001b[2J.safetensors", /control/],
  ["evil\u0085.safetensors", /control/],
  ["\u202egnp.safetensors", /control or invisible/],
  ["zero\u200bwidth.safetensors", /control or invisible/],
  ["a//b.safetensors", /empty segment/],
  ["dir/", /empty segment/],
  ["./model.safetensors", /"\." segment/],
  ["", /empty/],
  ["x".repeat(5000), /longer than/],
];

test("hostile listing paths are refused with the reason", () => {
  for (const [path, reason] of HOSTILE) {
    const found = unsafePathReason(path);
    assert.ok(found, `refused: ${JSON.stringify(path)}`);
    assert.match(found, reason, JSON.stringify(path));
  }
  for (const value of [undefined, null, 3, {}]) assert.equal(unsafePathReason(value), "it is not a string");
});

test("paths the Hub really lists pass", () => {
  for (const path of ["model.safetensors", ".gitattributes", "onnx/model.onnx", "a..b.txt", "..hidden", "v1.0/x.json", "日本語/説明.md", "name with spaces.txt", "emoji-🙂.txt"]) {
    assert.equal(unsafePathReason(path), undefined, path);
  }
});

test("describePath escapes what a terminal would interpret", () => {
  assert.equal(describePath("a\u0000b\u001b"), '"a\\u0000b\\u001b"');
  assert.equal(describePath("\u202egnp.exe\u200b\u0085"), '"\\u202egnp.exe\\u200b\\u0085"');
  assert.equal(describePath("日本語.txt"), '"日本語.txt"', "ordinary non-ASCII text stays readable");
  assert.ok(describePath("x".repeat(500)).length < 210);
});

function refused(entry: Parameters<typeof checkListedEntry>[0], pattern: RegExp): void {
  assert.throws(
    () => checkListedEntry(entry, "org/x@main"),
    (error) => isAbliterateError(error) && error.code === ErrorCodes.HUB_UNSAFE_LISTING && pattern.test(error.message) && /org\/x@main/.test(error.message) && /nothing was written/.test(error.message),
    JSON.stringify(entry),
  );
}

test("listing entries: oids must be hex of the right length, sizes consistent, types known", () => {
  assert.deepEqual(checkListedEntry({ type: "file", path: "config.json", size: 2, oid: SHA1 }, "w"), { path: "config.json", size: 2, etag: SHA1 });
  assert.deepEqual(checkListedEntry({ type: "file", path: "m.safetensors", size: 9, oid: SHA1, lfs: { oid: SHA256, size: 9 } }, "w"), { path: "m.safetensors", size: 9, etag: SHA256, lfs: { oid: SHA256, size: 9 } });
  assert.equal(checkListedEntry({ type: "directory", path: "onnx", size: 0, oid: SHA1 }, "w"), undefined);

  refused({ type: "directory", path: "../outside", size: 0, oid: SHA1 }, /"\.\.\/outside".*"\.\." segment/);
  refused({ type: "file", path: "../evil.safetensors", size: 1, oid: SHA1 }, /"\.\.\/evil\.safetensors"/);
  refused({ type: "file", path: "m.safetensors", size: 9, oid: SHA1, lfs: { oid: "../../../../tmp/x", size: 9 } }, /malformed LFS sha256 "\.\.\/\.\.\/\.\.\/\.\.\/tmp\/x"/);
  refused({ type: "file", path: "m.safetensors", size: 9, oid: SHA1, lfs: { oid: SHA256.toUpperCase(), size: 9 } }, /malformed LFS sha256/);
  refused({ type: "file", path: "config.json", size: 2, oid: "../x" }, /malformed git oid/);
  refused({ type: "file", path: "config.json", size: 2 }, /malformed git oid undefined/);
  refused({ type: "file", path: "m.safetensors", size: 9, oid: SHA1, lfs: { oid: SHA256, size: 10 } }, /two sizes/);
  refused({ type: "file", path: "m.safetensors", size: -1, oid: SHA1 }, /invalid size/);
  refused({ type: "file", path: "m.safetensors", size: 1.5, oid: SHA1 }, /invalid size/);
  refused({ type: "symlink", path: "m.safetensors", size: 1, oid: SHA1 }, /unknown type "symlink"/);
});

test("a user's revision becomes a file under refs/: refs/pr/N and tags pass, traversal does not", () => {
  for (const revision of ["main", "refs/pr/1", "v1.0", "release/2024-01", "a".repeat(40)]) checkRevision(revision);
  for (const revision of ["../../escape", "refs/../../x", "/abs", "a\\b", "x\u0000", "refs//pr"]) {
    assert.throws(() => checkRevision(revision), (error) => isAbliterateError(error) && error.code === ErrorCodes.INVALID_ARGUMENT && error.message.includes(describePath(revision)), revision);
  }
});

test("weight_map values that leave the folder or hide characters are refused, escaped in the message", () => {
  const cases: [unknown, RegExp][] = [
    ["../model.safetensors", /"\.\.\/model\.safetensors".*"\.\." segment/],
    ["/tmp/x.safetensors", /absolute/],
    ["..\\x.safetensors", /backslash/],
    ["x\u0000.safetensors", /"x\\u0000\.safetensors".*control/],
    ["C:x.safetensors", /drive letter/],
    ["sub/x.safetensors", /invalid shard "sub\/x\.safetensors"/],
    ["model.bin", /invalid shard "model\.bin"/],
    [7, /not a string/],
  ];
  for (const [value, pattern] of cases) {
    assert.throws(
      () => shardsOfIndex(JSON.stringify({ weight_map: { a: "ok.safetensors", b: value } }), "org/x@main/model.safetensors.index.json"),
      (error) => isAbliterateError(error) && error.code === ErrorCodes.INDEX_INVALID && pattern.test(error.message) && error.message.startsWith("org/x@main/model.safetensors.index.json: "),
      String(value),
    );
  }
});
