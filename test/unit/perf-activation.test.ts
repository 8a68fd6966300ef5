/**
 * The per-element kernels of every forward table, the MLP activations (activationMul: f(gate) · up, f = silu,
 * gelu_tanh, gelu), attention's softmax numerators and Gemma 2's soft-capping, against fp64
 * references (test/helpers/reference-gelu.ts), element by element: a dense sweep over [−120, 120], random normals
 * of several scales, powers of two down to the subnormals, and the special values. The SIMD tables replace libm with
 * polynomials, so the bounds are in ulp of the exactly rounded result, and the lengths are not multiples of any
 * vector width, so the masked and padded tails run. Each table is chosen once per process (ABLITERATE_KERNELS caps
 * it), so each runs in a child process.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { NativeActivation } from "../../lib/native/addon.js";
import { exactGelu, exactGeluTanh, exactSilu, geluTanhArgument, scaledErfc } from "../helpers/reference-gelu.js";
import { seededRandom, ulpDistance } from "../helpers/reference-projection.js";

const here = dirname(fileURLToPath(import.meta.url));

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

function runChild(simd: string, activation: NativeActivation, gate: Float32Array, up: Float32Array | null): { kernels: string; out: Float32Array } {
  const script = `
    import { runtimeInfo, activationMul } from ${JSON.stringify(join(here, "..", "..", "lib", "native", "addon.js"))};
    import { readFileSync } from "node:fs";
    const [activation, gate, up] = JSON.parse(readFileSync(0, "utf8"));
    const decode = (b) => (b === null ? null : new Float32Array(Uint8Array.from(Buffer.from(b, "base64")).buffer));
    const out = activationMul(activation, decode(gate), decode(up));
    process.stdout.write(JSON.stringify({ kernels: runtimeInfo().kernels.forward, out: Buffer.from(out.buffer).toString("base64") }));
  `;
  const encode = (a: Float32Array | null) => (a === null ? null : Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("base64"));
  const stdout = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, ABLITERATE_KERNELS: simd },
    input: JSON.stringify([activation, encode(gate), encode(up)]),
    maxBuffer: 64 * 1024 * 1024,
    encoding: "utf8",
  });
  const parsed = JSON.parse(stdout) as { kernels: string; out: string };
  return { kernels: parsed.kernels, out: new Float32Array(Uint8Array.from(Buffer.from(parsed.out, "base64")).buffer) };
}

interface ActivationCase {
  activation: NativeActivation;
  exact: (x: number) => number;
  /**
   * The ulp bound of a table's f(x) (the product with up adds at most 1), or null where an absolute bound judges
   * that input instead (absoluteOk).
   */
  ulpBound: (x: number, kernels: string) => number | null;
  /** Where ulpBound is null: whether |out − exact| is within what that table's formula can give. */
  absoluteOk?: (x: number, out: number, exact: number) => boolean;
}

/**
 * torch's own fp32 formulas, which the scalar table follows through libm, lose every digit of 1 + tanh(inner) and
 * 1 + erf(x/√2) for x far below 0 (their absolute error is about |x| · 2⁻²⁴ there); the SIMD tables do not.
 */
const torchFormulaOk = (x: number, out: number, exact: number) => Math.abs(out - exact) <= Math.abs(x) * 2 ** -23 + 2 ** -149;

const CASES: ActivationCase[] = [
  {
    activation: "silu",
    exact: exactSilu,
    // Past x = −88, exp(−x) overflows fp32: libm's expf (the scalar table, and torch's x / (1 + exp(−x))) gives −0,
    // the SIMD tables the true value; both are below 1e-36.
    ulpBound: (x) => (x < -88 ? null : 4),
    absoluteOk: (_x, out, exact) => Math.abs(out - exact) <= 1e-36,
  },
  {
    activation: "gelu_tanh",
    exact: exactGeluTanh,
    // The SIMD tables round inner as torch does (about 1.5 ulp of it); sigmoid(u)'s relative error then grows by
    // |u| · (1 − sigmoid(u)), which is |u| for x < 0 and vanishes above.
    ulpBound: (x, kernels) => {
      if (kernels === "scalar") return x < -1 ? null : 4;
      const u = geluTanhArgument(x);
      return 4 + 3 * Math.abs(u) * (1 - 1 / (1 + Math.exp(-u)));
    },
    absoluteOk: torchFormulaOk,
  },
  {
    activation: "gelu",
    exact: exactGelu,
    ulpBound: (x, kernels) => (kernels === "scalar" && x < -1 ? null : 6),
    absoluteOk: torchFormulaOk,
  },
];

