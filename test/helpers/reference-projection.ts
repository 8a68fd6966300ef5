/**
 * An fp64 reference for the native projection kernels, written independently of the C++ code:
 * element decoding and correctly rounded encoding by arithmetic (not by the bit tricks of native/core/dtype.h),
 * compensated dot products (Dekker's exact product + TwoSum), and the verify tolerance of docs/precision.md.
 *
 * Orientation (lib/native/addon.ts): values are a row-major [rows, cols] matrix.
 *  - dModelAxis 0: d_model = rows; every column w becomes s·(w − α B Bᵀw).
 *  - dModelAxis 1: d_model = cols; every row w becomes s·(w − α (w B) Bᵀ).
 * s is ‖w‖/‖w − α B Bᵀw‖ with normPreserving (0 when the projection vanishes), 1 otherwise.
 */

export type FloatDtype = "F64" | "F32" | "F16" | "BF16";

export const ELEMENT_BYTES: Record<FloatDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2 };

export interface FloatGeometry {
  /** Stored fraction bits. */
  mantissaBits: number;
  /** Exponent of the smallest normal number. */
  minExponent: number;
  /** Exponent of the largest finite binade. */
  maxExponent: number;
  exponentBits: number;
}

export const GEOMETRY: Record<FloatDtype, FloatGeometry> = {
  F64: { mantissaBits: 52, minExponent: -1022, maxExponent: 1023, exponentBits: 11 },
  F32: { mantissaBits: 23, minExponent: -126, maxExponent: 127, exponentBits: 8 },
  F16: { mantissaBits: 10, minExponent: -14, maxExponent: 15, exponentBits: 5 },
  BF16: { mantissaBits: 7, minExponent: -126, maxExponent: 127, exponentBits: 8 },
};

/** Largest finite value of the dtype. */
export function maxFinite(dtype: FloatDtype): number {
  const g = GEOMETRY[dtype];
  return (2 - 2 ** -g.mantissaBits) * 2 ** g.maxExponent;
}

/** floor(log2 |x|) for finite non-zero x, exactly. */
function binaryExponent(x: number): number {
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e -= 1;
  if (2 ** (e + 1) <= a) e += 1;
  return e;
}

/** Spacing of the dtype's values at |x|; the subnormal spacing below the smallest normal. */
export function ulpOf(x: number, dtype: FloatDtype): number {
  const g = GEOMETRY[dtype];
  let e = g.minExponent;
  if (Number.isFinite(x) && x !== 0) e = binaryExponent(x);
  else if (!Number.isFinite(x) && !Number.isNaN(x)) e = g.maxExponent;
  e = Math.min(g.maxExponent, Math.max(g.minExponent, e));
  return 2 ** (e - g.mantissaBits);
}

/** x rounded to the nearest value of the dtype, ties to even; ±Infinity past the largest finite value. */
export function roundToDtype(x: number, dtype: FloatDtype): number {
  if (dtype === "F64" || !Number.isFinite(x) || x === 0) return x;
  const g = GEOMETRY[dtype];
  const magnitude = Math.abs(x);
  const exponent = Math.max(binaryExponent(magnitude), g.minExponent);
  const quantum = 2 ** (exponent - g.mantissaBits);
  const scaled = magnitude / quantum; // exact: a power-of-two rescaling
  let units = Math.floor(scaled);
  const fraction = scaled - units; // exact: scaled < 2^(mantissaBits + 1)
  if (fraction > 0.5 || (fraction === 0.5 && units % 2 === 1)) units += 1;
  const rounded = units * quantum;
  const signed = rounded > maxFinite(dtype) ? Infinity : rounded;
  return x < 0 ? -signed : signed;
}

/** Bit pattern of a value the narrow dtype represents exactly (NaN: the canonical quiet NaN). */
export function narrowBits(value: number, dtype: Exclude<FloatDtype, "F64">): number {
  const g = GEOMETRY[dtype];
  const signBit = 2 ** (g.mantissaBits + g.exponentBits);
  const infinityBits = (2 ** g.exponentBits - 1) * 2 ** g.mantissaBits;
  if (Number.isNaN(value)) return infinityBits + 2 ** (g.mantissaBits - 1);
  const sign = value < 0 || Object.is(value, -0) ? signBit : 0;
  const magnitude = Math.abs(value);
  if (magnitude === Infinity) return sign + infinityBits;
  if (magnitude === 0) return sign;
  if (roundToDtype(magnitude, dtype) !== magnitude) {
    throw new Error(`${value} is not exactly representable in ${dtype}`);
  }
  if (magnitude < 2 ** g.minExponent) return sign + magnitude / 2 ** (g.minExponent - g.mantissaBits);
  const exponent = binaryExponent(magnitude);
  const fraction = (magnitude / 2 ** exponent - 1) * 2 ** g.mantissaBits;
  const bias = 2 ** (g.exponentBits - 1) - 1;
  return sign + (exponent + bias) * 2 ** g.mantissaBits + fraction;
}

