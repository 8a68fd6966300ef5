/**
 * Why post-norm families need the γ-aware update, measured on the random Gemma-2 that transformers wrote for the
 * golden set: a writer's output y = W x reaches the residual as g ⊙ y / rms(y) (g = 1 + weight of the post-norm).
 * The r-component of that write is rᵀ(g ⊙ W x) / rms(W x).
 * - Projecting plain r out of W leaves a large part of it (33–54% per writer on this model; docs/architectures.md § Post-norm families).
 * - Projecting u = normalize(g ⊙ r) removes it exactly, because rᵀ(g ⊙ y) = (g ⊙ r)ᵀ y.
 * Our written BF16 weights are checked too (they differ from the fp64 ideal only by BF16 rounding).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readCheckpoint } from "../../lib/safetensors/read-checkpoint.js";
import { applyModel } from "../../lib/surgery/apply-model.js";
import { decodeTensor, drain, GOLDEN_DIRECTION, goldenModelDir, readGoldenManifest, readTensor } from "../helpers/family-fixtures.js";
import { makeRandom } from "../helpers/tiny-llama.js";

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((sum, value, i) => sum + value * b[i], 0);

/** y = W x for W [d, n] row-major. */
function multiply(w: Float64Array, d: number, x: Float64Array): Float64Array {
  const n = x.length;
  return Float64Array.from({ length: d }, (_, i) => dot(w.subarray(i * n, (i + 1) * n), x));
}

/** RMS over samples of rᵀ(g ⊙ W x) / rms(W x): the r-part of what the block adds to the residual. */
function rWrite(w: Float64Array, d: number, g: Float64Array, r: Float64Array, samples: Float64Array[]): number {
  let sum = 0;
  for (const x of samples) {
    const y = multiply(w, d, x);
    const rms = Math.sqrt(dot(y, y) / d);
    sum += (dot(r, Float64Array.from(y, (value, i) => g[i] * value)) / rms) ** 2;
  }
  return Math.sqrt(sum / samples.length);
}

function projectOut(w: Float64Array, d: number, u: Float64Array): Float64Array {
  const n = w.length / d;
  const out = Float64Array.from(w);
  for (let j = 0; j < n; j += 1) {
    let c = 0;
    for (let i = 0; i < d; i += 1) c += u[i] * w[i * n + j];
    for (let i = 0; i < d; i += 1) out[i * n + j] -= c * u[i];
  }
  return out;
}

test("gemma2 post-norms: plain r leaves a large r-write, the γ-aware update leaves none", async (t) => {
  const golden = readGoldenManifest().families.gemma2;
  const model = goldenModelDir("gemma2");
  const r = decodeTensor(await readTensor(GOLDEN_DIRECTION, "direction"));
  const d = r.length;
  const random = makeRandom(5);
  const samples = Array.from({ length: 64 }, () => Float64Array.from({ length: 64 }, () => random() * 2 - 1));
  const root = mkdtempSync(join(tmpdir(), "abl-postnorm-"));
  try {
    const out = join(root, "out");
    await drain(applyModel({ modelDir: model, outDir: out, direction: GOLDEN_DIRECTION, threads: 1 }));
    const original = await readCheckpoint(model);
    const edited = await readCheckpoint(out);
    let worstPlain = Infinity;
    for (const [name, target] of Object.entries(golden.targets)) {
      if (!target.post_norm) continue;
      const location = original.tensorLocations.get(name)!;
      const w = decodeTensor(await readTensor(location.shard.path, name));
      const n = w.length / d;
      const x = samples.map((sample) => sample.subarray(0, n));
      const g = Float64Array.from(decodeTensor(await readTensor(original.tensorLocations.get(target.post_norm)!.shard.path, target.post_norm)), (value) => 1 + value);
      const gr = Float64Array.from(r, (value, i) => g[i] * value);
      const u = Float64Array.from(gr, (value) => value / Math.sqrt(dot(gr, gr)));

      const before = rWrite(w, d, g, r, x);
      const plain = rWrite(projectOut(w, d, r), d, g, r, x) / before;
      const gammaAware = rWrite(projectOut(w, d, u), d, g, r, x) / before;
      const written = rWrite(decodeTensor(await readTensor(edited.tensorLocations.get(name)!.shard.path, name)), d, g, r, x) / before;
      t.diagnostic(`${name}: r-write left by plain r ${(100 * plain).toFixed(1)}%, γ-aware (fp64) ${gammaAware.toExponential(1)}, our BF16 output ${(100 * written).toFixed(2)}%`);
      worstPlain = Math.min(worstPlain, plain);
      assert.ok(plain > 0.05, `${name}: plain r should leave a visible r-write, left ${plain}`);
      assert.ok(gammaAware < 1e-12, `${name}: γ-aware leaves ${gammaAware}`);
      assert.ok(written < 0.02, `${name}: our written weights leave ${written} (BF16 rounding only)`);
    }
    assert.ok(Number.isFinite(worstPlain), "gemma2 has post-norm writers");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