/** Worst ulp distance of out from the rounded fp64 reference over the inputs an ulp bound judges. */
function check(name: string, c: ActivationCase, kernels: string, gate: Float32Array, up: Float32Array | null, out: Float32Array): number {
  let worst = 0;
  let worstAt = 0;
  for (let i = 0; i < gate.length; i += 1) {
    const exact = c.exact(gate[i]) * (up ? up[i] : 1);
    const reference = Math.fround(exact);
    const bound = c.ulpBound(gate[i], kernels);
    if (bound === null) {
      assert.ok(c.absoluteOk!(gate[i] * (up ? Math.abs(up[i]) : 1), out[i], exact), `${name}: f(${gate[i]}) = ${out[i]}, exact ${exact}`);
      continue;
    }
    const distance = ulpDistance(out[i], reference, "F32");
    assert.ok(distance <= bound + (up ? 1 : 0), `${name}: ${distance.toFixed(2)} ulp at x = ${gate[i]} (got ${out[i]}, exact ${reference}, bound ${bound.toFixed(1)})`);
    if (distance > worst) [worst, worstAt] = [distance, i];
  }
  assert.ok(Number.isFinite(worst), `${name}: worst at x = ${gate[worstAt]}`);
  return worst;
}

test("the fp64 erfc the gelu reference uses matches Python's math.erfc to 1e-13", () => {
  // math.erfc's values (CPython 3), the independent reference for the test's own.
  const pinned: [number, number][] = [
    [0.25, 0.7236736098317631], [1, 0.15729920705028513], [1.75, 0.013328328780817555], [2.5, 0.0004069520174449589],
    [4, 1.541725790028002e-8], [6, 2.1519736712498916e-17], [8, 1.1224297172982928e-29], [10, 2.088487583762545e-45],
  ];
  for (const [z, erfc] of pinned) {
    const mine = scaledErfc(z) * Math.exp(-z * z);
    assert.ok(Math.abs(mine / erfc - 1) < 1e-13, `erfc(${z}) = ${mine}, Python ${erfc}`);
  }
  assert.equal(exactGelu(0), 0);
  assert.ok(Math.abs(exactGelu(1) - 0.8413447460685429) < 1e-15, `gelu(1) = ${exactGelu(1)}`);
});

for (const c of CASES) {
  test(`activationMul("${c.activation}") of every forward table is within its bound of fp64, subnormals and tails included`, (t) => {
    const gate = inputs();
    const random = seededRandom(11);
    const up = Float32Array.from(gate, () => (random() - 0.5) * 8);
    const ran = new Set<string>();
    for (const simd of ["scalar", "avx2", "avx512"]) {
      const plain = runChild(simd, c.activation, gate, null);
      const worst = check(`${plain.kernels} ${c.activation}`, c, plain.kernels, gate, null, plain.out);
      const gated = runChild(simd, c.activation, gate, up);
      check(`${gated.kernels} ${c.activation}·up`, c, gated.kernels, gate, up, gated.out);
      ran.add(plain.kernels);
      t.diagnostic(`${plain.kernels}: worst ${worst} ulp where an ulp bound applies`);

      // Special values: NaN propagates, +inf stays, −inf gives NaN as torch's formulas do, ±0 kept.
      const special = Float32Array.from([NaN, Infinity, -Infinity, 0, -0, 1, -1, 5, -5, 20, -20, 100, -60]);
      const s = runChild(simd, c.activation, special, null).out;
      assert.ok(Number.isNaN(s[0]), `${plain.kernels}: ${c.activation}(NaN) = ${s[0]}`);
      assert.equal(s[1], Infinity);
      assert.ok(Number.isNaN(s[2]), `${plain.kernels}: ${c.activation}(-inf) = ${s[2]}`);
      assert.ok(Object.is(s[3], 0) && Object.is(s[4], -0), `${plain.kernels}: ${c.activation}(±0) = ${s[3]}, ${s[4]}`);
    }
    assert.ok(ran.has("scalar"), `ran: ${[...ran].join(", ")}`);
  });
}

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

