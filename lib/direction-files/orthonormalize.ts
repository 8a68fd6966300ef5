/**
 * Orthonormal basis for rank-k surgery (docs/surgery.md § The maths: the given directions are orthonormalized
 * first, and linearly dependent ones are rejected). Modified Gram–Schmidt run twice ("twice is enough", Giraud et al.)
 * gives Q of a thin QR to fp64 accuracy without pulling in a linear-algebra package for a k × d problem.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";

/** Below this fraction of its original norm, a vector is taken to lie in the span of the previous ones. */
export const DEPENDENCE_TOLERANCE = 1e-6;

export function vectorNorm(values: Float64Array): number {
  let scale = 0;
  for (const value of values) scale = Math.max(scale, Math.abs(value));
  if (scale === 0 || !Number.isFinite(scale)) return scale;
  let sum = 0;
  for (const value of values) sum += (value / scale) ** 2;
  return scale * Math.sqrt(sum);
}

/**
 * Returns k × d row-major orthonormal rows spanning the given rows, in order.
 * Throws DIRECTION_DEGENERATE (naming `source`) for a zero vector or a linearly dependent set.
 */
export function orthonormalizeRows(rows: Float64Array[], source: string): Float64Array {
  if (rows.length === 0) throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, "no direction given", { file: source });
  const dimension = rows[0].length;
  const basis = new Float64Array(rows.length * dimension);
  rows.forEach((row, index) => {
    const originalNorm = vectorNorm(row);
    if (originalNorm === 0) {
      throw new AbliterateError(ErrorCodes.DIRECTION_DEGENERATE, rows.length === 1 ? "direction has zero norm" : `direction ${index} has zero norm`, { file: source });
    }
    // Scaled by the largest |entry| before the norm is applied: a norm of 1e308-sized entries overflows to Infinity
    // (an all-1e308 direction was once divided by it, came out as zeros and was called linearly dependent).
    let largest = 0;
    for (const value of row) largest = Math.max(largest, Math.abs(value));
    const vector = Float64Array.from(row, (value) => value / largest);
    const scaledNorm = vectorNorm(vector);
    for (let i = 0; i < dimension; i += 1) vector[i] /= scaledNorm;
    for (let pass = 0; pass < 2; pass += 1) {
      for (let previous = 0; previous < index; previous += 1) {
        const q = basis.subarray(previous * dimension, (previous + 1) * dimension);
        let dot = 0;
        for (let i = 0; i < dimension; i += 1) dot += q[i] * vector[i];
        for (let i = 0; i < dimension; i += 1) vector[i] -= dot * q[i];
      }
    }
    const remaining = vectorNorm(vector);
    if (remaining < DEPENDENCE_TOLERANCE) {
      throw new AbliterateError(
        ErrorCodes.DIRECTION_DEGENERATE,
        `direction ${index} is linearly dependent on the previous ones (residual norm ${remaining.toExponential(2)} after projection)`,
        { file: source },
      );
    }
    for (let i = 0; i < dimension; i += 1) basis[index * dimension + i] = vector[i] / remaining;
  });
  return basis;
}
