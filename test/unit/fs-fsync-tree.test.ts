/** fsyncTree: every regular file of a nested output folder, nothing that could block (FIFOs), errors that name the file. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AbliterateError } from "../../lib/errors.js";
import { fsyncPath, fsyncTree } from "../../lib/fs/fsync-tree.js";

test("fsyncTree syncs a nested folder and never opens a FIFO (which would block forever)", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-"));
  try {
    mkdirSync(join(root, "a", "b"), { recursive: true });
    writeFileSync(join(root, "model.safetensors"), new Uint8Array(1024));
    writeFileSync(join(root, "a", "b", "tokenizer.json"), "{}");
    execFileSync("mkfifo", [join(root, "a", "pipe")]);
    await fsyncTree(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a file that cannot be synced gives an IO error naming it", async () => {
  const missing = join(tmpdir(), `abl-missing-${process.pid}`, "model-00001-of-00002.safetensors");
  await assert.rejects(fsyncPath(missing), (error: unknown) => error instanceof AbliterateError && error.code === "IO" && error.file === missing);
});
