/**
 * verifyShard's fast path (docs/precision.md, "How verify computes the reference"): the fp64 screen may only
 * settle elements that are certainly within tolerance, everything else goes to the long double judge. These
 * tests aim at the places where a screen could go wrong: ranks past the unrolled ones (1–4), exact zeros and
 * powers of two, subnormals, values next to the dtype's overflow threshold, reflections (α = 2),
 * norm-preserving columns that the projection nearly annihilates, Inf/NaN inputs, and agreement of the scalar
 * and SIMD kernels, of chunk sizes and of thread counts.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { applyShard, verifyShard, type NativeTensorJob, type VerifyShardResult } from "../../lib/native/addon.js";
import {
  ELEMENT_BYTES,
  decodeElements,
  encodeElements,
  gaussian,
  maxFinite,
  orthonormalBasis,
  referenceProjection,
  roundToDtype,
  seededRandom,
  ulpOf,
  verifyAccepts,
  withinTolerance,
  type FloatDtype,
  type ProjectionSpec,
} from "../helpers/reference-projection.js";

interface Case {
  job: NativeTensorJob;
  spec: ProjectionSpec;
  original: Float64Array;
}

const DTYPES: FloatDtype[] = ["BF16", "F16", "F32", "F64"];

/** Weight-like values with exact zeros, powers of two, subnormals and (some) values near the largest finite. */
function awkwardValues(count: number, dtype: FloatDtype, random: () => number, nearOverflow: boolean): Float64Array {
  const smallest = ulpOf(0, dtype);
  return Float64Array.from({ length: count }, () => {
    const pick = random();
    const sign = random() < 0.5 ? -1 : 1;
    if (pick < 0.06) return sign * 0;
    if (pick < 0.12) return sign * 2 ** -Math.floor(random() * 8);
    if (pick < 0.15) return sign * smallest * (1 + Math.floor(random() * 5));
    // F64 stays far from its overflow: sums of squares of values near it overflow in apply's fp64 itself.
    const large = dtype === "F64" ? 2 ** 500 : maxFinite(dtype);
    if (nearOverflow && pick < 0.25) return roundToDtype(sign * large * (0.5 + random() / 2), dtype);
    return roundToDtype(0.05 * gaussian(random), dtype);
  });
}

/** Columns (axis 0) or rows (axis 1) that lie almost inside span(B): the projection cancels nearly everything. */
function nearlyInSpan(spec: ProjectionSpec, dtype: FloatDtype, random: () => number): Float64Array {
  const dModel = spec.dModelAxis === 0 ? spec.rows : spec.cols;
  const vectors = spec.dModelAxis === 0 ? spec.cols : spec.rows;
  const values = new Float64Array(spec.rows * spec.cols);
  for (let v = 0; v < vectors; v++) {
    const weight = 0.5 + random();
    for (let i = 0; i < dModel; i++) {
      const at = spec.dModelAxis === 0 ? i * spec.cols + v : v * spec.cols + i;
      values[at] = roundToDtype(weight * spec.basis[i] + 1e-3 * gaussian(random) * (i % 7 === 0 ? 1 : 0), dtype);
    }
  }
  return values;
}

function buildCases(dtype: FloatDtype, seed: number): Case[] {
  const random = seededRandom(seed);
  const cases: Case[] = [];
  const add = (name: string, axis: 0 | 1, rows: number, cols: number, rank: number, alpha: number, normPreserving: boolean, fill: "awkward" | "overflow" | "span") => {
    const dModel = axis === 0 ? rows : cols;
    const spec: ProjectionSpec = { rows, cols, dModelAxis: axis, basis: orthonormalBasis(rank, dModel, random), rank, alpha, normPreserving };
    const original =
      fill === "span" ? nearlyInSpan(spec, dtype, random) : awkwardValues(rows * cols, dtype, random, fill === "overflow");
    cases.push({ job: { name, offset: 0, dtype, ...spec }, spec, original });
  };
  for (const axis of [0, 1] as const) {
    const [rows, cols] = axis === 0 ? [23, 37] : [13, 45];
    add(`axis${axis}.rank5`, axis, rows, cols, 5, 1, false, "awkward");
    add(`axis${axis}.rank5.np`, axis, rows, cols, 5, -0.5, true, "awkward");
    add(`axis${axis}.alpha0`, axis, rows, cols, 2, 0, false, "awkward");
    add(`axis${axis}.reflect`, axis, rows, cols, 1, 2, false, "overflow");
    add(`axis${axis}.overflow.np`, axis, rows, cols, 2, 1, true, "overflow");
    // In F64, apply's closed-form scale is itself too coarse for vectors the projection nearly annihilates
    // (docs/precision.md), so only the narrow dtypes get that case.
    if (dtype !== "F64") add(`axis${axis}.span.np`, axis, rows, cols, 1, 1, true, "span");
    add(`axis${axis}.span`, axis, rows, cols, 3, 1, false, "span");
  }
  return cases;
}

