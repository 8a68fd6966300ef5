/**
 * The addon's contract around the maths: typed errors through lib/native/addon.ts (invalid jobs, I/O,
 * disk full), progress events, runtimeInfo, and agreement between the SIMD and the scalar kernels.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { AbliterateError, ErrorCodes } from "../../lib/errors.js";
import { applyShard, runtimeInfo, verifyShard, type NativeTensorJob, type ShardProgress } from "../../lib/native/addon.js";
import {
  decodeElements,
  encodeElements,
  gaussian,
  orthonormalBasis,
  roundToDtype,
  seededRandom,
  ulpDistance,
  type FloatDtype,
} from "../helpers/reference-projection.js";

let dir: string;
let inputPath: string;
let fileSize: number;
const tensors: NativeTensorJob[] = [];

before(() => {
  dir = mkdtempSync(join(tmpdir(), "abl-"));
  inputPath = join(dir, "input.bin");
  const random = seededRandom(42);
  const pieces: Uint8Array[] = [new Uint8Array(64).fill(7)];
  let offset = 64;
  const shapes: Array<[0 | 1, number, number, FloatDtype]> = [
    [0, 130, 517, "BF16"],
    [1, 61, 130, "BF16"],
    [0, 130, 77, "F32"],
    [1, 33, 130, "F16"],
    [1, 20, 130, "F64"],
  ];
  for (const [index, [axis, rows, cols, dtype]] of shapes.entries()) {
    const values = Float64Array.from({ length: rows * cols }, () => roundToDtype(0.02 * gaussian(random), dtype));
    const dModel = axis === 0 ? rows : cols;
    const rank = index % 2 === 0 ? 2 : 1;
    const bytes = encodeElements(values, dtype);
    tensors.push({
      name: `t${index}`,
      offset,
      rows,
      cols,
      dtype,
      dModelAxis: axis,
      basis: orthonormalBasis(rank, dModel, random),
      rank,
      alpha: 1,
      normPreserving: index === 1,
    });
    pieces.push(bytes, new Uint8Array(16).fill(9));
    offset += bytes.length + 16;
  }
  writeFileSync(inputPath, Buffer.concat(pieces));
  fileSize = offset;
});

after(() => rmSync(dir, { recursive: true, force: true }));

async function rejection(promise: Promise<unknown>): Promise<AbliterateError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof AbliterateError, `expected an AbliterateError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected a rejection");
}

test("overlapping tensors are an invalid job", async () => {
  const second = { ...tensors[1], offset: tensors[0].offset + 10 };
  const error = await rejection(applyShard({ inputPath, outputPath: join(dir, "o.bin"), tensors: [tensors[0], second] }));
  assert.equal(error.code, ErrorCodes.NATIVE);
  assert.match(error.message, /'t0' and 't1' overlap/);
  assert.equal((error.cause as { code?: string }).code, "E_INVALID_JOB");
});

test("a tensor past the end of the file is an invalid job, for apply and for verify", async () => {
  const outside = { ...tensors[4], offset: fileSize - 100 };
  const apply = await rejection(applyShard({ inputPath, outputPath: join(dir, "o.bin"), tensors: [outside] }));
  assert.equal(apply.code, ErrorCodes.NATIVE);
  assert.match(apply.message, /'t4' ends at byte \d+, past the end of the file/);
  assert.equal(apply.file, inputPath);
  const verify = await rejection(verifyShard({ originalPath: inputPath, modifiedPath: inputPath, tensors: [outside] }));
  assert.equal((verify.cause as { code?: string }).code, "E_INVALID_JOB");
});

test("a basis of the wrong length, and a malformed job object, are invalid jobs", async () => {
  const short = { ...tensors[0], basis: new Float64Array(5) };
  const error = await rejection(applyShard({ inputPath, outputPath: join(dir, "o.bin"), tensors: [short] }));
  assert.match(error.message, /basis has 5 values, expected rank 2 × d_model 130/);
  const malformed = { ...tensors[0], rows: -1 } as NativeTensorJob;
  const parse = await rejection(applyShard({ inputPath, outputPath: join(dir, "o.bin"), tensors: [malformed] }));
  assert.match(parse.message, /tensors\[0\]\.rows must be a non-negative integer/);
});

test("a missing input is an IO error naming the file; the input as output is refused", async () => {
  const missing = join(dir, "missing.bin");
  const error = await rejection(applyShard({ inputPath: missing, outputPath: join(dir, "o.bin"), tensors: [] }));
  assert.equal(error.code, ErrorCodes.IO);
  assert.equal(error.file, missing);
  assert.match(error.message, /open .*missing\.bin: No such file or directory/);
  const noDir = join(dir, "no-such-dir", "o.bin");
  const output = await rejection(applyShard({ inputPath, outputPath: noDir, tensors: [] }));
  assert.equal(output.code, ErrorCodes.IO);
  assert.equal(output.file, noDir);
  const same = await rejection(applyShard({ inputPath, outputPath: inputPath, tensors }));
  assert.equal(same.code, ErrorCodes.NATIVE);
  assert.equal(readFileSync(inputPath).length, fileSize, "the input must survive");
});

test("a full disk is DISK_FULL naming the output", { skip: !existsSync("/dev/full") && "no /dev/full" }, async () => {
  const error = await rejection(applyShard({ inputPath, outputPath: "/dev/full", tensors }));
  assert.equal(error.code, ErrorCodes.DISK_FULL);
  assert.equal(error.file, "/dev/full");
  assert.match(error.message, /No space left on device/);
});

test("progress counts up to the file size and all of it arrives before the promise settles", async () => {
  const events: ShardProgress[] = [];
  const result = await applyShard(
    { inputPath, outputPath: join(dir, "progress.bin"), tensors, chunkBytes: 256 },
    (progress) => events.push(progress),
  );
  assert.ok(events.length >= 1);
  for (const event of events) assert.equal(event.bytesTotal, fileSize);
  for (let i = 1; i < events.length; i++) assert.ok(events[i].bytesDone >= events[i - 1].bytesDone);
  assert.equal(events.at(-1)!.bytesDone, fileSize);
  assert.equal(result.bytesCopied + result.bytesRewritten, fileSize);

  const verifyEvents: ShardProgress[] = [];
  const verified = await verifyShard(
    { originalPath: inputPath, modifiedPath: join(dir, "progress.bin"), tensors },
    (progress) => verifyEvents.push(progress),
  );
  assert.equal(verifyEvents.at(-1)!.bytesDone, fileSize);
  assert.ok(verified.untouchedIdentical);
  assert.deepEqual(verified.tensors.map((t) => t.mismatches), [0, 0, 0, 0, 0]);
});

test("chunks of a megabyte and more (read ahead and written behind on I/O threads) give the same bytes", async () => {
  const random = seededRandom(9);
  const rows = 1100;
  const cols = 600;
  const values = Float64Array.from({ length: rows * cols }, () => roundToDtype(gaussian(random), "F32"));
  const path = join(dir, "large.bin");
  writeFileSync(path, Buffer.concat([new Uint8Array(8), encodeElements(values, "F32")]));
  const jobs: NativeTensorJob[] = [
    { name: "columns", offset: 8, rows, cols, dtype: "F32", dModelAxis: 0, basis: orthonormalBasis(2, rows, random), rank: 2, alpha: 1, normPreserving: true },
  ];
  const rowJobs: NativeTensorJob[] = [
    { name: "rows", offset: 8, rows, cols, dtype: "F32", dModelAxis: 1, basis: orthonormalBasis(1, cols, random), rank: 1, alpha: 2, normPreserving: false },
  ];
  for (const tensorsOfRun of [jobs, rowJobs]) {
    const chunked = join(dir, "large-chunked.bin");
    const whole = join(dir, "large-whole.bin");
    await applyShard({ inputPath: path, outputPath: chunked, tensors: tensorsOfRun, chunkBytes: 1 << 20 });
    await applyShard({ inputPath: path, outputPath: whole, tensors: tensorsOfRun, chunkBytes: 1 << 30 });
    assert.ok(readFileSync(chunked).equals(readFileSync(whole)), tensorsOfRun[0].name);
    const verified = await verifyShard({ originalPath: path, modifiedPath: chunked, tensors: tensorsOfRun, chunkBytes: 1 << 20 });
    assert.equal(verified.tensors[0].mismatches, 0);
  }
});

test("runtimeInfo describes the build: one kernel choice for the three kernel families, the backend plug-ins", () => {
  const info = runtimeInfo();
  const levels = ["scalar", "avx2", "avx512"];
  const { kernels } = info;
  for (const level of [kernels.cpu, kernels.projection, kernels.verify, kernels.forward]) assert.ok(levels.includes(level), level);
  // No family runs wider than the CPU or the setting allows.
  const cap = Math.min(levels.indexOf(kernels.cpu), kernels.setting === "auto" ? 2 : levels.indexOf(kernels.setting));
  for (const level of [kernels.projection, kernels.verify, kernels.forward]) assert.ok(levels.indexOf(level) <= cap, `${level} above ${cap}`);
  assert.ok(Number.isInteger(info.threads) && info.threads >= 1);
  assert.equal(info.backends[0].name, "cpu");
  assert.equal(info.backends[0].devices, 1);
  for (const backend of info.backends) {
    assert.ok(["cpu", "cuda"].includes(backend.name));
    assert.ok(Number.isInteger(backend.devices) && backend.devices >= 0);
    if (backend.devices === 0) assert.ok(backend.reason, `${backend.name} cannot run and says why`);
  }
});

test("the scalar kernels agree with the SIMD kernels", async () => {
  const simdPath = join(dir, "simd.bin");
  const scalarPath = join(dir, "scalar.bin");
  await applyShard({ inputPath, outputPath: simdPath, tensors });
  // The kernel table is chosen once per process, so the scalar run needs its own.
  const addonModule = fileURLToPath(new URL("../../lib/native/addon.js", import.meta.url));
  const script = `
    const { applyShard, runtimeInfo } = await import(${JSON.stringify(addonModule)});
    const job = JSON.parse(process.argv[1], (key, value) => key === "basis" ? Float64Array.from(value) : value);
    await applyShard(job);
    process.stdout.write(runtimeInfo().kernels.projection);`;
  const job = JSON.stringify({ inputPath, outputPath: scalarPath, tensors }, (key, value) =>
    key === "basis" ? Array.from(value as Float64Array) : value,
  );
  const simd = execFileSync(process.execPath, ["--input-type=module", "-e", script, job], {
    env: { ...process.env, ABLITERATE_KERNELS: "scalar" },
    encoding: "utf8",
  });
  assert.equal(simd, "scalar");
  const simdBytes = readFileSync(simdPath);
  const scalarBytes = readFileSync(scalarPath);
  for (const tensor of tensors) {
    const size = { F64: 8, F32: 4, F16: 2, BF16: 2 }[tensor.dtype];
    const range = [tensor.offset, tensor.offset + tensor.rows * tensor.cols * size] as const;
    const a = new Uint8Array(simdBytes.subarray(...range));
    const b = new Uint8Array(scalarBytes.subarray(...range));
    if (tensor.dModelAxis === 0) {
      // Columns are independent sums in a fixed row order: every lane performs the same operations.
      assert.ok(Buffer.from(a).equals(Buffer.from(b)), `${tensor.name} differs`);
    } else {
      // Rows are reduced across lanes in a different order; the compensated sums keep them within 1 ulp.
      const x = decodeElements(a, tensor.dtype);
      const y = decodeElements(b, tensor.dtype);
      for (let i = 0; i < x.length; i++) assert.ok(ulpDistance(x[i], y[i], tensor.dtype) <= 1, `${tensor.name}[${i}]`);
    }
  }
  assert.ok(simdBytes.subarray(0, 64).equals(scalarBytes.subarray(0, 64)));
});
