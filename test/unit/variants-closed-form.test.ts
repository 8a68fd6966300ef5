/**
 * Each surgery variant against a closed form, end to end through applyModel (native kernels) on F64 checkpoints,
 * where rounding is ~1e-16 and the identities can be checked tightly:
 * - α = 2 (reflection) applied twice is the identity, and once flips the r-component;
 * - rank-k with orthonormal rows equals k successive rank-1 edits;
 * - norm-preserving keeps every written vector's norm and still removes r;
 * - projected: the harmless direction's write is untouched (ĥᵀW′ = ĥᵀW) and the projected r is removed;
 * - negative α amplifies: rᵀW′ = (1 − α) rᵀW, and nothing orthogonal to r changes;
 * - per-layer / biprojected: each writer is edited with its own stream's direction.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { orthonormalizeRows } from "../../lib/direction-files/orthonormalize.js";
import { readCheckpoint } from "../../lib/safetensors/read-checkpoint.js";
import { applyModel, type ApplyModelParams } from "../../lib/surgery/apply-model.js";
import { decodeTensor, drain, readTensor } from "../helpers/family-fixtures.js";
import { makeRandom, writeDirectionFile, writeTinyLlama } from "../helpers/tiny-llama.js";

const D = 16;
const LAYERS = 2;
let root: string;
let model: string;
let outputs = 0;

before(() => {
  root = mkdtempSync(join(tmpdir(), "abl-variants-"));
  model = join(root, "model");
  writeTinyLlama({ dir: model, dtype: "F64", tied: false, hidden: D, layers: LAYERS, shards: 2, seed: 99 });
});
after(() => rmSync(root, { recursive: true, force: true }));

function gaussian(count: number, seed: number): Float64Array[] {
  const random = makeRandom(seed);
  return Array.from({ length: count }, () => Float64Array.from({ length: D }, () => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random())));
}
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((sum, value, i) => sum + value * b[i], 0);
const norm = (a: ArrayLike<number>) => Math.sqrt(dot(a, a));
const unit = (a: ArrayLike<number>) => Float64Array.from(a, (value) => value / norm(a));

function directionFile(tensors: Record<string, Float64Array[]>, shapes: Record<string, "vector" | "matrix">): string {
  const path = join(root, `direction-${outputs++}.safetensors`);
  writeDirectionFile(
    path,
    Object.entries(tensors).map(([name, rows]) => ({
      name,
      dtype: "F64" as const,
      shape: shapes[name] === "vector" ? [D] : [rows.length, D],
      values: rows.flatMap((row) => [...row]),
    })),
  );
  return path;
}

async function apply(params: Omit<ApplyModelParams, "outDir" | "modelDir"> & { modelDir?: string }): Promise<string> {
  const outDir = join(root, `out-${outputs++}`);
  await drain(applyModel({ modelDir: model, ...params, outDir, threads: 1 }));
  return outDir;
}

interface Writer {
  name: string;
  layer: number | null;
  /** The vectors this tensor writes into the residual stream: columns of [d, in], rows of [n, d]. */
  vectors: Float64Array[];
}

const TARGET = /embed_tokens\.weight$|o_proj\.weight$|down_proj\.weight$/;

async function writers(dir: string): Promise<Writer[]> {
  const checkpoint = await readCheckpoint(dir);
  const result: Writer[] = [];
  for (const [name, { shard }] of checkpoint.tensorLocations) {
    if (!TARGET.test(name)) continue;
    const tensor = await readTensor(shard.path, name);
    const values = decodeTensor(tensor);
    const [rows, cols] = tensor.shape;
    const linear = !name.endsWith("embed_tokens.weight");
    const vectors = linear
      ? Array.from({ length: cols }, (_, j) => Float64Array.from({ length: rows }, (_, i) => values[i * cols + j]))
      : Array.from({ length: rows }, (_, i) => values.slice(i * cols, (i + 1) * cols));
    const layer = /layers\.(\d+)\./.exec(name);
    result.push({ name, layer: layer ? Number(layer[1]) : null, vectors });
  }
  return result.sort((a, b) => a.name.localeCompare(b.name));
}

/** Pairs writers of two checkpoints and calls check(before, after) on every written vector. */
async function eachVector(beforeDir: string, afterDir: string, check: (before: Float64Array, after: Float64Array, writer: Writer) => void): Promise<void> {
  const [a, b] = [await writers(beforeDir), await writers(afterDir)];
  assert.deepEqual(a.map((w) => w.name), b.map((w) => w.name));
  a.forEach((writer, index) => writer.vectors.forEach((vector, j) => check(vector, b[index].vectors[j], writer)));
}

const close = (actual: number, expected: number, scale: number, label: string, tolerance = 1e-13) =>
  assert.ok(Math.abs(actual - expected) <= tolerance * Math.max(1, scale), `${label}: ${actual} vs ${expected}`);