/** Lays the cases out one after another (with a few junk bytes between) and returns the file's bytes. */
function layOut(cases: Case[], random: () => number): Uint8Array {
  const pieces: Uint8Array[] = [];
  let offset = 0;
  for (const item of cases) {
    const junk = Uint8Array.from({ length: 3 + Math.floor(random() * 9) }, () => Math.floor(random() * 256));
    pieces.push(junk);
    offset += junk.length;
    item.job.offset = offset;
    const bytes = encodeElements(item.original, item.job.dtype);
    pieces.push(bytes);
    offset += bytes.length;
  }
  return Uint8Array.from(Buffer.concat(pieces));
}

/** Moves elements by 0–3 representable values, returning the count per case that the TypeScript tolerance rejects. */
function nudge(bytes: Uint8Array, cases: Case[], seed: number): number[] {
  const random = seededRandom(seed);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return cases.map(({ job, spec, original }) => {
    const size = ELEMENT_BYTES[job.dtype];
    const { reference, updateMagnitude, scale } = referenceProjection(original, spec);
    let rejected = 0;
    for (let i = 0; i < job.rows * job.cols; i++) {
      const at = job.offset + i * size;
      const steps = [0, 0, 1, -1, 2, -2, 3][Math.floor(random() * 7)];
      if (size === 4) view.setUint32(at, (view.getUint32(at, true) + steps) >>> 0, true);
      else view.setUint16(at, (view.getUint16(at, true) + steps) & 0xffff, true);
      const actual = decodeElements(bytes.subarray(at, at + size), job.dtype)[0];
      const args = { actual, reference: reference[i], original: original[i], updateMagnitude: updateMagnitude[i], scale: scale[i], dtype: job.dtype };
      if (!verifyAccepts(args)) rejected += 1;
    }
    return rejected;
  });
}

/** verifyShard in a child process whose kernels are capped at `simd` (the choice is made once per process). */
function verifyInChild(job: { originalPath: string; modifiedPath: string; tensors: NativeTensorJob[] }, simd: string): VerifyShardResult {
  const addonModule = fileURLToPath(new URL("../../lib/native/addon.js", import.meta.url));
  const script = `
    const { verifyShard } = await import(${JSON.stringify(addonModule)});
    const job = JSON.parse(process.argv[1], (key, value) => key === "basis" ? Float64Array.from(value) : value);
    const nonFinite = (key, value) => typeof value === "number" && !Number.isFinite(value) ? String(value) : value;
    process.stdout.write(JSON.stringify(await verifyShard(job), nonFinite));`;
  const text = JSON.stringify(job, (key, value) => (key === "basis" ? Array.from(value as Float64Array) : value));
  const output = execFileSync(process.execPath, ["--input-type=module", "-e", script, text], {
    env: { ...process.env, ABLITERATE_KERNELS: simd },
    encoding: "utf8",
  });
  return JSON.parse(output, (key, value) => (["NaN", "Infinity", "-Infinity"].includes(value) ? Number(value) : value)) as VerifyShardResult;
}

function closeTo(a: number, b: number, relative: number): boolean {
  if (a === b || (Number.isNaN(a) && Number.isNaN(b))) return true;
  return Math.abs(a - b) <= relative * Math.max(Math.abs(a), Math.abs(b));
}

let dir: string;
after(() => dir && rmSync(dir, { recursive: true, force: true }));
before(() => {
  dir = mkdtempSync(join(tmpdir(), "abl-"));
});

