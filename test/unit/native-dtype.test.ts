/**
 * The addon's decode/encode against hand-computed bit patterns and against the arithmetic reference in
 * test/helpers/reference-projection.ts. Arrays have odd lengths so both the SIMD body and the scalar
 * tail of the kernels are exercised.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { decode, encode } from "../../lib/native/addon.js";
import {
  GEOMETRY,
  decodeElements,
  encodeElements,
  maxFinite,
  narrowBits,
  roundToDtype,
  seededRandom,
  ulpOf,
  type FloatDtype,
} from "../helpers/reference-projection.js";

type NarrowDtype = Exclude<FloatDtype, "F64">;

function bitsOf(bytes: Uint8Array, dtype: FloatDtype): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = [];
  for (let i = 0; i < bytes.byteLength; i += dtype === "F32" ? 4 : 2) {
    out.push(dtype === "F32" ? view.getUint32(i, true) : view.getUint16(i, true));
  }
  return out;
}

function bytesOf(patterns: number[], dtype: NarrowDtype): Uint8Array {
  const size = dtype === "F32" ? 4 : 2;
  const bytes = new Uint8Array(patterns.length * size);
  const view = new DataView(bytes.buffer);
  patterns.forEach((bits, i) => (size === 4 ? view.setUint32(i * 4, bits, true) : view.setUint16(i * 2, bits, true)));
  return bytes;
}

function encodeBits(values: number[], dtype: NarrowDtype): number[] {
  return bitsOf(encode(Float64Array.from(values), dtype), dtype);
}

const hex = (values: number[]) => values.map((v) => "0x" + v.toString(16));

test("BF16 rounding: ties to even, and no double rounding through f32", () => {
  const cases: Array<[number, number]> = [
    [1, 0x3f80],
    [1 + 2 ** -8, 0x3f80], // tie, 1.0 is even
    [1 + 3 * 2 ** -8, 0x3f82], // tie, rounds up to even
    [1 + 2 ** -8 + 2 ** -40, 0x3f81], // just above the tie; via f32 RNE it would collapse onto the tie
    [1 + 2 ** -8 - 2 ** -40, 0x3f80],
    [-(1 + 2 ** -8 + 2 ** -40), 0xbf81],
    [-0, 0x8000],
    [0, 0x0000],
    [Infinity, 0x7f80],
    [-Infinity, 0xff80],
    [(2 - 2 ** -7) * 2 ** 127, 0x7f7f], // largest finite
    [(2 - 2 ** -8) * 2 ** 127, 0x7f80], // halfway to 2^128 from an odd mantissa: overflows
    [(2 - 2 ** -8 - 2 ** -30) * 2 ** 127, 0x7f7f],
    [1e39, 0x7f80], // beyond f32's range: the f32 step of round-to-odd saturates, the bf16 step still overflows
    [-1e300, 0xff80],
    [2 ** -133, 0x0001], // smallest subnormal
    [2 ** -134, 0x0000], // tie with zero
    [2 ** -134 + 2 ** -160, 0x0001],
    [3 * 2 ** -134, 0x0002],
    [2 ** -126, 0x0080], // smallest normal
    [1e-300, 0x0000],
  ];
  assert.deepEqual(hex(encodeBits(cases.map((c) => c[0]), "BF16")), hex(cases.map((c) => c[1])));
});

test("F16 rounding: ties, overflow at 65520, subnormals", () => {
  const cases: Array<[number, number]> = [
    [1, 0x3c00],
    [1e39, 0x7c00], // early in the list, so a SIMD lane (not the scalar tail) narrows it
    [1 + 2 ** -11, 0x3c00],
    [1 + 2 ** -11 + 2 ** -40, 0x3c01],
    [1 + 3 * 2 ** -11, 0x3c02],
    [65504, 0x7bff],
    [65519.99, 0x7bff],
    [65520, 0x7c00],
    [-65520, 0xfc00],
    [2 ** -24, 0x0001],
    [2 ** -25, 0x0000],
    [2 ** -25 + 2 ** -60, 0x0001],
    [3 * 2 ** -25, 0x0002],
    [2 ** -14, 0x0400],
    [2 ** -14 - 2 ** -25, 0x0400], // rounds up from the largest subnormal's half step into the normals
    [-0, 0x8000],
    [Infinity, 0x7c00],
    [1e10, 0x7c00],
  ];
  assert.deepEqual(hex(encodeBits(cases.map((c) => c[0]), "F16")), hex(cases.map((c) => c[1])));
});

test("F32 rounding: ties, subnormals, overflow", () => {
  const cases: Array<[number, number]> = [
    [1, 0x3f800000],
    [1 + 2 ** -24, 0x3f800000],
    [1 + 2 ** -24 + 2 ** -50, 0x3f800001],
    [1 + 3 * 2 ** -24, 0x3f800002],
    [2 ** -149, 0x00000001],
    [2 ** -150, 0x00000000],
    [1.5 * 2 ** -149, 0x00000002],
    [(2 - 2 ** -23) * 2 ** 127, 0x7f7fffff],
    [(2 - 2 ** -24) * 2 ** 127, 0x7f800000],
    [-1e300, 0xff800000],
    [-0, 0x80000000],
  ];
  assert.deepEqual(hex(encodeBits(cases.map((c) => c[0]), "F32")), hex(cases.map((c) => c[1])));
});

test("NaN: quiet, payload kept as far as the format allows, both directions", () => {
  const values = new Float64Array(3);
  const words = new BigUint64Array(values.buffer);
  words[0] = 0x7ff4000000000000n; // signalling NaN, payload bit 50
  words[1] = 0xfff8000000000001n; // negative quiet NaN, payload only in the low bits
  words[2] = 0x7ff0000000000001n; // signalling NaN with the payload below every narrow format
  assert.deepEqual(hex(bitsOf(encode(values, "BF16"), "BF16")), hex([0x7fe0, 0xffc0, 0x7fc0]));
  assert.deepEqual(hex(bitsOf(encode(values, "F16"), "F16")), hex([0x7f00, 0xfe00, 0x7e00]));
  assert.deepEqual(hex(bitsOf(encode(values, "F32"), "F32")), hex([0x7fe00000, 0xffc00000, 0x7fc00000]));
  // F64 keeps every bit, signalling NaNs included.
  const roundTrip = new BigUint64Array(decode(encode(values, "F64"), "F64").buffer);
  assert.deepEqual([...roundTrip], [...words]);

  const decoded = new BigUint64Array(decode(bytesOf([0x7fa1, 0xffc0, 0x7f81], "BF16"), "BF16").buffer);
  assert.deepEqual([...decoded].map((w) => w.toString(16)), ["7ffc200000000000", "fff8000000000000", "7ff8200000000000"]);
  const decodedHalf = new BigUint64Array(decode(bytesOf([0x7d01, 0xfe00], "F16"), "F16").buffer);
  assert.deepEqual([...decodedHalf].map((w) => w.toString(16)), ["7ffc040000000000", "fff8000000000000"]);
});

for (const dtype of ["F16", "BF16"] as const) {
  test(`${dtype}: every one of the 65536 bit patterns decodes exactly and encodes back`, () => {
    const patterns = Array.from({ length: 65536 }, (_, i) => i);
    const bytes = bytesOf(patterns, dtype);
    const decoded = decode(bytes, dtype);
    const expected = decodeElements(bytes, dtype);
    const quietBit = 1 << (GEOMETRY[dtype].mantissaBits - 1);
    for (let i = 0; i < patterns.length; i++) {
      assert.ok(Object.is(decoded[i], expected[i]), `${dtype} 0x${i.toString(16)}: ${decoded[i]} vs ${expected[i]}`);
    }
    const back = bitsOf(encode(decoded, dtype), dtype);
    for (let i = 0; i < patterns.length; i++) {
      const want = Number.isNaN(expected[i]) ? i | quietBit : i;
      assert.equal(back[i], want, `${dtype} 0x${i.toString(16)} came back as 0x${back[i].toString(16)}`);
    }
  });
}

test("F32 and F64: random bit patterns round trip bit for bit (NaN quieted for F32)", () => {
  const random = seededRandom(7);
  const words = Array.from({ length: 20001 }, () => Math.floor(random() * 2 ** 32));
  words.push(0, 0x80000000, 0x7f800000, 0xff800000, 0x00000001, 0x807fffff, 0x7f7fffff, 0x7f800001, 0xffbfffff);
  const bytes = bytesOf(words, "F32");
  const decoded = decode(bytes, "F32");
  const reference = decodeElements(bytes, "F32");
  const back = bitsOf(encode(decoded, "F32"), "F32");
  for (let i = 0; i < words.length; i++) {
    assert.ok(Object.is(decoded[i], reference[i]), `0x${words[i].toString(16)}`);
    const isNaN = Number.isNaN(reference[i]);
    assert.equal(back[i], isNaN ? (words[i] | 0x00400000) >>> 0 : words[i], `0x${words[i].toString(16)}`);
  }

  const doubles = new BigUint64Array(10001);
  for (let i = 0; i < doubles.length; i++) {
    doubles[i] = (BigInt(Math.floor(random() * 2 ** 32)) << 32n) | BigInt(Math.floor(random() * 2 ** 32));
  }
  const raw = new Uint8Array(doubles.buffer);
  assert.deepEqual([...new BigUint64Array(encode(decode(raw, "F64"), "F64").slice().buffer)], [...doubles]);
});

/** Doubles spread over every binade a narrow dtype has, plus its subnormals, overflow edge and ties. */
function doublesAround(dtype: NarrowDtype, random: () => number, count: number): Float64Array {
  const g = GEOMETRY[dtype];
  const values = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const exponent = g.minExponent - g.mantissaBits - 2 + Math.floor(random() * (g.maxExponent - g.minExponent + g.mantissaBits + 4));
    let value = (1 + random()) * 2 ** exponent;
    if (i % 7 === 0) {
      // An exact tie of the dtype: a representable value plus half its spacing.
      const base = roundToDtype(value, dtype);
      if (Number.isFinite(base)) value = base + ulpOf(base, dtype) / 2;
    }
    values[i] = random() < 0.5 ? -value : value;
  }
  values[0] = maxFinite(dtype);
  return values;
}

