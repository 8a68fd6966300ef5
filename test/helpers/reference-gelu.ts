/**
 * fp64 references for the MLP activations, independent of any kernel: silu, gelu(approximate="tanh") in its
 * sigmoid form (the same function as 0.5·x·(1 + tanh(inner)) without that form's cancellation for x < 0, which
 * costs fp64 itself digits there), and exact gelu through an fp64 erfc (JavaScript has no erf).
 */

/** x / (1 + exp(−x)); exp(−x) overflowing to Infinity gives −0, the rounded value. */
export function exactSilu(x: number): number {
  return x / (1 + Math.exp(-x));
}

/** The argument u of gelu_tanh(x) = x · sigmoid(u): 2·√(2/π)·(x + 0.044715·x³), in fp64. */
export function geluTanhArgument(x: number): number {
  return 2 * Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x);
}

export function exactGeluTanh(x: number): number {
  return x / (1 + Math.exp(-geluTanhArgument(x)));
}

/**
 * erfc(z) · exp(z²) for z ≥ 0: erf's Taylor series below 2 (its alternating terms cost at most ~1e-13 there), the
 * Laplace continued fraction 1 / (√π (z + ½/(z + 1/(z + (3/2)/(z + …))))) from 2 on, 200 levels deep.
 */
export function scaledErfc(z: number): number {
  if (z < 2) {
    let sum = 0;
    let term = z;
    for (let n = 0; n < 200; n += 1) {
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-18 * Math.abs(sum)) break;
      term *= (-z * z) / (n + 1);
    }
    return (1 - (2 / Math.sqrt(Math.PI)) * sum) * Math.exp(z * z);
  }
  let fraction = z;
  for (let k = 200; k >= 1; k -= 1) fraction = z + k / 2 / fraction;
  return 1 / (Math.sqrt(Math.PI) * fraction);
}

/** x · Φ(x) = x · erfc(−x/√2) / 2, the Gaussian factor exp(−x²/2) taken from x² exactly (x an fp32 value). */
export function exactGelu(x: number): number {
  const half = 0.5 * scaledErfc(Math.abs(x) / Math.SQRT2) * Math.exp(-(x * x) / 2);
  return x >= 0 ? x * (1 - half) : x * half;
}
