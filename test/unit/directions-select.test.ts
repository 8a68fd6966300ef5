/**
 * Choosing bases from a direction file: per-layer stream mapping, projected / biprojected orthogonality, rank-k,
 * bare matrices, GGUF absent rows, and the errors for each misuse. Pure TypeScript, checked against closed forms.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DirectionFile } from "../../lib/direction-files/direction-file.js";
import { selectBasis, type SelectBasisParams } from "../../lib/direction-files/select-basis.js";
import { parseModelConfig } from "../../lib/arch/model-config.js";
import { AbliterateError, ErrorCodes } from "../../lib/errors.js";
import { readCheckpoint } from "../../lib/safetensors/read-checkpoint.js";
import { planSurgery } from "../../lib/surgery/plan-surgery.js";
import { llamaLikeTensors, writeSyntheticCheckpoint } from "../helpers/family-fixtures.js";
import { makeRandom } from "../helpers/tiny-llama.js";

const D = 12;
const LAYERS = 3;

function gaussianRows(count: number, seed: number): Float64Array[] {
  const random = makeRandom(seed);
  return Array.from({ length: count }, () => Float64Array.from({ length: D }, () => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random())));
}

function file(kind: DirectionFile["kind"], rows: Float64Array[], extra: Partial<DirectionFile> = {}): DirectionFile {
  return { path: "/x/dir.safetensors", sha256: "0", format: "safetensors", kind, rows, dimension: D, ...extra };
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((sum, value, i) => sum + value * b[i], 0);
const norm = (a: ArrayLike<number>) => Math.sqrt(dot(a, a));
const normalize = (a: ArrayLike<number>) => Float64Array.from(a, (value) => value / norm(a));

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance = 1e-14, label = ""): void {
  assert.equal(actual.length, expected.length, label);
  for (let i = 0; i < actual.length; i += 1) assert.ok(Math.abs(actual[i] - expected[i]) <= tolerance, `${label}[${i}]: ${actual[i]} vs ${expected[i]}`);
}

function select(params: Partial<SelectBasisParams> & { file: DirectionFile }) {
  return selectBasis({ hiddenSize: D, numLayers: LAYERS, ...params });
}

function rejects(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => error instanceof AbliterateError && error.code === code && pattern.test(error.message) && error.message.includes("/x/dir.safetensors"));
}

test("per-layer: the embeddings use row 0 and layer i's writers row i + 1 (heretic's convention)", async () => {
  const rows = gaussianRows(LAYERS + 1, 1);
  const basis = select({ file: file("directions", rows), perLayer: true });
  assert.equal(basis.byStream!.length, LAYERS + 1);
  basis.byStream!.forEach((stream, i) => assertClose(stream!, normalize(rows[i]), 1e-15, `stream ${i}`));

  // Through the planner: each tensor's job basis is its stream's row.
  const dir = mkdtempSync(join(tmpdir(), "abl-sel-"));
  try {
    const config = { model_type: "llama", hidden_size: D, num_hidden_layers: LAYERS };
    writeSyntheticCheckpoint({ dir, config, tensors: llamaLikeTensors({ prefix: "model.", hidden: D, layers: LAYERS }) });
    const plan = await planSurgery({ checkpoint: await readCheckpoint(dir), config: parseModelConfig(config, "c"), basis, options: { scale: 1 } });
    assert.equal(plan.perLayer, true);
    for (const tensor of plan.tensors) {
      const stream = tensor.layer === null ? 0 : tensor.layer + 1;
      assert.equal(tensor.stream, stream, tensor.name);
      assertClose(tensor.jobs[0].basis, normalize(rows[stream]), 1e-15, tensor.name);
    }
    assert.ok(plan.notes.some((note) => note.includes("row i + 1")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("projected: r ← normalize(r − (r·ĥ)ĥ) at the direction's layer; the basis is ⟂ ĥ", () => {
  const rows = gaussianRows(LAYERS + 1, 2);
  const harmless = gaussianRows(LAYERS + 1, 3);
  const basis = select({ file: file("directions", rows, { harmlessMean: harmless }), directionLayer: 2, projection: "projected" });
  const h = normalize(harmless[2]);
  const r = rows[2];
  const expected = normalize(Float64Array.from(r, (value, i) => value - dot(r, h) * h[i]));
  assertClose(basis.basis, expected, 1e-15);
  assert.ok(Math.abs(dot(basis.basis, h)) < 1e-15);
  assert.equal(basis.source.harmlessRow, 2);

  // A `direction` file: --direction-layer names the harmless row; a single-row harmless mean needs nothing.
  const one = select({ file: file("direction", [r], { harmlessMean: harmless }), directionLayer: 1, projection: "projected" });
  assert.ok(Math.abs(dot(one.basis, harmless[1])) < 1e-14);
  const global = select({ file: file("direction", [r], { harmlessMean: [harmless[0]] }), projection: "projected" });
  assert.ok(Math.abs(dot(global.basis, harmless[0])) < 1e-14);
  rejects(() => select({ file: file("direction", [r], { harmlessMean: harmless }), projection: "projected" }), ErrorCodes.INVALID_ARGUMENT, /pass --direction-layer i/);
  rejects(() => select({ file: file("direction", [r]), projection: "projected" }), ErrorCodes.INVALID_ARGUMENT, /needs a "harmless_mean"/);
  rejects(() => select({ file: file("direction", [harmless[0]], { harmlessMean: [harmless[0]] }), projection: "projected" }), ErrorCodes.DIRECTION_DEGENERATE, /parallel to harmless_mean row 0/);
});

test("biprojected: one basis per stream, each ⟂ that stream's ĥ; rank-k stays orthonormal", () => {
  const subspace = gaussianRows(2, 4);
  const harmless = gaussianRows(LAYERS + 1, 5);
  const basis = select({ file: file("subspace", subspace, { harmlessMean: harmless }), projection: "biprojected" });
  assert.equal(basis.rank, 2);
  basis.byStream!.forEach((stream, i) => {
    const h = normalize(harmless[i]);
    const [a, b] = [stream!.subarray(0, D), stream!.subarray(D)];
    assert.ok(Math.abs(dot(a, h)) < 1e-14 && Math.abs(dot(b, h)) < 1e-14, `stream ${i} ⟂ ĥ`);
    assert.ok(Math.abs(norm(a) - 1) < 1e-14 && Math.abs(norm(b) - 1) < 1e-14 && Math.abs(dot(a, b)) < 1e-14, `stream ${i} orthonormal`);
  });
  rejects(() => select({ file: file("subspace", subspace, { harmlessMean: harmless.slice(1) }), projection: "biprojected" }), ErrorCodes.INVALID_ARGUMENT, /one per residual stream \(4\)/);
});

test("rank-k: the basis spans the given rows, orthonormal; dependent rows are refused", () => {
  const rows = gaussianRows(3, 6);
  const basis = select({ file: file("subspace", rows) });
  assert.equal(basis.rank, 3);
  for (let a = 0; a < 3; a += 1) for (let b = 0; b < 3; b += 1) assert.ok(Math.abs(dot(basis.basis.subarray(a * D, (a + 1) * D), basis.basis.subarray(b * D, (b + 1) * D)) - (a === b ? 1 : 0)) < 1e-14);
  // Each input row is reproduced exactly by its projection on the basis.
  for (const row of rows) {
    const coefficients = [0, 1, 2].map((k) => dot(row, basis.basis.subarray(k * D, (k + 1) * D)));
    assertClose(Float64Array.from({ length: D }, (_, i) => coefficients.reduce((sum, c, k) => sum + c * basis.basis[k * D + i], 0)), row, 1e-13);
  }
  const dependent = [rows[0], rows[1], Float64Array.from(rows[0], (value, i) => 2 * value - rows[1][i])];
  rejects(() => select({ file: file("subspace", dependent) }), ErrorCodes.DIRECTION_DEGENERATE, /direction 2 is linearly dependent/);
});

test("bare matrices: subspace by default, per-layer candidates when a layer is chosen, ambiguous at L+1 rows", () => {
  assert.equal(select({ file: file("matrix", gaussianRows(2, 7)) }).rank, 2);
  assert.equal(select({ file: file("matrix", gaussianRows(LAYERS + 1, 7)), directionLayer: 1 }).source.kind, "directions");
  assert.equal(select({ file: file("matrix", gaussianRows(LAYERS + 1, 7)), perLayer: true }).byStream!.length, LAYERS + 1);
  rejects(() => select({ file: file("matrix", gaussianRows(LAYERS + 1, 7)) }), ErrorCodes.INVALID_ARGUMENT, /matches the model's L\+1 = 4 residual streams/);
});

test("GGUF control vectors: absent rows are refused with the mapping; per-layer covers only present streams", () => {
  const rows = gaussianRows(LAYERS + 1, 8);
  const gguf = file("directions", rows, { format: "gguf", absentRows: new Set([0, 1]) });
  rejects(() => select({ file: gguf, directionLayer: 1 }), ErrorCodes.INVALID_ARGUMENT, /row 1 is absent .*direction\.N is row N \+ 1/);
  assertClose(select({ file: gguf, directionLayer: 3 }).basis, normalize(rows[3]), 1e-15);
  const perLayer = select({ file: gguf, perLayer: true });
  assert.deepEqual(perLayer.byStream!.map((stream) => stream !== undefined), [false, false, true, true]);
  // A control vector may stop early; a safetensors `directions` must cover every stream.
  assert.equal(select({ file: file("directions", rows.slice(0, 3), { format: "gguf", absentRows: new Set([0]) }), perLayer: true }).byStream![3], undefined);
  rejects(() => select({ file: file("directions", rows.slice(0, 3)), directionLayer: 1 }), ErrorCodes.INVALID_ARGUMENT, /has 3 rows but the model has 3 layers, so 4 residual streams/);
});

test("misuse is refused: --per-layer without a directions file or with --direction-layer; wrong width", () => {
  const rows = gaussianRows(LAYERS + 1, 9);
  rejects(() => select({ file: file("direction", [rows[0]]), perLayer: true }), ErrorCodes.INVALID_ARGUMENT, /--per-layer needs a "directions"/);
  rejects(() => select({ file: file("directions", rows), perLayer: true, directionLayer: 1 }), ErrorCodes.INVALID_ARGUMENT, /drop --direction-layer/);
  rejects(() => select({ file: file("directions", rows) }), ErrorCodes.INVALID_ARGUMENT, /choose one with --direction-layer 0\.\.3 or use --per-layer/);
  rejects(() => select({ file: file("direction", [rows[0]]), directionLayer: 1 }), ErrorCodes.INVALID_ARGUMENT, /applies only to a "directions"/);
  rejects(() => selectBasis({ file: file("direction", [rows[0]]), hiddenSize: D + 1 }), ErrorCodes.DIRECTION_DIMENSION, /dimension 12 but the model's hidden_size is 13/);
});

test("per-layer with absent streams: the planner names the writer and how to narrow the edit", async () => {
  const rows = gaussianRows(LAYERS + 1, 10);
  const basis = select({ file: file("directions", rows, { format: "gguf", absentRows: new Set([0, 1]) }), perLayer: true });
  const dir = mkdtempSync(join(tmpdir(), "abl-sel-"));
  try {
    const config = { model_type: "llama", hidden_size: D, num_hidden_layers: LAYERS };
    writeSyntheticCheckpoint({ dir, config, tensors: llamaLikeTensors({ prefix: "model.", hidden: D, layers: LAYERS }) });
    const checkpoint = await readCheckpoint(dir);
    await assert.rejects(
      planSurgery({ checkpoint, config: parseModelConfig(config, "c"), basis, options: { scale: 1 } }),
      /tensor "model\.embed_tokens\.weight" writes residual stream 0, for which the direction file has no direction; narrow the edit with --layers and --targets/,
    );
    const narrowed = await planSurgery({ checkpoint, config: parseModelConfig(config, "c"), basis, options: { scale: 1, layers: "1:", targets: ["attn", "mlp"] } });
    assert.deepEqual([...new Set(narrowed.tensors.map((t) => t.stream))].sort(), [2, 3]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
