/**
 * applyShard/verifyShard on header-free files (offsets are absolute, so a "shard" is raw bytes): every
 * orientation × dtype × α × rank × normPreserving, each element checked against the TypeScript fp64
 * reference; chunked and multi-threaded runs equal the whole-tensor run byte for byte; bytes between the
 * tensors are untouched; verify agrees and catches a flipped element or byte.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyShard, runtimeInfo, verifyShard, type NativeTensorJob } from "../../lib/native/addon.js";
import {
  ELEMENT_BYTES,
  decodeElements,
  encodeElements,
  gaussian,
  maxProjection,
  orthonormalBasis,
  referenceProjection,
  roundToDtype,
  seededRandom,
  ulpDistance,
  withinTolerance,
  type FloatDtype,
  type ProjectionSpec,
} from "../helpers/reference-projection.js";

interface ShardTensor {
  job: NativeTensorJob;
  spec: ProjectionSpec;
  original: Float64Array;
}

interface Shard {
  path: string;
  bytes: Uint8Array;
  tensors: ShardTensor[];
}

const DTYPES: FloatDtype[] = ["F32", "F16", "BF16", "F64"];
const ALPHAS = [1, 2, -0.5, 0];
const RANKS = [1, 3];

/** Shapes [rows, cols]: odd sizes for the SIMD tails, and wide ones across column blocks and threads. */
function shapesFor(axis: 0 | 1, wide: boolean): [number, number] {
  if (axis === 0) return wide ? [24, 301] : [19, 13];
  return wide ? [9, 301] : [11, 21];
}

function buildShard(dir: string, dtype: FloatDtype, seed: number): Shard {
  const random = seededRandom(seed);
  const pieces: Uint8Array[] = [];
  let offset = 0;
  const push = (bytes: Uint8Array) => {
    pieces.push(bytes);
    offset += bytes.length;
  };
  const junk = (length: number) => Uint8Array.from({ length }, () => Math.floor(random() * 256));
  push(junk(37)); // stands in for the safetensors header
  const tensors: ShardTensor[] = [];
  const add = (axis: 0 | 1, alpha: number, rank: number, normPreserving: boolean, wide: boolean) => {
    const [rows, cols] = shapesFor(axis, wide);
    const dModel = axis === 0 ? rows : cols;
    const values = Float64Array.from({ length: rows * cols }, () => roundToDtype(0.05 * gaussian(random), dtype));
    const basis = orthonormalBasis(rank, dModel, random);
    const spec: ProjectionSpec = { rows, cols, dModelAxis: axis, basis, rank, alpha, normPreserving };
    const name = `axis${axis}.alpha${alpha}.rank${rank}${normPreserving ? ".np" : ""}${wide ? ".wide" : ""}`;
    tensors.push({ job: { name, offset, dtype, ...spec }, spec, original: values });
    push(encodeElements(values, dtype));
    push(junk(Math.floor(random() * 3) * 5)); // gaps of 0, 5 or 10 bytes
  };
  for (const axis of [0, 1] as const) {
    for (const alpha of ALPHAS) {
      for (const rank of RANKS) for (const normPreserving of [false, true]) add(axis, alpha, rank, normPreserving, false);
    }
    for (const normPreserving of [false, true]) add(axis, 1, 3, normPreserving, true);
  }
  push(junk(23));
  const bytes = new Uint8Array(offset);
  let at = 0;
  for (const piece of pieces) {
    bytes.set(piece, at);
    at += piece.length;
  }
  const path = join(dir, `input-${dtype}.bin`);
  writeFileSync(path, bytes);
  return { path, bytes, tensors };
}

function tensorBytes(file: Uint8Array, job: NativeTensorJob): Uint8Array {
  return file.subarray(job.offset, job.offset + job.rows * job.cols * ELEMENT_BYTES[job.dtype]);
}

let dir: string;
const shards = new Map<FloatDtype, Shard>();
const outputs = new Map<FloatDtype, Uint8Array>();

