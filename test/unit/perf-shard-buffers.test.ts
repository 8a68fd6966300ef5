/**
 * Shard jobs read their chunks with pread into buffers that the next shard's job takes over on huge pages
 * (native/core/file_io.h, large_mappings.h), and compare the bytes outside the targets in 256 KB pieces. So:
 * - a shard projected in buffers that still hold another shard's chunks must give the bytes a fresh process gives;
 * - the first differing byte outside the targets is found exactly, at and around the pieces' edges, on 1 and 2
 *   threads, and the earliest of several wins.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { applyShard, verifyShard, type NativeTensorJob } from "../../lib/native/addon.js";
import { encodeElements, gaussian, orthonormalBasis, roundToDtype, seededRandom } from "../helpers/reference-projection.js";

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "abl-shard-buffers-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const PIECE = 256 * 1024;

/** A shard: `lead` untouched bytes, a BF16 [rows, cols] tensor projected along `axis`, then `trail` untouched bytes. */
function writeShard(path: string, seed: number, rows: number, cols: number, axis: 0 | 1, lead: number, trail = 0): NativeTensorJob {
  const random = seededRandom(seed);
  const values = Float64Array.from({ length: rows * cols }, () => roundToDtype(0.05 * gaussian(random), "BF16"));
  const leading = Uint8Array.from({ length: lead }, () => Math.floor(random() * 256));
  const trailing = Uint8Array.from({ length: trail }, () => Math.floor(random() * 256));
  writeFileSync(path, Buffer.concat([leading, encodeElements(values, "BF16"), trailing]));
  const dModel = axis === 0 ? rows : cols;
  return { name: "w", offset: lead, rows, cols, dtype: "BF16", dModelAxis: axis, basis: orthonormalBasis(1, dModel, random), rank: 1, alpha: 1, normPreserving: false };
}

test("a shard projected in buffers another shard's job left behind gives the bytes of a fresh process", async () => {
  // 8 MB chunks of a 2048 × 3000 BF16 tensor (12 MB): the chunk buffers lie past the huge-page threshold.
  const chunkBytes = 8 << 20;
  for (const axis of [0, 1] as const) {
    const first = writeShard(join(dir, `a${axis}.bin`), 11 + axis, 2048, 3000, axis, 4096);
    await applyShard({ inputPath: join(dir, `a${axis}.bin`), outputPath: join(dir, `a${axis}.out`), tensors: [first], chunkBytes });
    // Another shard of the same shapes and then a smaller one: every buffer is taken over holding the last values.
    for (const [name, rows, cols] of [["b", 2048, 3000], ["c", 2048, 1500]] as const) {
      const input = join(dir, `${name}${axis}.bin`);
      const job = writeShard(input, 21 + axis + rows + cols, rows, cols, axis, 1000);
      const output = join(dir, `${name}${axis}.out`);
      await applyShard({ inputPath: input, outputPath: output, tensors: [job], chunkBytes });
      const fresh = join(dir, `${name}${axis}.fresh`);
      // The child gets the job as JSON; the basis travels as a plain array and is turned back into a Float64Array.
      const addon = fileURLToPath(new URL("../../lib/native/addon.js", import.meta.url));
      const script = `const job = JSON.parse(process.argv[1]); job.tensors[0].basis = Float64Array.from(job.tensors[0].basis);
        import(${JSON.stringify(addon)}).then((m) => m.applyShard(job));`;
      const freshJob = { inputPath: input, outputPath: fresh, tensors: [{ ...job, basis: Array.from(job.basis) }], chunkBytes };
      execFileSync(process.execPath, ["-e", script, JSON.stringify(freshJob)]);
      assert.ok(readFileSync(output).equals(readFileSync(fresh)), `axis ${axis}, shard ${name}: the bytes differ from a fresh process's`);
      const verified = await verifyShard({ originalPath: input, modifiedPath: output, tensors: [job], chunkBytes });
      assert.equal(verified.tensors[0].mismatches, 0, `axis ${axis}, shard ${name}`);
      assert.equal(verified.untouchedIdentical, true);
    }
  }
});

test("the first differing byte outside the targets is found exactly, at the pieces' edges, on 1 and 2 threads", async () => {
  const lead = 4 * PIECE + 3;
  const input = join(dir, "gap.bin");
  // Two gaps: before the tensor (4 pieces and 3 bytes) and after it (a piece and 9 bytes).
  const job = writeShard(input, 5, 64, 48, 1, lead, PIECE + 9);
  const original = readFileSync(input);
  const tail = original.length - 1;
  const cases: number[][] = [
    [0], [PIECE - 1], [PIECE], [3 * PIECE + 17], [lead - 1], [tail - PIECE], [tail],
    [3 * PIECE + 1, PIECE + 5], [2 * PIECE, tail], [tail - 3, tail - PIECE - 1],
  ];
  for (const flips of cases) {
    const modified = Buffer.from(original);
    for (const at of flips) modified[at] ^= 0x10;
    // The tensor is left as it was: only bytes outside it differ.
    const path = join(dir, "gap-modified.bin");
    writeFileSync(path, modified);
    for (const threads of [1, 2]) {
      const verified = await verifyShard({ originalPath: input, modifiedPath: path, tensors: [job], threads });
      assert.equal(verified.untouchedIdentical, false);
      assert.equal(verified.firstUntouchedDifference, Math.min(...flips), `flips at ${flips.join(", ")}, ${threads} threads`);
    }
  }
});
