/**
 * sha256Files (lib/fs/sha256-files.ts): digests of whole files on worker threads, or on this thread for a few small
 * files. Checked against the FIPS 180-2 test vector and node's one-shot hash of the same bytes; an unreadable file
 * fails with an error naming it, on either path.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AbliterateError, ErrorCodes } from "../../lib/errors.js";
import { sha256Files } from "../../lib/fs/sha256-files.js";

test("sha256Files: every file's digest in the order given, on worker threads and on this thread", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-sha256-"));
  try {
    const abc = join(root, "abc.txt");
    writeFileSync(abc, "abc");
    // Past the workers' threshold in all: 40 + 30 MB of a pattern that changes every byte position.
    const big = [40, 30].map((mb, i) => {
      const bytes = Buffer.alloc(mb << 20);
      for (let j = 0; j < bytes.length; j += 1) bytes[j] = (j * 31 + i * 7 + (j >>> 11)) & 0xff;
      const path = join(root, `shard-${i}.bin`);
      writeFileSync(path, bytes);
      return { path, bytes: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") };
    });
    const files = [{ path: abc, bytes: 3 }, ...big];
    const expected = ["ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", ...big.map((f) => f.sha256)];
    assert.deepEqual(await sha256Files(files), expected);
    assert.deepEqual(await sha256Files(files, { threads: 2 }), expected);
    assert.deepEqual(await sha256Files(files, { threads: 1 }), expected);
    assert.deepEqual(await sha256Files([]), []);

    const missing = join(root, "missing.safetensors");
    for (const threads of [1, 2]) {
      await assert.rejects(
        sha256Files([...files, { path: missing, bytes: 64 << 20 }], { threads }),
        (error: unknown) => error instanceof AbliterateError && error.code === ErrorCodes.IO && error.message.includes(missing) && /ENOENT|no such file/.test(error.message),
      );
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