for (const [index, dtype] of DTYPES.entries()) {
  describe(`${dtype}: awkward tensors`, () => {
    const cases = buildCases(dtype, 500 + index);
    const random = seededRandom(900 + index);
    let originalPath: string;
    let outputPath: string;
    let output: Uint8Array;
    const tensors = () => cases.map((c) => c.job);

    before(async () => {
      originalPath = join(dir, `awkward-${dtype}.bin`);
      outputPath = join(dir, `awkward-${dtype}.out.bin`);
      writeFileSync(originalPath, layOut(cases, random));
      await applyShard({ inputPath: originalPath, outputPath, tensors: tensors() });
      output = new Uint8Array(readFileSync(outputPath));
    });

    test("verify accepts apply's output (but for the overflows it refuses as non-finite), and agrees with the TypeScript tolerance element by element", async () => {
      const result = await verifyShard({ originalPath, modifiedPath: outputPath, tensors: tensors() });
      assert.equal(result.untouchedIdentical, true);
      for (const [i, { job, spec, original }] of cases.entries()) {
        const size = ELEMENT_BYTES[dtype];
        const actual = decodeElements(output.subarray(job.offset, job.offset + job.rows * job.cols * size), dtype);
        const { reference, updateMagnitude, scale } = referenceProjection(original, spec);
        let rejected = 0;
        let nonFinite = 0;
        for (let e = 0; e < actual.length; e++) {
          const args = { actual: actual[e], reference: reference[e], original: original[e], updateMagnitude: updateMagnitude[e], scale: scale[e], dtype };
          if (!withinTolerance(args)) rejected += 1;
          if (!Number.isFinite(actual[e])) nonFinite += 1;
        }
        // In F64 the TypeScript reference is as coarse as the tolerance itself: only verify's verdict counts.
        if (dtype !== "F64") assert.equal(rejected, 0, `${job.name}: ${rejected} elements of the kernels' output are outside the TypeScript tolerance`);
        // apply rounds a reference past the largest finite value to ±Inf, as it must; verify refuses exactly those.
        assert.equal(result.tensors[i].mismatches, nonFinite, `${job.name}: first mismatch at ${result.tensors[i].firstMismatchIndex}`);
        assert.equal(result.tensors[i].nonFinite, nonFinite, `${job.name}: non-finite count`);
        assert.equal(result.tensors[i].nonFiniteOriginal, 0, `${job.name}: the originals are finite`);
      }
    });

    test("after nudges of 0–3 ulp, verify rejects exactly what the TypeScript tolerance rejects", {
      skip: dtype === "F64" && "in F64 the fp64 reference itself is as coarse as the tolerance",
    }, async () => {
      const nudged = Uint8Array.from(output);
      const expected = nudge(nudged, cases, 31 + index);
      const nudgedPath = join(dir, `awkward-${dtype}.nudged.bin`);
      writeFileSync(nudgedPath, nudged);
      const result = await verifyShard({ originalPath, modifiedPath: nudgedPath, tensors: tensors() });
      assert.deepEqual(result.tensors.map((t) => t.mismatches), expected);
      assert.ok(expected.reduce((a, b) => a + b) > 50, "the nudges must push some elements out");
    });

    test("the scalar kernels, other chunk sizes and other thread counts reach the same verdicts", async () => {
      const nudged = Uint8Array.from(output);
      nudge(nudged, cases, 77 + index);
      const nudgedPath = join(dir, `awkward-${dtype}.nudged2.bin`);
      writeFileSync(nudgedPath, nudged);
      const job = { originalPath, modifiedPath: nudgedPath, tensors: tensors() };
      const reference = await verifyShard(job);
      const runs: Array<[string, VerifyShardResult]> = [
        ["scalar kernels", verifyInChild(job, "scalar")],
        ["1-byte chunks, 3 threads", await verifyShard({ ...job, chunkBytes: 1, threads: 3 })],
        ["333-byte chunks, 1 thread", await verifyShard({ ...job, chunkBytes: 333, threads: 1 })],
      ];
      for (const [label, result] of runs) {
        for (const [i, expected] of reference.tensors.entries()) {
          const got = result.tensors[i];
          const where = `${label}, ${expected.name}`;
          assert.equal(got.mismatches, expected.mismatches, `${where}: mismatches`);
          assert.equal(got.firstMismatchIndex, expected.firstMismatchIndex, `${where}: first mismatch`);
          assert.ok(Object.is(got.firstMismatchActual, expected.firstMismatchActual), where);
          assert.ok(closeTo(got.maxUlpError, expected.maxUlpError, 1e-9), `${where}: ${got.maxUlpError} vs ${expected.maxUlpError}`);
          assert.ok(closeTo(got.projectionBefore, expected.projectionBefore, 1e-15), `${where}: before ${got.projectionBefore} vs ${expected.projectionBefore}`);
          // Bᵀw' is summed plainly in fp64 (it is only reported), in an order that depends on the lanes and chunks.
          const afterSlack = 1e-12 * Math.max(expected.projectionBefore, expected.projectionAfter);
          assert.ok(
            closeTo(got.projectionAfter, expected.projectionAfter, 0) || Math.abs(got.projectionAfter - expected.projectionAfter) <= afterSlack,
            `${where}: after ${got.projectionAfter} vs ${expected.projectionAfter}`,
          );
        }
      }
    });
  });
}

