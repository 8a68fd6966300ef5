/**
 * Backend parity in the style of ggml's test-backend-ops: the same shard and jobs through every projection backend
 * plug-in this build and machine can run, each output compared byte for byte with the CPU backend's. The CUDA
 * backend computes every element with the CPU kernels' operations in their order (the row reductions in the vector
 * width of the CPU table in use), so nothing short of identical bytes passes. Where no device exists the comparison
 * reports a skip with the reason; the fallback of an unmet request is checked there instead.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyShard, runtimeInfo, type NativeTensorJob } from "../../lib/native/addon.js";
import { encodeElements, gaussian, orthonormalBasis, roundToDtype, seededRandom, type FloatDtype } from "../helpers/reference-projection.js";

const DTYPES: FloatDtype[] = ["F32", "F16", "BF16", "F64"];
/** [rows, cols]: odd sizes for every SIMD tail (widths 1, 4, 8), wide rows across many lanes. */
const SHAPES: Record<0 | 1, [number, number][]> = {
  0: [[19, 13], [24, 301], [7, 1031]],
  1: [[11, 21], [9, 301], [5, 1027], [3, 8]],
};

interface Shard {
  path: string;
  size: number;
  tensors: NativeTensorJob[];
}

function buildShard(dir: string, dtype: FloatDtype, seed: number): Shard {
  const random = seededRandom(seed);
  const pieces: Uint8Array[] = [];
  let offset = 0;
  const push = (bytes: Uint8Array) => {
    pieces.push(bytes);
    offset += bytes.length;
  };
  push(Uint8Array.from({ length: 29 }, () => Math.floor(random() * 256)));
  const tensors: NativeTensorJob[] = [];
  for (const axis of [0, 1] as const) {
    for (const [rows, cols] of SHAPES[axis]) {
      for (const alpha of [1, 2, -0.5]) {
        for (const rank of [1, 3]) {
          for (const normPreserving of [false, true]) {
            const dModel = axis === 0 ? rows : cols;
            if (rank > dModel) continue;
            const values = Float64Array.from({ length: rows * cols }, () => roundToDtype(0.05 * gaussian(random), dtype));
            const name = `axis${axis}.${rows}x${cols}.alpha${alpha}.rank${rank}${normPreserving ? ".np" : ""}`;
            tensors.push({ name, offset, rows, cols, dtype, dModelAxis: axis, basis: orthonormalBasis(rank, dModel, random), rank, alpha, normPreserving });
            push(encodeElements(values, dtype));
          }
        }
      }
    }
  }
  const bytes = new Uint8Array(offset);
  let at = 0;
  for (const piece of pieces) {
    bytes.set(piece, at);
    at += piece.length;
  }
  const path = join(dir, `input-${dtype}.bin`);
  writeFileSync(path, bytes);
  return { path, size: offset, tensors };
}

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "abl-parity-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const info = runtimeInfo();
const accelerators = info.backends.filter((backend) => backend.name !== "cpu");

/** Why a plug-in cannot be compared here, or undefined when it can. */
function skipReason(name: "cuda"): string | undefined {
  const backend = info.backends.find((b) => b.name === name);
  if (!backend) return `${name}: not compiled into this build (ABLITERATE_CUDA=OFF)`;
  if (backend.devices === 0) return `${name}: ${backend.reason ?? "no device"}`;
  return undefined;
}

for (const name of ["cuda"] as const) {
  test(`${name} backend: every tensor byte-identical to the CPU backend (4 dtypes, both orientations, ranks 1/3, α, norm-preserving, chunked)`, async (t) => {
    const reason = skipReason(name);
    if (reason) {
      t.skip(reason);
      return;
    }
    for (const [index, dtype] of DTYPES.entries()) {
      const shard = buildShard(dir, dtype, 300 + index);
      const cpuPath = join(dir, `cpu-${dtype}.bin`);
      const cpu = await applyShard({ inputPath: shard.path, outputPath: cpuPath, tensors: shard.tensors, backend: "cpu" });
      assert.equal(cpu.backend, "cpu");
      for (const chunkBytes of [undefined, 4096]) {
        const devicePath = join(dir, `${name}-${dtype}-${chunkBytes ?? "whole"}.bin`);
        const device = await applyShard({ inputPath: shard.path, outputPath: devicePath, tensors: shard.tensors, backend: name, chunkBytes });
        assert.equal(device.backend, name, device.backendFallback);
        assert.equal(device.backendFallback, undefined);
        const expected = readFileSync(cpuPath);
        const actual = readFileSync(devicePath);
        for (const tensor of shard.tensors) {
          const size = { F64: 8, F32: 4, F16: 2, BF16: 2 }[dtype];
          const range = [tensor.offset, tensor.offset + tensor.rows * tensor.cols * size] as const;
          assert.ok(expected.subarray(...range).equals(actual.subarray(...range)), `${dtype} ${tensor.name} (chunk ${chunkBytes ?? "whole"}) differs from the CPU`);
        }
        assert.ok(expected.equals(actual), `${dtype}: bytes outside the tensors differ`);
      }
    }
  });
}

test("a backend request that cannot be met runs on the CPU and says why; auto never fails; unknown names are refused", async (t) => {
  const shard = buildShard(dir, "F32", 400);
  const auto = await applyShard({ inputPath: shard.path, outputPath: join(dir, "auto.bin"), tensors: shard.tensors });
  const usable = accelerators.find((backend) => backend.devices > 0);
  assert.equal(auto.backend, process.env.ABLITERATE_BACKEND === "cpu" ? "cpu" : (usable?.name ?? "cpu"));
  assert.equal(auto.backendFallback, undefined);
  await assert.rejects(
    applyShard({ inputPath: shard.path, outputPath: join(dir, "bad.bin"), tensors: shard.tensors, backend: "tpu" as "cpu" }),
    (e: { message?: string }) => /backend must be auto, cpu or cuda/.test(e.message ?? ""),
  );
  const reason = skipReason("cuda");
  if (!reason) {
    t.skip("a CUDA device is present: the request is met (the parity test covers it)");
    return;
  }
  const fallback = await applyShard({ inputPath: shard.path, outputPath: join(dir, "fallback.bin"), tensors: shard.tensors, backend: "cuda" });
  assert.equal(fallback.backend, "cpu");
  assert.match(fallback.backendFallback ?? "", /^cuda: /);
  assert.ok(readFileSync(join(dir, "fallback.bin")).equals(readFileSync(join(dir, "auto.bin"))));
});
