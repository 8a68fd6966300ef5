/**
 * The dtypes the safetensors format defines, as the Rust crate's `Dtype` enum lists them (crate 0.6+, plus the
 * FNUZ fp8 variants of later releases). The order is the crate's enum order, which is increasing alignment:
 * the crate's writer sorts tensors by descending position in this list, so the order itself is data.
 */
export const SAFETENSORS_DTYPES = [
  "BOOL",
  "F4",
  "F6_E2M3",
  "F6_E3M2",
  "U8",
  "I8",
  "F8_E5M2",
  "F8_E4M3",
  "F8_E8M0",
  "F8_E4M3FNUZ",
  "F8_E5M2FNUZ",
  "I16",
  "U16",
  "F16",
  "BF16",
  "I32",
  "U32",
  "F32",
  "C64",
  "F64",
  "I64",
  "U64",
] as const;

export type SafetensorsDtype = (typeof SAFETENSORS_DTYPES)[number];

// A null-prototype table: dtype strings come from untrusted headers, and "constructor" or "__proto__" must
// not resolve to something inherited.
const BITS: Record<string, number> = Object.assign(Object.create(null) as Record<string, number>, {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F8_E4M3FNUZ: 8,
  F8_E5M2FNUZ: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
} satisfies Record<SafetensorsDtype, number>);

const RANK: Record<string, number> = Object.assign(
  Object.create(null) as Record<string, number>,
  Object.fromEntries(SAFETENSORS_DTYPES.map((dtype, index) => [dtype, index])),
);

export function isSafetensorsDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === "string" && BITS[value] !== undefined;
}

/**
 * Bits per element. Sub-byte dtypes (F4, F6_*) pack elements, so a tensor's byte size is
 * numel × bits / 8 and is only defined when numel × bits is a multiple of 8.
 */
export function dtypeBits(dtype: SafetensorsDtype): number {
  const bits = BITS[dtype];
  if (bits === undefined) throw new TypeError(`not a safetensors dtype: ${String(dtype)}`);
  return bits;
}

/** Position in the crate's enum, i.e. the alignment rank its writer sorts by (higher first). */
export function dtypeAlignmentRank(dtype: SafetensorsDtype): number {
  const rank = RANK[dtype];
  if (rank === undefined) throw new TypeError(`not a safetensors dtype: ${String(dtype)}`);
  return rank;
}

/** The float dtypes the surgery, the engine and the direction readers handle. */
export const FLOAT_DTYPES = ["F64", "F32", "F16", "BF16"] as const;
export type FloatDtype = (typeof FLOAT_DTYPES)[number];

export function isFloatDtype(value: unknown): value is FloatDtype {
  return typeof value === "string" && (FLOAT_DTYPES as readonly string[]).includes(value);
}

/** Bytes per element of a dtype that packs whole bytes (every float dtype); from the one bits table above. */
export function dtypeBytes(dtype: SafetensorsDtype): number {
  const bits = dtypeBits(dtype);
  if (bits % 8 !== 0) throw new TypeError(`${dtype} packs ${bits}-bit elements; it has no whole-byte element size`);
  return bits / 8;
}