/** Value of a narrow-dtype bit pattern (every NaN pattern gives NaN). */
export function narrowValue(bits: number, dtype: Exclude<FloatDtype, "F64">): number {
  const g = GEOMETRY[dtype];
  const fractionUnits = 2 ** g.mantissaBits;
  const exponentField = Math.floor(bits / fractionUnits) % 2 ** g.exponentBits;
  const fraction = bits % fractionUnits;
  const negative = bits >= 2 ** (g.mantissaBits + g.exponentBits);
  const bias = 2 ** (g.exponentBits - 1) - 1;
  let magnitude: number;
  if (exponentField === 2 ** g.exponentBits - 1) magnitude = fraction === 0 ? Infinity : NaN;
  else if (exponentField === 0) magnitude = fraction * 2 ** (g.minExponent - g.mantissaBits);
  else magnitude = (1 + fraction / fractionUnits) * 2 ** (exponentField - bias);
  return negative ? -magnitude : magnitude;
}

export function decodeElements(bytes: Uint8Array, dtype: FloatDtype): Float64Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const size = ELEMENT_BYTES[dtype];
  const out = new Float64Array(bytes.byteLength / size);
  for (let i = 0; i < out.length; i++) {
    if (dtype === "F64") out[i] = view.getFloat64(i * 8, true);
    else if (dtype === "F32") out[i] = view.getFloat32(i * 4, true);
    else out[i] = narrowValue(view.getUint16(i * 2, true), dtype);
  }
  return out;
}

/** Rounds every value into the dtype (ties to even) and lays the elements out little-endian. */
export function encodeElements(values: ArrayLike<number>, dtype: FloatDtype): Uint8Array {
  const size = ELEMENT_BYTES[dtype];
  const bytes = new Uint8Array(values.length * size);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) {
    if (dtype === "F64") view.setFloat64(i * 8, values[i], true);
    else if (dtype === "F32") view.setUint32(i * 4, narrowBits(roundToDtype(values[i], dtype), dtype), true);
    else view.setUint16(i * 2, narrowBits(roundToDtype(values[i], dtype), dtype), true);
  }
  return bytes;
}

/** Dekker's split: a = hi + lo exactly, each half fitting in 26 bits. */
function split(a: number): [number, number] {
  const t = 134217729 * a; // 2^27 + 1
  const hi = t - (t - a);
  return [hi, a - hi];
}

/** a·b = product + error exactly (no FMA in JavaScript). */
function twoProduct(a: number, b: number): [number, number] {
  const product = a * b;
  const [ah, al] = split(a);
  const [bh, bl] = split(b);
  return [product, al * bl - (((product - ah * bh) - al * bh) - ah * bl)];
}

/** Σ x_i y_i as accurately as if computed in twice the working precision, then rounded. */
export function compensatedDot(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let sum = 0;
  let compensation = 0;
  for (let i = 0; i < x.length; i++) {
    const [product, productError] = twoProduct(x[i], y[i]);
    const total = sum + product;
    const virtualProduct = total - sum;
    compensation += (sum - (total - virtualProduct)) + (product - virtualProduct) + productError;
    sum = total;
  }
  return Number.isFinite(sum) ? sum + compensation : sum;
}

export interface ProjectionSpec {
  rows: number;
  cols: number;
  dModelAxis: 0 | 1;
  /** rank × d_model, row-major, orthonormal rows. */
  basis: Float64Array;
  rank: number;
  alpha: number;
  normPreserving: boolean;
}

export interface ReferenceProjection {
  /** The projected values in fp64, before rounding into the dtype; row-major like the input. */
  reference: Float64Array;
  /** α Σ_k v_k b_k per element (not scaled). */
  update: Float64Array;
  /** |α| Σ_k |v_k b_k| per element: the size of the update's terms, which bounds its fp64 rounding error. */
  updateMagnitude: Float64Array;
  /** The norm-preserving scale of each element's vector (1 without normPreserving). */
  scale: Float64Array;
}

function vectorLayout(spec: ProjectionSpec): { dModel: number; vectors: number; index: (vector: number, i: number) => number } {
  return spec.dModelAxis === 0
    ? { dModel: spec.rows, vectors: spec.cols, index: (vector, i) => i * spec.cols + vector }
    : { dModel: spec.cols, vectors: spec.rows, index: (vector, i) => vector * spec.cols + i };
}

