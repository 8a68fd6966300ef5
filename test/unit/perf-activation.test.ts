/**
 * The MLP activation of every forward table (siluMul: silu(gate) · up) against fp64 silu, element by element:
 * a dense sweep over [−120, 120], random normals of several scales, powers of two down to the subnormals, and the
 * special values. The SIMD tables replace libm's expf with a polynomial, so the bound is in ulp of the exactly
 * rounded result, and the lengths are not multiples of any vector width, so the masked and padded tails run.
 * Each table is chosen once per process (ABLITERATE_KERNELS caps it), so each runs in a child process.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { seededRandom, ulpDistance } from "../helpers/reference-projection.js";

const here = dirname(fileURLToPath(import.meta.url));

/** Exact silu in fp64 (exp(−x) overflowing to Infinity gives −0, the rounded value). */
function exactSilu(x: number): number {
  return x / (1 + Math.exp(-x));
}

function inputs(): Float32Array {
  const values: number[] = [];
  for (let x = -120; x <= 120; x += 0.0137) values.push(x);
  const random = seededRandom(7);
  for (const scale of [1e-3, 1, 4, 30]) {
    for (let i = 0; i < 2001; i += 1) {
      const u = Math.max(random(), 1e-12);
      values.push(scale * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random()));
    }
  }
  for (let e = -149; e <= 127; e += 1) values.push(2 ** e, -(2 ** e));
  values.push(0, -0, 87.3, -87.3, -88.8, -103.9, -104, -108.5, -109, -110, -110.5, 3.4e38, -3.4e38);
  return Float32Array.from(values);
}

function runChild(simd: string, gate: Float32Array, up: Float32Array | null): { kernels: string; out: Float32Array } {
  const script = `
    import { runtimeInfo, siluMul } from ${JSON.stringify(join(here, "..", "..", "lib", "native", "addon.js"))};
    import { readFileSync } from "node:fs";
    const [gate, up] = JSON.parse(readFileSync(0, "utf8")).map((b) => (b === null ? null : new Float32Array(Uint8Array.from(Buffer.from(b, "base64")).buffer)));
    const out = siluMul(gate, up);
    process.stdout.write(JSON.stringify({ kernels: runtimeInfo().kernels.forward, out: Buffer.from(out.buffer).toString("base64") }));
  `;
  const encode = (a: Float32Array | null) => (a === null ? null : Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64"));
  const stdout = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, ABLITERATE_KERNELS: simd },
    input: JSON.stringify([encode(gate), encode(up)]),
    maxBuffer: 64 * 1024 * 1024,
    encoding: "utf8",
  });
  const parsed = JSON.parse(stdout) as { kernels: string; out: string };
  return { kernels: parsed.kernels, out: new Float32Array(Uint8Array.from(Buffer.from(parsed.out, "base64")).buffer) };
}

/** Worst ulp distance of out from the rounded fp64 reference over finite inputs; asserts the special values. */
function check(name: string, gate: Float32Array, up: Float32Array | null, out: Float32Array): number {
  let worst = 0;
  let worstAt = 0;
  for (let i = 0; i < gate.length; i += 1) {
    const reference = Math.fround(exactSilu(gate[i]) * (up ? up[i] : 1));
    if (gate[i] < -88) {
      // exp(−x) overflows fp32 here: libm's expf (the scalar table, and torch's x / (1 + exp(−x))) gives −0, the
      // SIMD tables the true value; both are below 1e-36.
      assert.ok(Math.abs(out[i] - reference) <= 1e-36, `${name}: silu(${gate[i]}) = ${out[i]}, exact ${reference}`);
      continue;
    }
    const distance = ulpDistance(out[i], reference, "F32");
    if (distance > worst) [worst, worstAt] = [distance, i];
  }
  assert.ok(worst <= 4, `${name}: ${worst.toFixed(2)} ulp at x = ${gate[worstAt]} (got ${out[worstAt]})`);
  return worst;
}

