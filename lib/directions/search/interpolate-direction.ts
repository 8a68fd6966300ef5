/**
 * The direction at a fractional candidate index i: with t = i − ⌊i⌋ and û the unit vector of u,
 *
 *     r(i) = normalize((1 − t) · r̂_⌊i⌋ + t · r̂_⌈i⌉),
 *
 * all in fp64. The rows are normalized before they are mixed, as heretic's are: the candidate file keeps the raw
 * mean differences, whose norms grow with depth, and mixing those would let the deeper row dominate whatever t
 * says. At an integer i this is row i, normalized. Two opposite rows mix to zero at t = ½: that is an error,
 * not a silent NaN.
 */
import { AbliterateError, ErrorCodes } from "../../errors.js";

/** ‖v‖ scaled by the largest magnitude first, so the sum of squares can neither overflow nor underflow. */
function norm(v: ArrayLike<number>): number {
  let largest = 0;
  for (let k = 0; k < v.length; k += 1) largest = Math.max(largest, Math.abs(v[k]));
  if (!(largest > 0) || !Number.isFinite(largest)) return largest;
  let sumOfSquares = 0;
  for (let k = 0; k < v.length; k += 1) sumOfSquares += (v[k] / largest) ** 2;
  return largest * Math.sqrt(sumOfSquares);
}

function checked(value: number, index: number, what: string): number {
  if (Number.isNaN(value) || value === Infinity) throw new AbliterateError(ErrorCodes.DIRECTION_NOT_FINITE, `${what} at direction index ${index} holds NaN or Inf`);
  if (!(value > 0)) throw new AbliterateError(ErrorCodes.DIRECTION_DEGENERATE, `${what} at direction index ${index} has zero norm`);
  return value;
}

export function interpolateDirection(rows: readonly ArrayLike<number>[], index: number): Float64Array {
  if (rows.length === 0) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "interpolateDirection: no candidate rows");
  if (!(Number.isFinite(index) && index >= 0 && index <= rows.length - 1)) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `direction index ${index} is outside the candidate rows 0..${rows.length - 1}`);
  }
  const lower = Math.floor(index);
  const upper = Math.ceil(index);
  const t = index - lower;
  const a = rows[lower];
  const b = rows[upper];
  if (a.length !== b.length) throw new AbliterateError(ErrorCodes.DIRECTION_DIMENSION, `candidate rows ${lower} and ${upper} have dimensions ${a.length} and ${b.length}`);
  const normA = checked(norm(a), lower, `candidate row ${lower}`);
  if (t === 0) return Float64Array.from(a, (value) => value / normA);
  const normB = checked(norm(b), upper, `candidate row ${upper}`);
  const mixed = Float64Array.from(a, (value, k) => (1 - t) * (value / normA) + t * (b[k] / normB));
  const normMixed = checked(norm(mixed), index, `the mix of rows ${lower} and ${upper}`);
  return mixed.map((value) => value / normMixed);
}