for (const dtype of ["F32", "F16", "BF16"] as const) {
  test(`${dtype}: encode of random doubles equals the correctly rounded reference, bit for bit`, () => {
    const values = doublesAround(dtype, seededRandom(dtype.length * 1000 + 3), 30001);
    const actual = bitsOf(encode(values, dtype), dtype);
    const expected = bitsOf(encodeElements(values, dtype), dtype);
    let differences = 0;
    let first = "";
    for (let i = 0; i < values.length; i++) {
      if (actual[i] !== expected[i]) {
        differences += 1;
        first ||= `${values[i]} → 0x${actual[i].toString(16)}, expected 0x${expected[i].toString(16)}`;
      }
    }
    assert.equal(differences, 0, first);
    // And the bit patterns mean what the reference says they mean.
    const narrow = encode(values, dtype);
    const decoded = decode(narrow, dtype);
    for (let i = 0; i < values.length; i++) assert.equal(narrowBits(decoded[i], dtype), actual[i]);
  });
}

test("decode rejects a byte length that is not a whole number of elements", () => {
  assert.throws(() => decode(new Uint8Array(3), "F16"), (error: unknown) => {
    const e = error as { code?: string; message: string };
    return e.code === "E_INVALID_JOB" && /3 bytes/.test(e.message);
  });
});