/** The projection of every vector of `values` (decoded original elements), in accurate fp64. */
export function referenceProjection(values: Float64Array, spec: ProjectionSpec): ReferenceProjection {
  const { dModel, vectors, index } = vectorLayout(spec);
  const reference = new Float64Array(values.length);
  const update = new Float64Array(values.length);
  const updateMagnitude = new Float64Array(values.length);
  const scale = new Float64Array(values.length);
  const w = new Float64Array(dModel);
  const projected = new Float64Array(dModel);
  const basisVectors = Array.from({ length: spec.rank }, (_, k) => spec.basis.subarray(k * dModel, (k + 1) * dModel));
  for (let vector = 0; vector < vectors; vector++) {
    for (let i = 0; i < dModel; i++) w[i] = values[index(vector, i)];
    const coefficients = basisVectors.map((b) => compensatedDot(b, w));
    const column = new Float64Array(spec.rank);
    for (let i = 0; i < dModel; i++) {
      for (let k = 0; k < spec.rank; k++) column[k] = basisVectors[k][i];
      update[index(vector, i)] = spec.alpha * compensatedDot(column, coefficients);
      let magnitude = 0;
      for (let k = 0; k < spec.rank; k++) magnitude += Math.abs(column[k] * coefficients[k]);
      updateMagnitude[index(vector, i)] = Math.abs(spec.alpha) * magnitude;
      projected[i] = w[i] - update[index(vector, i)];
    }
    let s = 1;
    if (spec.normPreserving) {
      const normSq = compensatedDot(w, w);
      const projectedSq = compensatedDot(projected, projected);
      s = Number.isNaN(normSq) || Number.isNaN(projectedSq) ? NaN : normSq > 0 && projectedSq > 0 ? Math.sqrt(normSq / projectedSq) : 0;
    }
    for (let i = 0; i < dModel; i++) {
      reference[index(vector, i)] = s * projected[i];
      scale[index(vector, i)] = s;
    }
  }
  return { reference, update, updateMagnitude, scale };
}

/** max over basis vectors and vectors (columns for axis 0, rows for axis 1) of |b_kᵀ w|. */
export function maxProjection(values: Float64Array, spec: ProjectionSpec): number {
  const { dModel, vectors, index } = vectorLayout(spec);
  const w = new Float64Array(dModel);
  let largest = 0;
  for (let vector = 0; vector < vectors; vector++) {
    for (let i = 0; i < dModel; i++) w[i] = values[index(vector, i)];
    for (let k = 0; k < spec.rank; k++) {
      largest = Math.max(largest, Math.abs(compensatedDot(spec.basis.subarray(k * dModel, (k + 1) * dModel), w)));
    }
  }
  return largest;
}

/**
 * The verify tolerance (docs/precision.md):
 *   |actual − ref| ≤ ulp_dtype(ref) + 4·2⁻⁵²·s·(|w| + |α| Σ_k |b_k v_k|).
 * NaN matches NaN; infinities must be equal; a finite reference that rounds past the largest finite
 * value expects the infinity of its sign.
 */
export function withinTolerance(params: {
  actual: number;
  reference: number;
  original: number;
  /** |α| Σ_k |b_k v_k| (ReferenceProjection.updateMagnitude). */
  updateMagnitude: number;
  scale: number;
  dtype: FloatDtype;
}): boolean {
  const { actual, reference, original, updateMagnitude, scale, dtype } = params;
  if (Number.isNaN(reference) || Number.isNaN(actual)) return Number.isNaN(reference) && Number.isNaN(actual);
  const expected = roundToDtype(reference, dtype);
  if (!Number.isFinite(expected) || !Number.isFinite(actual)) return actual === expected;
  const slack = 4 * 2 ** -52 * Math.abs(scale) * (Math.abs(original) + updateMagnitude);
  return Math.abs(actual - reference) <= ulpOf(reference, dtype) + slack;
}

/**
 * verify's verdict on one element: within the tolerance, and finite before and after (the non-finite rule,
 * docs/reliability.md: verify refuses NaN or ±Inf in an edited tensor's original or result, even where the exact
 * reference is that infinity). withinTolerance alone is the contract of apply's kernels.
 */
export function verifyAccepts(params: Parameters<typeof withinTolerance>[0]): boolean {
  return Number.isFinite(params.original) && Number.isFinite(params.actual) && withinTolerance(params);
}

/** |actual − reference| in units of the dtype's spacing at the reference. */
export function ulpDistance(actual: number, reference: number, dtype: FloatDtype): number {
  if (Number.isNaN(actual) && Number.isNaN(reference)) return 0;
  if (actual === reference) return 0;
  return Math.abs(actual - reference) / ulpOf(reference, dtype);
}

/** A small deterministic generator (mulberry32), so failures reproduce. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples (Box–Muller). */
export function gaussian(random: () => number): number {
  const u = 1 - random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** rank random directions in dModel dimensions, orthonormalized by Gram–Schmidt applied twice. */
export function orthonormalBasis(rank: number, dModel: number, random: () => number): Float64Array {
  const basis = new Float64Array(rank * dModel);
  for (let k = 0; k < rank; k++) {
    const row = basis.subarray(k * dModel, (k + 1) * dModel);
    for (let i = 0; i < dModel; i++) row[i] = gaussian(random);
    for (let pass = 0; pass < 2; pass++) {
      for (let j = 0; j < k; j++) {
        const other = basis.subarray(j * dModel, (j + 1) * dModel);
        const dot = compensatedDot(other, row);
        for (let i = 0; i < dModel; i++) row[i] -= dot * other[i];
      }
      const norm = Math.sqrt(compensatedDot(row, row));
      for (let i = 0; i < dModel; i++) row[i] /= norm;
    }
  }
  return basis;
}