test("reflection (α = 2) flips the r-component, and applied twice is the identity", async () => {
  const r = unit(gaussian(1, 1)[0]);
  const direction = directionFile({ direction: [r] }, { direction: "vector" });
  const once = await apply({ direction, scale: 2 });
  const twice = await apply({ direction, scale: 2, modelDir: once });
  await eachVector(model, once, (w, w1, writer) => close(dot(r, w1), -dot(r, w), norm(w), `${writer.name} rᵀw′ = −rᵀw`));
  await eachVector(model, twice, (w, w2, writer) => w.forEach((value, i) => close(w2[i], value, norm(w), `${writer.name} twice`)));
});

test("rank-k with orthonormal rows equals k successive rank-1 edits", async () => {
  const basis = orthonormalizeRows(gaussian(3, 2), "test");
  const rows = [0, 1, 2].map((k) => basis.slice(k * D, (k + 1) * D));
  const subspace = await apply({ direction: directionFile({ subspace: rows }, { subspace: "matrix" }) });
  let successive = model;
  for (const row of rows) successive = await apply({ direction: directionFile({ direction: [row] }, { direction: "vector" }), modelDir: successive });
  const [a, b] = [await writers(subspace), await writers(successive)];
  a.forEach((writer, index) =>
    writer.vectors.forEach((vector, j) => vector.forEach((value, i) => close(value, b[index].vectors[j][i], norm(vector), `${writer.name}[${j}]`))),
  );
  await eachVector(model, subspace, (_w, w1, writer) => rows.forEach((row, k) => close(dot(row, w1), 0, norm(w1), `${writer.name} ⟂ row ${k}`)));
});

test("norm-preserving keeps every written vector's norm and still removes r", async () => {
  const r = unit(gaussian(1, 3)[0]);
  const out = await apply({ direction: directionFile({ direction: [r] }, { direction: "vector" }), normPreserving: true });
  await eachVector(model, out, (w, w1, writer) => {
    close(norm(w1), norm(w), norm(w), `${writer.name} norm`);
    close(dot(r, w1), 0, norm(w), `${writer.name} rᵀw′`);
    // Closed form (docs/surgery.md, norm-preserving in docs/architectures.md § Variants): w′ = ‖w‖ · normalize(w − (ŵ·r) r).
    const projected = Float64Array.from(w, (value, i) => value - dot(w, r) * r[i]);
    const expected = Float64Array.from(projected, (value) => (value * norm(w)) / norm(projected));
    w1.forEach((value, i) => close(value, expected[i], norm(w), `${writer.name} closed form`));
  });
});

test("projected: ĥ's write is untouched and the projected direction is removed", async () => {
  const rows = gaussian(LAYERS + 1, 4);
  const harmless = gaussian(LAYERS + 1, 5);
  const direction = directionFile({ directions: rows, harmless_mean: harmless }, { directions: "matrix", harmless_mean: "matrix" });
  const out = await apply({ direction, directionLayer: 1, projection: "projected" });
  const h = unit(harmless[1]);
  const u = unit(Float64Array.from(rows[1], (value, i) => value - dot(rows[1], h) * h[i]));
  await eachVector(model, out, (w, w1, writer) => {
    close(dot(h, w1), dot(h, w), norm(w), `${writer.name} ĥᵀw′ = ĥᵀw`);
    close(dot(u, w1), 0, norm(w), `${writer.name} uᵀw′`);
  });
});

test("negative α amplifies along r and changes nothing orthogonal to it", async () => {
  const r = unit(gaussian(1, 6)[0]);
  const out = await apply({ direction: directionFile({ direction: [r] }, { direction: "vector" }), scale: -1.5 });
  await eachVector(model, out, (w, w1, writer) => {
    close(dot(r, w1), 2.5 * dot(r, w), norm(w), `${writer.name} rᵀw′ = (1 − α) rᵀw`);
    w.forEach((value, i) => close(w1[i] - dot(r, w1) * r[i], value - dot(r, w) * r[i], norm(w), `${writer.name} orthogonal part`));
  });
});

test("per-layer and biprojected: every writer is edited with the direction of the stream it writes into", async () => {
  const rows = gaussian(LAYERS + 1, 7);
  const harmless = gaussian(LAYERS + 1, 8);
  const perLayer = await apply({ direction: directionFile({ directions: rows }, { directions: "matrix" }), perLayer: true });
  await eachVector(model, perLayer, (w, w1, writer) => {
    const stream = writer.layer === null ? 0 : writer.layer + 1;
    close(dot(unit(rows[stream]), w1), 0, norm(w), `${writer.name} ⟂ row ${stream}`);
  });
  const r = unit(gaussian(1, 9)[0]);
  const bi = await apply({ direction: directionFile({ direction: [r], harmless_mean: harmless }, { direction: "vector", harmless_mean: "matrix" }), projection: "biprojected" });
  await eachVector(model, bi, (w, w1, writer) => {
    const h = unit(harmless[writer.layer === null ? 0 : writer.layer + 1]);
    close(dot(h, w1), dot(h, w), norm(w), `${writer.name} ĥ_streamᵀw′ = ĥ_streamᵀw`);
    const u = unit(Float64Array.from(r, (value, i) => value - dot(r, h) * h[i]));
    close(dot(u, w1), 0, norm(w), `${writer.name} u_streamᵀw′`);
  });
});
