/**
 * The writer against byte vectors of the reference writer (Rust `serialize`, which Python's `save_file` calls),
 * and serialize → parse round trips.
 *
 * What the reference writer does (read from the crate source): it sorts tensors by descending position of the
 * dtype in its `Dtype` enum (increasing-alignment order), then by name; writes the header with serde_json in
 * compact form, `__metadata__` first, each entry as {"dtype","shape","data_offsets"} in that key order; pads the
 * JSON with spaces to a multiple of 8; and appends the data contiguously. The expected bytes below are written
 * out by hand from those rules, not produced by our serializer. Python is never run. Byte equality is only
 * claimed with at most one __metadata__ key: the Python binding passes metadata as a Rust HashMap, whose
 * iteration order with several keys is not deterministic.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { AbliterateError, ErrorCodes } from "../../lib/errors.js";
import { SAFETENSORS_DTYPES, dtypeBits, type SafetensorsDtype } from "../../lib/safetensors/dtypes.js";
import { parseSafetensorsHeader } from "../../lib/safetensors/parse-header.js";
import { serializeSafetensors } from "../../lib/safetensors/serialize-safetensors.js";
import { sortLikeSafetensorsWriter } from "../../lib/safetensors/sort-like-safetensors-writer.js";
import type { SerializableTensor } from "../../lib/safetensors/types.js";
import { float32Tensor, patternTensor } from "../helpers/safetensors-fixtures.js";

function u64le(value: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(BigInt(value));
  return out;
}

function f32le(values: number[]): Buffer {
  const out = Buffer.alloc(values.length * 4);
  values.forEach((value, i) => out.writeFloatLE(value, i * 4));
  return out;
}

test("byte-identical to the reference writer: one F32 tensor whose header needs no padding", () => {
  const json = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
  assert.equal(json.length, 64);
  const expected = Buffer.concat([u64le(64), Buffer.from(json), f32le([0, 1, 2, 3, 4, 5])]);
  const actual = serializeSafetensors({ tensors: [float32Tensor("attn.0", [1, 2, 3], [0, 1, 2, 3, 4, 5])] });
  assert.deepEqual(actual, expected);
});

test("byte-identical to the reference writer: padding with spaces to 8 bytes", () => {
  const json = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
  assert.equal(json.length, 65);
  const expected = Buffer.concat([u64le(72), Buffer.from(json + " ".repeat(7)), f32le([0, 1, 2, 3, 4, 5])]);
  assert.deepEqual(serializeSafetensors({ tensors: [float32Tensor("attn0", [1, 1, 2, 3], [0, 1, 2, 3, 4, 5])] }), expected);
});

test("byte-identical to the reference writer: empty, and metadata only", () => {
  assert.deepEqual(serializeSafetensors({ tensors: [] }), Buffer.concat([u64le(8), Buffer.from("{}      ")]));
  assert.deepEqual(
    serializeSafetensors({ tensors: [], metadata: { framework: "pt" } }),
    Buffer.concat([u64le(40), Buffer.from('{"__metadata__":{"framework":"pt"}}     ')]),
  );
});

test("byte-identical to save_file: tensor order is descending dtype alignment, then name", () => {
  const b = patternTensor({ name: "b", dtype: "U8", shape: [2, 3], seed: 7 });
  const a = float32Tensor("a", [2, 2], [1, 2, 3, 4]);
  const c = float32Tensor("c", [1], [-1]);
  const ordered = sortLikeSafetensorsWriter([b, c, a]);
  assert.deepEqual(ordered.map((t) => t.name), ["a", "c", "b"]);
  const json =
    '{"__metadata__":{"format":"pt"},' +
    '"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},' +
    '"c":{"dtype":"F32","shape":[1],"data_offsets":[16,20]},' +
    '"b":{"dtype":"U8","shape":[2,3],"data_offsets":[20,26]}}';
  const padded = json + " ".repeat((8 - (json.length % 8)) % 8);
  const expected = Buffer.concat([u64le(padded.length), Buffer.from(padded), f32le([1, 2, 3, 4, -1]), Buffer.from(b.data)]);
  assert.deepEqual(serializeSafetensors({ tensors: ordered, metadata: { format: "pt" } }), expected);
});

test("writer order: enum position, not byte size, breaks ties between dtypes; names compare as UTF-8", () => {
  const tensor = (name: string, dtype: SafetensorsDtype): { name: string; dtype: SafetensorsDtype } => ({ name, dtype });
  const order = sortLikeSafetensorsWriter([
    tensor("x", "F16"), tensor("y", "BF16"), tensor("z", "I64"), tensor("w", "F64"),
    tensor("v", "U16"), tensor("u", "C64"), tensor("t", "BOOL"), tensor("s", "F4"),
  ]);
  assert.deepEqual(order.map((t) => t.dtype), ["I64", "F64", "C64", "BF16", "F16", "U16", "F4", "BOOL"]);
  // U+FFFF is EF BF BF in UTF-8 and sorts before U+10000 (F0 90 80 80), although JS's UTF-16 order says otherwise.
  const names = sortLikeSafetensorsWriter([tensor("\u{10000}", "U8"), tensor("\uffff", "U8"), tensor("a", "U8")]).map((t) => t.name);
  assert.deepEqual(names, ["a", "\uffff", "\u{10000}"]);
});

test("names with quotes, backslashes, control and non-ASCII characters round-trip through the header", () => {
  const names = ['q"uote', "back\\slash", "tab\there", "nl\n", "\u0001", "é", "\u{1F600}", "", "__proto__", "a/b.c"];
  const tensors = names.map((name, i) => patternTensor({ name, dtype: "U8", shape: [i + 1], seed: i + 1 }));
  const bytes = serializeSafetensors({ tensors });
  const header = parseSafetensorsHeader({ bytes, fileSize: bytes.length, path: "/names.safetensors" });
  assert.deepEqual(header.tensors.map((t) => t.name), names);
});

test("serializer rejects inconsistent tensors", () => {
  const cases: [SerializableTensor[], string][] = [
    [[{ name: "w", dtype: "F32", shape: [2], data: new Uint8Array(7) }], ErrorCodes.SAFETENSORS_SIZE_MISMATCH],
    [[{ name: "w", dtype: "F4", shape: [3], data: new Uint8Array(2) }], ErrorCodes.SAFETENSORS_SIZE_MISMATCH],
    [[{ name: "w", dtype: "F33" as SafetensorsDtype, shape: [1], data: new Uint8Array(4) }], ErrorCodes.SAFETENSORS_UNKNOWN_DTYPE],
    [[{ name: "w", dtype: "U8", shape: [-1], data: new Uint8Array(0) }], ErrorCodes.SAFETENSORS_INVALID_ENTRY],
    [[{ name: "w", dtype: "U8", shape: [1.5], data: new Uint8Array(1) }], ErrorCodes.SAFETENSORS_INVALID_ENTRY],
    [[{ name: "__metadata__", dtype: "U8", shape: [1], data: new Uint8Array(1) }], ErrorCodes.SAFETENSORS_INVALID_ENTRY],
    [[{ name: "lone\ud800", dtype: "U8", shape: [1], data: new Uint8Array(1) }], ErrorCodes.SAFETENSORS_INVALID_ENTRY],
    [
      [
        { name: "w", dtype: "U8", shape: [1], data: new Uint8Array(1) },
        { name: "w", dtype: "U8", shape: [1], data: new Uint8Array(1) },
      ],
      ErrorCodes.SAFETENSORS_INVALID_ENTRY,
    ],
  ];
  for (const [tensors, code] of cases) {
    assert.throws(() => serializeSafetensors({ tensors }), (error: unknown) => error instanceof AbliterateError && error.code === code);
  }
});

const dtypeArbitrary = fc.constantFrom(...SAFETENSORS_DTYPES);
const tensorSpecArbitrary = fc.record({
  dtype: dtypeArbitrary,
  shape: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 4 }),
  seed: fc.integer({ min: 1, max: 2 ** 31 }),
});

test("property: serialize → parse gives back every tensor's name, dtype, shape, offsets and bytes", () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.tuple(fc.string({ maxLength: 12 }), tensorSpecArbitrary), {
        selector: ([name]) => name,
        maxLength: 8,
      }),
      fc.option(fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 3 }), { nil: undefined }),
      (specs, metadata) => {
        const tensors = specs
          .filter(([name]) => name !== "__metadata__")
          .map(([name, { dtype, shape, seed }]) => {
            // Sub-byte dtypes need a whole number of bytes: pad the element count with one more axis if needed.
            const numel = shape.reduce((p, s) => p * s, 1);
            const fixedShape = (numel * dtypeBits(dtype)) % 8 === 0 ? shape : [...shape, 4];
            return patternTensor({ name, dtype, shape: fixedShape, seed });
          });
        const bytes = serializeSafetensors({ tensors, metadata });
        const header = parseSafetensorsHeader({ bytes, fileSize: bytes.length, path: "/rt.safetensors" });
        assert.equal(header.headerLength % 8, 0);
        assert.equal(bytes.readBigUInt64LE(0), BigInt(header.headerLength));
        assert.deepEqual(header.metadata, metadata === undefined ? undefined : { ...metadata });
        // Zero-sized tensors share offsets, so compare by name; the given order is the offset order.
        let begin = 0;
        for (const tensor of tensors) {
          const info = header.byName.get(tensor.name);
          assert.ok(info);
          assert.equal(info.dtype, tensor.dtype);
          assert.deepEqual(info.shape, tensor.shape);
          assert.deepEqual(info.dataOffsets, [begin, begin + tensor.data.length]);
          assert.equal(info.byteOffset, 8 + header.headerLength + begin);
          assert.deepEqual(bytes.subarray(info.byteOffset, info.byteOffset + info.byteLength), Buffer.from(tensor.data));
          begin += tensor.data.length;
        }
        assert.equal(header.tensors.length, tensors.length);
      },
    ),
    { numRuns: 2000, seed: 0x5afe7e45 },
  );
});