/** softCap(values, cap) of the table ABLITERATE_KERNELS caps at `simd`, in a child process. */
function runSoftCapChild(simd: string, values: Float32Array, cap: number): { kernels: string; out: Float32Array } {
  const script = `
    import { runtimeInfo, softCap } from ${JSON.stringify(join(here, "..", "..", "lib", "native", "addon.js"))};
    import { readFileSync } from "node:fs";
    const [values, cap] = JSON.parse(readFileSync(0, "utf8"));
    const out = softCap(new Float32Array(Uint8Array.from(Buffer.from(values, "base64")).buffer), cap);
    process.stdout.write(JSON.stringify({ kernels: runtimeInfo().kernels.forward, out: Buffer.from(out.buffer).toString("base64") }));
  `;
  const stdout = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    env: { ...process.env, ABLITERATE_KERNELS: simd },
    input: JSON.stringify([Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString("base64"), cap]),
    maxBuffer: 64 * 1024 * 1024,
    encoding: "utf8",
  });
  const parsed = JSON.parse(stdout) as { kernels: string; out: string };
  return { kernels: parsed.kernels, out: new Float32Array(Uint8Array.from(Buffer.from(parsed.out, "base64")).buffer) };
}

test("Gemma 2's soft-capping of every forward table is within 3 ulp of fp64 cap · tanh(x / cap), both sides of the polynomial's edge", (t) => {
  // Gemma 2's two caps: 50 on attention scores, 30 on the final logits. The sweep crosses |x / cap| = 0.625, where
  // the SIMD tables switch from the polynomial to (1 − e) / (1 + e), and reaches where tanh rounds to ±1.
  for (const cap of [50, 30]) {
    const values: number[] = [];
    for (let x = -20 * cap; x <= 20 * cap; x += cap / 997) values.push(x);
    for (let y = 0.6; y <= 0.65; y += 1e-5) values.push(y * cap, -y * cap);
    for (let e = -149; e <= 127; e += 1) values.push(2 ** e, -(2 ** e));
    const input = Float32Array.from(values);
    const ran = new Set<string>();
    for (const simd of ["scalar", "avx2", "avx512"]) {
      const { kernels, out } = runSoftCapChild(simd, input, cap);
      ran.add(kernels);
      let worst = 0;
      for (let i = 0; i < input.length; i += 1) {
        // The kernels divide x by cap in fp32 first, as forward_math.h's soft_cap and torch do.
        const reference = Math.fround(Math.tanh(Math.fround(input[i] / cap)) * cap);
        const distance = ulpDistance(out[i], reference, "F32");
        assert.ok(distance <= 3, `${kernels}: softCap(${input[i]}, ${cap}) = ${out[i]}, exact ${reference}: ${distance} ulp`);
        worst = Math.max(worst, distance);
      }
      t.diagnostic(`${kernels}, cap ${cap}: worst ${worst} ulp`);
      const special = runSoftCapChild(simd, Float32Array.from([NaN, Infinity, -Infinity, 0, -0]), cap).out;
      assert.ok(Number.isNaN(special[0]), `${kernels}: softCap(NaN) = ${special[0]}`);
      assert.deepEqual([special[1], special[2]], [cap, -cap]);
      assert.ok(Object.is(special[3], 0) && Object.is(special[4], -0), `${kernels}: softCap(±0) = ${special[3]}, ${special[4]}`);
    }
    assert.ok(ran.has("scalar"), `ran: ${[...ran].join(", ")}`);
  }
});