test("siluMul of every forward table is within 4 ulp of fp64 silu, subnormals and tails included", () => {
  const gate = inputs();
  const random = seededRandom(11);
  const up = Float32Array.from(gate, () => (random() - 0.5) * 8);
  const ran = new Set<string>();
  for (const simd of ["scalar", "avx2", "avx512"]) {
    const plain = runChild(simd, gate, null);
    check(`${plain.kernels} silu`, gate, null, plain.out);
    const gated = runChild(simd, gate, up);
    check(`${gated.kernels} silu·up`, gate, up, gated.out);
    ran.add(plain.kernels);

    // Special values: NaN propagates, +inf stays, −inf gives NaN as torch's x / (1 + exp(−x)) does, ±0 kept.
    const special = Float32Array.from([NaN, Infinity, -Infinity, 0, -0, 1, -1, 5, -5, 20, -20, 100, -60]);
    const s = runChild(simd, special, null).out;
    assert.ok(Number.isNaN(s[0]), `${plain.kernels}: silu(NaN) = ${s[0]}`);
    assert.equal(s[1], Infinity);
    assert.ok(Number.isNaN(s[2]), `${plain.kernels}: silu(-inf) = ${s[2]}`);
    assert.ok(Object.is(s[3], 0) && Object.is(s[4], -0), `${plain.kernels}: silu(±0) = ${s[3]}, ${s[4]}`);
    for (let i = 5; i < special.length; i += 1) {
      assert.ok(ulpDistance(s[i], Math.fround(exactSilu(special[i])), "F32") <= 4, `${plain.kernels}: silu(${special[i]}) = ${s[i]}`);
    }
  }
  assert.ok(ran.has("scalar"), `ran: ${[...ran].join(", ")}`);
});

/** expShifted(values, shift) of the table ABLITERATE_KERNELS caps at `simd`, in a child process. */
function runExpChild(simd: string, values: Float32Array, shift: number): { kernels: string; out: Float32Array; sum: number } {
  const script = `
    import { runtimeInfo, expShifted } from ${JSON.stringify(join(here, "..", "..", "lib", "native", "addon.js"))};
    import { readFileSync } from "node:fs";
    const [values, shift] = JSON.parse(readFileSync(0, "utf8"));
    const result = expShifted(new Float32Array(Uint8Array.from(Buffer.from(values, "base64")).buffer), shift);
    process.stdout.write(JSON.stringify({ kernels: runtimeInfo().kernels.forward, out: Buffer.from(result.values.buffer).toString("base64"), sum: result.sum }));
  `;
  const stdout = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, ABLITERATE_KERNELS: simd },
    input: JSON.stringify([Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString("base64"), shift]),
    maxBuffer: 64 * 1024 * 1024,
    encoding: "utf8",
  });
  const parsed = JSON.parse(stdout) as { kernels: string; out: string; sum: number };
  return { kernels: parsed.kernels, out: new Float32Array(Uint8Array.from(Buffer.from(parsed.out, "base64")).buffer), sum: parsed.sum };
}

test("attention's softmax numerators of every forward table are within 4 ulp of fp64 exp, and their sum within 3e-5", () => {
  // Shifted scores t = value − shift ≤ 0: a dense sweep down to −120 (subnormal and zero results), random
  // scores, and a length that is no multiple of a vector width.
  const shift = 3.25;
  const t: number[] = [];
  for (let x = 0; x >= -120; x -= 0.0071) t.push(x);
  const random = seededRandom(13);
  for (let i = 0; i < 3001; i += 1) t.push(-random() * 30);
  const values = Float32Array.from(t, (x) => Math.fround(x + shift));
  const ran = new Set<string>();
  for (const simd of ["scalar", "avx2", "avx512"]) {
    const { kernels, out, sum } = runExpChild(simd, values, shift);
    ran.add(kernels);
    let worst = 0;
    let worstAt = 0;
    let exactSum = 0;
    for (let i = 0; i < values.length; i += 1) {
      const reference = Math.fround(Math.exp(Math.fround(values[i] - shift)));
      exactSum += out[i];
      if (reference < 1e-36) {
        assert.ok(Math.abs(out[i] - reference) <= 1e-36, `${kernels}: exp(${values[i] - shift}) = ${out[i]}, exact ${reference}`);
        continue;
      }
      const distance = ulpDistance(out[i], reference, "F32");
      if (distance > worst) [worst, worstAt] = [distance, i];
    }
    assert.ok(worst <= 4, `${kernels}: ${worst.toFixed(2)} ulp at t = ${values[worstAt] - shift} (got ${out[worstAt]})`);
    // Summed in fp32 over 20 000 terms: a sequential sum strays by about √n ulp (the scalar table: 6e-6).
    assert.ok(Math.abs(sum - exactSum) <= 3e-5 * exactSum, `${kernels}: sum ${sum}, exact sum of the outputs ${exactSum}`);

    // exp(0) is exactly 1; NaN stays NaN; −inf (a score of −inf) gives 0.
    const special = runExpChild(simd, Float32Array.from([shift, NaN, -Infinity, shift - 1]), shift).out;
    assert.equal(special[0], 1, `${kernels}: exp(0) = ${special[0]}`);
    assert.ok(Number.isNaN(special[1]), `${kernels}: exp(NaN) = ${special[1]}`);
    assert.equal(special[2], 0, `${kernels}: exp(-inf) = ${special[2]}`);
    assert.ok(ulpDistance(special[3], Math.fround(Math.exp(-1)), "F32") <= 4);
  }
  assert.ok(ran.has("scalar"), `ran: ${[...ran].join(", ")}`);
});