/** What the default ("auto") request runs on: the first non-CPU plug-in with a device, else the CPU. */
const expectedBackend =
  process.env.ABLITERATE_BACKEND === "cpu" ? "cpu" : (runtimeInfo().backends.find((backend) => backend.name !== "cpu" && backend.devices > 0)?.name ?? "cpu");

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "abl-"));
  for (const [index, dtype] of DTYPES.entries()) {
    const shard = buildShard(dir, dtype, 1000 + index);
    shards.set(dtype, shard);
    const outputPath = join(dir, `output-${dtype}.bin`);
    const result = await applyShard({ inputPath: shard.path, outputPath, tensors: shard.tensors.map((t) => t.job) });
    // Every check below holds for whichever backend ran (native-backend-parity compares the backends).
    assert.equal(result.backend, expectedBackend);
    assert.equal(result.bytesRewritten + result.bytesCopied, shard.bytes.length);
    outputs.set(dtype, new Uint8Array(readFileSync(outputPath)));
  }
});

after(() => rmSync(dir, { recursive: true, force: true }));

for (const dtype of DTYPES) {
  describe(`${dtype} shard`, () => {
    test("every element is within 1 ulp of the fp64 reference, and almost always correctly rounded", () => {
      const { tensors } = shards.get(dtype)!;
      const output = outputs.get(dtype)!;
      for (const { job, spec, original } of tensors) {
        const actual = decodeElements(tensorBytes(output, job), dtype);
        const { reference, updateMagnitude, scale } = referenceProjection(original, spec);
        let notNearest = 0;
        for (let i = 0; i < actual.length; i++) {
          const where = `${job.name}[${i}]: got ${actual[i]}, reference ${reference[i]}`;
          assert.ok(
            withinTolerance({
              actual: actual[i],
              reference: reference[i],
              original: original[i],
              updateMagnitude: updateMagnitude[i],
              scale: scale[i],
              dtype,
            }),
            where,
          );
          if (dtype !== "F64") {
            // The fp64 slack of the tolerance is far below a narrow dtype's ulp: plain 1 ulp must hold.
            assert.ok(ulpDistance(actual[i], reference[i], dtype) <= 1, where);
            if (actual[i] !== roundToDtype(reference[i], dtype)) notNearest += 1;
          }
        }
        // Only a reference within fp64 noise of a rounding boundary may round the other way.
        assert.ok(notNearest <= Math.max(1, actual.length / 1000), `${job.name}: ${notNearest} elements not correctly rounded`);
      }
    });

    test("alpha 0 changes nothing and the projection is removed at alpha 1", () => {
      const { tensors } = shards.get(dtype)!;
      const output = outputs.get(dtype)!;
      for (const { job, spec, original } of tensors) {
        const actual = decodeElements(tensorBytes(output, job), dtype);
        if (job.alpha === 0) assert.deepEqual(actual, original, job.name);
        if (job.alpha === 1 && !job.normPreserving) {
          const residual = maxProjection(actual, spec) / maxProjection(original, spec);
          const unit = dtype === "F64" ? 2 ** -40 : dtype === "F32" ? 2 ** -18 : 2 ** -4;
          assert.ok(residual < unit, `${job.name}: residual ${residual}`);
        }
      }
    });

    test("bytes outside the tensors are copied unchanged", () => {
      const { bytes, tensors } = shards.get(dtype)!;
      const output = outputs.get(dtype)!;
      assert.equal(output.length, bytes.length);
      const inside = new Uint8Array(bytes.length);
      for (const { job } of tensors) inside.fill(1, job.offset, job.offset + tensorBytes(bytes, job).length);
      for (let i = 0; i < bytes.length; i++) if (!inside[i]) assert.equal(output[i], bytes[i], `byte ${i}`);
    });

    test("tiny odd chunks and other thread counts give the same bytes", async () => {
      const shard = shards.get(dtype)!;
      for (const [chunkBytes, threads] of [[64, 3], [100, 1], [1, 2]] as const) {
        const outputPath = join(dir, `chunked-${dtype}-${chunkBytes}.bin`);
        await applyShard({ inputPath: shard.path, outputPath, tensors: shard.tensors.map((t) => t.job), chunkBytes, threads });
        assert.ok(Buffer.from(readFileSync(outputPath)).equals(Buffer.from(outputs.get(dtype)!)), `chunkBytes ${chunkBytes}, threads ${threads}`);
      }
    });

    test("verify passes on the output and reports the projections before and after", async () => {
      const shard = shards.get(dtype)!;
      const modifiedPath = join(dir, `output-${dtype}.bin`);
      const result = await verifyShard({ originalPath: shard.path, modifiedPath, tensors: shard.tensors.map((t) => t.job), chunkBytes: 200 });
      assert.equal(result.untouchedIdentical, true);
      assert.equal(result.firstUntouchedDifference, -1);
      const output = outputs.get(dtype)!;
      for (const [index, verified] of result.tensors.entries()) {
        const { job, spec, original } = shard.tensors[index];
        assert.equal(verified.name, job.name);
        assert.equal(verified.elements, job.rows * job.cols);
        assert.equal(verified.mismatches, 0, `${job.name}: first mismatch ${verified.firstMismatchIndex}`);
        assert.equal(verified.firstMismatchIndex, -1);
        // In F64 an element far smaller than its inputs may be many of its own ulps off (the fp64 slack).
        if (dtype !== "F64") assert.ok(verified.maxUlpError <= 1, `${job.name}: ${verified.maxUlpError} ulp`);
        const before = maxProjection(original, spec);
        assert.ok(Math.abs(verified.projectionBefore - before) <= 1e-12 * before, `${job.name}: before ${verified.projectionBefore} vs ${before}`);
        const afterValue = maxProjection(decodeElements(tensorBytes(output, job), dtype), spec);
        assert.ok(Math.abs(verified.projectionAfter - afterValue) <= 1e-9 * before, `${job.name}: after ${verified.projectionAfter} vs ${afterValue}`);
      }
    });

    test("verify rejects exactly the elements the TypeScript tolerance rejects, after nudging elements by 0–3 ulp", {
      skip: dtype === "F64" && "in F64 the fp64 reference itself is as coarse as the tolerance",
    }, async () => {
      const shard = shards.get(dtype)!;
      const size = ELEMENT_BYTES[dtype];
      const random = seededRandom(77);
      const nudged = Uint8Array.from(outputs.get(dtype)!);
      const view = new DataView(nudged.buffer);
      const expected: number[] = [];
      for (const { job, spec, original } of shard.tensors) {
        const { reference, updateMagnitude, scale } = referenceProjection(original, spec);
        let rejected = 0;
        for (let i = 0; i < job.rows * job.cols; i++) {
          const at = job.offset + i * size;
          const steps = [0, 0, 1, -1, 2, -2, 3][Math.floor(random() * 7)];
          // Adding to the bit pattern moves one representable value at a time (away from zero when positive).
          if (size === 4) view.setUint32(at, view.getUint32(at, true) + steps, true);
          else view.setUint16(at, view.getUint16(at, true) + steps, true);
          const actual = decodeElements(nudged.subarray(at, at + size), dtype)[0];
          const within = withinTolerance({
            actual,
            reference: reference[i],
            original: original[i],
            updateMagnitude: updateMagnitude[i],
            scale: scale[i],
            dtype,
          });
          if (!within) rejected += 1;
        }
        expected.push(rejected);
      }
      const modifiedPath = join(dir, `nudged-${dtype}.bin`);
      writeFileSync(modifiedPath, nudged);
      const result = await verifyShard({ originalPath: shard.path, modifiedPath, tensors: shard.tensors.map((t) => t.job) });
      assert.deepEqual(result.tensors.map((t) => t.mismatches), expected);
      assert.ok(expected.reduce((a, b) => a + b) > 100, "the nudges must push some elements out");
    });

    test("verify names the tensor holding one flipped element, and finds a changed byte outside", async () => {
      const shard = shards.get(dtype)!;
      const size = ELEMENT_BYTES[dtype];
      const target = shard.tensors[5];
      const element = 7;
      const corrupted = Uint8Array.from(outputs.get(dtype)!);
      const at = target.job.offset + element * size + size - 1; // the byte holding sign and high exponent
      corrupted[at] ^= 0x40;
      const gapByte = shard.tensors[0].job.offset - 3;
      corrupted[gapByte] ^= 0x01;
      const modifiedPath = join(dir, `corrupted-${dtype}.bin`);
      writeFileSync(modifiedPath, corrupted);
      const result = await verifyShard({ originalPath: shard.path, modifiedPath, tensors: shard.tensors.map((t) => t.job) });
      assert.equal(result.untouchedIdentical, false);
      assert.equal(result.firstUntouchedDifference, gapByte);
      const failing = result.tensors.filter((t) => t.mismatches > 0);
      assert.deepEqual(failing.map((t) => t.name), [target.job.name]);
      assert.equal(failing[0].mismatches, 1);
      assert.equal(failing[0].firstMismatchIndex, element);
      const corruptedValue = decodeElements(corrupted.subarray(at - size + 1, at + 1), dtype)[0];
      assert.ok(Object.is(failing[0].firstMismatchActual, corruptedValue));
      assert.ok(failing[0].maxUlpError > 1);
    });
  });
}