test("Inf and NaN in the original: verify refuses the tensor (the non-finite rule), counting them, and still rejects a changed element", async () => {
  const random = seededRandom(4242);
  for (const dtype of DTYPES) {
    const cases: Case[] = [];
    for (const axis of [0, 1] as const) {
      for (const normPreserving of [false, true]) {
        const [rows, cols] = axis === 0 ? [17, 21] : [9, 17];
        const dModel = axis === 0 ? rows : cols;
        const spec: ProjectionSpec = { rows, cols, dModelAxis: axis, basis: orthonormalBasis(2, dModel, random), rank: 2, alpha: 1, normPreserving };
        const original = Float64Array.from({ length: rows * cols }, () => roundToDtype(0.05 * gaussian(random), dtype));
        original[5] = Infinity;
        original[3 * cols + 8] = NaN;
        cases.push({ job: { name: `axis${axis}${normPreserving ? ".np" : ""}`, offset: 0, dtype, ...spec }, spec, original });
      }
    }
    const inputPath = join(dir, `nonfinite-${dtype}.bin`);
    const outputPath = join(dir, `nonfinite-${dtype}.out.bin`);
    writeFileSync(inputPath, layOut(cases, random));
    const tensors = cases.map((c) => c.job);
    await applyShard({ inputPath, outputPath, tensors });
    const result = await verifyShard({ originalPath: inputPath, modifiedPath: outputPath, tensors });
    const output = new Uint8Array(readFileSync(outputPath));
    for (const [i, { job }] of cases.entries()) {
      const size = ELEMENT_BYTES[dtype];
      const values = decodeElements(output.subarray(job.offset, job.offset + job.rows * job.cols * size), dtype);
      const nonFinite = values.filter((value, e) => !Number.isFinite(value) || !Number.isFinite(cases[i].original[e])).length;
      assert.equal(result.tensors[i].nonFiniteOriginal, 2, `${dtype} ${job.name}: one Inf and one NaN in the original`);
      assert.equal(result.tensors[i].firstNonFiniteOriginal, 5, `${dtype} ${job.name}`);
      assert.equal(result.tensors[i].nonFinite, nonFinite, `${dtype} ${job.name}: every non-finite element is counted`);
      assert.equal(result.tensors[i].mismatches, nonFinite, `${dtype} ${job.name}: and each is a mismatch`);
    }
    // A vector that holds Inf or NaN projects to non-finite values: replacing one by a finite number fails.
    const changed = new Uint8Array(readFileSync(outputPath));
    const target = cases[0].job;
    const size = ELEMENT_BYTES[dtype];
    const at = target.offset + 5 * size;
    changed.set(encodeElements([1], dtype), at);
    writeFileSync(outputPath, changed);
    const rejected = await verifyShard({ originalPath: inputPath, modifiedPath: outputPath, tensors });
    assert.equal(rejected.tensors[0].nonFiniteOriginal, 2, dtype);
    assert.equal(rejected.tensors[0].firstMismatchIndex, 5, dtype);
  }
});
