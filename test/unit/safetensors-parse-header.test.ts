/**
 * One hand-built vector per header rule (mirroring the Rust crate's invalid cases), plus the allowed corner cases.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { AbliterateError, ErrorCodes, type ErrorCode } from "../../lib/errors.js";
import { parseSafetensorsHeader } from "../../lib/safetensors/parse-header.js";
import { rawSafetensorsBytes } from "../helpers/safetensors-fixtures.js";

const PATH = "/m/model-00002-of-00003.safetensors";

function parse(bytes: Uint8Array, fileSize = bytes.length) {
  return parseSafetensorsHeader({ bytes, fileSize, path: PATH });
}

function assertRejects(bytes: Uint8Array, code: ErrorCode, messagePattern?: RegExp): AbliterateError {
  let caught: unknown;
  try {
    parse(bytes);
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof AbliterateError, `expected AbliterateError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.equal(caught.file, PATH);
  assert.ok(caught.message.includes(PATH), `message does not name the file: ${caught.message}`);
  if (messagePattern) assert.match(caught.message, messagePattern);
  return caught;
}

/** A header whose JSON is `json`, followed by `dataLength` zero bytes. */
function file(json: string, dataLength = 0): Uint8Array {
  return rawSafetensorsBytes(json, dataLength);
}

const entry = (dtype: string, shape: number[], begin: number, end: number) =>
  `{"dtype":"${dtype}","shape":[${shape.join(",")}],"data_offsets":[${begin},${end}]}`;

test("length prefix: fewer than 8 bytes is truncated", () => {
  assertRejects(new Uint8Array([2, 0, 0, 0, 0]), ErrorCodes.SAFETENSORS_TRUNCATED, /shorter than the 8-byte/);
  assertRejects(new Uint8Array(0), ErrorCodes.SAFETENSORS_TRUNCATED);
});

test("length prefix: 2^40 and 100_000_001 exceed the cap, 100_000_000 does not", () => {
  assertRejects(rawSafetensorsBytes("{}", 0, 2n ** 40n), ErrorCodes.SAFETENSORS_HEADER_TOO_LARGE, /1099511627776/);
  assertRejects(rawSafetensorsBytes("{}", 0, 2n ** 64n - 1n), ErrorCodes.SAFETENSORS_HEADER_TOO_LARGE);
  assertRejects(rawSafetensorsBytes("{}", 0, 100_000_001), ErrorCodes.SAFETENSORS_HEADER_TOO_LARGE);
  // At the cap exactly the length is legal, so the failure is that the file does not hold it.
  assertRejects(rawSafetensorsBytes("{}", 0, 100_000_000), ErrorCodes.SAFETENSORS_TRUNCATED);
});

test("length prefix: N of 0 or 1 is too small for a JSON object", () => {
  assertRejects(rawSafetensorsBytes("", 0, 0), ErrorCodes.SAFETENSORS_HEADER_TOO_SMALL);
  assertRejects(rawSafetensorsBytes("{", 0, 1), ErrorCodes.SAFETENSORS_HEADER_TOO_SMALL);
});

test("length prefix: a header running past the end of the file is truncated", () => {
  assertRejects(rawSafetensorsBytes("{}  ", 0, 100), ErrorCodes.SAFETENSORS_TRUNCATED, /runs past the end/);
});

test("a buffer shorter than the header it must hold is truncated, even if the file is long enough", () => {
  const bytes = file("{}      ");
  assert.throws(
    () => parseSafetensorsHeader({ bytes: bytes.subarray(0, 12), fileSize: bytes.length, path: PATH }),
    (error: unknown) => error instanceof AbliterateError && error.code === ErrorCodes.SAFETENSORS_TRUNCATED,
  );
});

test("non-UTF-8 header bytes are rejected", () => {
  assertRejects(rawSafetensorsBytes(new Uint8Array([0x7b, 0xff, 0x7d])), ErrorCodes.SAFETENSORS_INVALID_UTF8);
  // An encoded surrogate (CESU-8) and an overlong "/" are not UTF-8 either.
  assertRejects(rawSafetensorsBytes(new Uint8Array([0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d])), ErrorCodes.SAFETENSORS_INVALID_UTF8);
  assertRejects(rawSafetensorsBytes(new Uint8Array([0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x7d])), ErrorCodes.SAFETENSORS_INVALID_UTF8);
});

test("text that is not JSON is rejected", () => {
  for (const json of ["{abc}", "{ ", '{"a":}', "{}x", "{} {}", '{"a":{"dtype":"F32",}}', "\ufeff{}", '{"a\u0001":1}', '{"\\x":1}', '{"\\ud800":1}']) {
    assertRejects(file(json), ErrorCodes.SAFETENSORS_INVALID_JSON);
  }
});

test("JSON that is not an object is rejected", () => {
  assertRejects(file("[]"), ErrorCodes.SAFETENSORS_INVALID_JSON, /an array, not a JSON object/);
  assertRejects(file('"{}"'), ErrorCodes.SAFETENSORS_INVALID_JSON, /a string/);
  assertRejects(file("12"), ErrorCodes.SAFETENSORS_INVALID_JSON);
  assertRejects(file("null"), ErrorCodes.SAFETENSORS_INVALID_JSON);
});

test("duplicate keys are rejected at the top level, inside entries and inside __metadata__", () => {
  assertRejects(file(`{"w":${entry("U8", [2], 0, 2)},"w":${entry("U8", [2], 0, 2)}}`, 2), ErrorCodes.SAFETENSORS_INVALID_JSON, /duplicate key "w"/);
  assertRejects(file(`{"w":{"dtype":"U8","dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, 2), ErrorCodes.SAFETENSORS_INVALID_JSON, /duplicate key "dtype"/);
  assertRejects(file(`{"__metadata__":{"a":"1","a":"2"}}`), ErrorCodes.SAFETENSORS_INVALID_JSON);
  // The same key spelled with an escape is still the same key.
  assertRejects(file(`{"w":${entry("U8", [1], 0, 1)},"\\u0077":${entry("U8", [1], 1, 2)}}`, 2), ErrorCodes.SAFETENSORS_INVALID_JSON);
});

test("malformed tensor entries are rejected", () => {
  const cases: [string, RegExp][] = [
    [`{"w":[1,2]}`, /entry is an array/],
    [`{"w":"F32"}`, /entry is a string/],
    [`{"w":{"shape":[1],"data_offsets":[0,4]}}`, /no "dtype"/],
    [`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, /no "shape"/],
    [`{"w":{"dtype":"F32","shape":[1]}}`, /no "data_offsets"/],
    [`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"offsets":[0,4]}}`, /unexpected key "offsets"/],
    [`{"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}}`, /dtype is the number 7/],
    [`{"w":{"dtype":"F32","shape":4,"data_offsets":[0,16]}}`, /shape is the number 4/],
    [`{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, /shape\[0\] is the number -1/],
    [`{"w":{"dtype":"F32","shape":[-0],"data_offsets":[0,0]}}`, /shape\[0\]/],
    [`{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, /shape\[0\] is the number 1.5/],
    [`{"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}`, /shape\[0\]/],
    [`{"w":{"dtype":"F32","shape":[1e0],"data_offsets":[0,4]}}`, /shape\[0\]/],
    [`{"w":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}`, /shape\[0\] is a string/],
    [`{"w":{"dtype":"F32","shape":[[1]],"data_offsets":[0,4]}}`, /shape\[0\] is an array/],
    [`{"w":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,4]}}`, /below 2\^53/],
    [`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}`, /of length 1/],
    [`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, /of length 3/],
    [`{"w":{"dtype":"F32","shape":[1],"data_offsets":{"0":0,"1":4}}}`, /data_offsets is an object/],
    [`{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}`, /not non-negative integers/],
    [`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4.5]}}`, /not non-negative integers/],
    [`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,9007199254740993]}}`, /below 2\^53/],
    [`{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, /end before they begin/],
    [`{"w":{"dtype":"F32","shape":[1],"data_offsets":[null,4]}}`, /null/],
  ];
  for (const [json, pattern] of cases) {
    const error = assertRejects(file(json, 4), ErrorCodes.SAFETENSORS_INVALID_ENTRY, pattern);
    assert.match(error.message, /tensor "w"/, json);
  }
});

test("__metadata__ must be an object of strings", () => {
  assertRejects(file(`{"__metadata__":{"format":1}}`), ErrorCodes.SAFETENSORS_INVALID_ENTRY, /value for "format" is the number 1/);
  assertRejects(file(`{"__metadata__":{"nested":{"a":"b"}}}`), ErrorCodes.SAFETENSORS_INVALID_ENTRY);
  assertRejects(file(`{"__metadata__":["a"]}`), ErrorCodes.SAFETENSORS_INVALID_ENTRY, /an array/);
  assertRejects(file(`{"__metadata__":"pt"}`), ErrorCodes.SAFETENSORS_INVALID_ENTRY);
});

test("unknown dtypes are rejected, including names inherited by plain objects", () => {
  for (const dtype of ["F31", "float32", "f32", "", "constructor", "__proto__", "toString", "PackedI4"]) {
    assertRejects(file(`{"w":${entry(dtype, [1], 0, 4)}}`, 4), ErrorCodes.SAFETENSORS_UNKNOWN_DTYPE, /unknown dtype/);
  }
});

test("shape × dtype beyond 2^53 overflows", () => {
  const huge = 2 ** 40;
  assertRejects(file(`{"w":${entry("F32", [huge, huge], 0, 4)}}`, 4), ErrorCodes.SAFETENSORS_SIZE_OVERFLOW);
  // 2^51 elements of 32 bits is 2^56 bits: the element count is fine, the bit count is not.
  assertRejects(file(`{"w":${entry("F32", [2 ** 51], 0, 4)}}`, 4), ErrorCodes.SAFETENSORS_SIZE_OVERFLOW, /bits/);
  // Multiplied left to right as the crate does: the overflow happens before the zero is reached.
  assertRejects(file(`{"w":${entry("F32", [huge, huge, 0], 0, 0)}}`), ErrorCodes.SAFETENSORS_SIZE_OVERFLOW);
});

test("data_offsets that disagree with shape × dtype are a size mismatch, with the documented message", () => {
  const error = assertRejects(
    file(`{"model.layers.3.mlp.down_proj.weight":${entry("F32", [4, 4], 0, 10)}}`, 10),
    ErrorCodes.SAFETENSORS_SIZE_MISMATCH,
  );
  assert.equal(
    error.message,
    `${PATH}: tensor "model.layers.3.mlp.down_proj.weight" data_offsets [0, 10] do not match shape [4, 4] × F32 (64 bytes)`,
  );
  assertRejects(file(`{"w":${entry("BF16", [3], 0, 8)}}`, 8), ErrorCodes.SAFETENSORS_SIZE_MISMATCH, /\(6 bytes\)/);
});

test("sub-byte dtypes must fill whole bytes", () => {
  assertRejects(file(`{"w":${entry("F4", [3], 0, 2)}}`, 2), ErrorCodes.SAFETENSORS_SIZE_MISMATCH, /12 bits, not a whole number of bytes/);
  assertRejects(file(`{"w":${entry("F6_E2M3", [2], 0, 2)}}`, 2), ErrorCodes.SAFETENSORS_SIZE_MISMATCH);
  const f4 = parse(file(`{"a":${entry("F4", [2, 3], 0, 3)},"b":${entry("F6_E3M2", [4], 3, 6)}}`, 6));
  assert.deepEqual(f4.tensors.map((t) => t.byteLength), [3, 3]);
});

test("overlapping offsets are rejected", () => {
  assertRejects(file(`{"a":${entry("U8", [16], 0, 16)},"b":${entry("U8", [16], 8, 24)}}`, 24), ErrorCodes.SAFETENSORS_INVALID_OFFSETS, /tensor "b".*overlaps/);
  // Two tensors claiming the same bytes.
  assertRejects(file(`{"a":${entry("U8", [4], 0, 4)},"b":${entry("U8", [4], 0, 4)}}`, 4), ErrorCodes.SAFETENSORS_INVALID_OFFSETS);
});

test("a hole between tensors is rejected", () => {
  assertRejects(file(`{"a":${entry("U8", [16], 0, 16)},"b":${entry("U8", [16], 20, 36)}}`, 36), ErrorCodes.SAFETENSORS_INVALID_OFFSETS, /hole of 4 bytes/);
});

test("offsets not starting at 0 are rejected", () => {
  assertRejects(file(`{"a":${entry("U8", [16], 4, 20)}}`, 20), ErrorCodes.SAFETENSORS_INVALID_OFFSETS, /must start at offset 0/);
});

test("the last tensor must end exactly at the end of the file", () => {
  assertRejects(file(`{"a":${entry("U8", [16], 0, 16)}}`, 17), ErrorCodes.SAFETENSORS_SIZE_MISMATCH_FILE, /1 trailing bytes/);
  assertRejects(file(`{"a":${entry("U8", [16], 0, 16)}}`, 15), ErrorCodes.SAFETENSORS_SIZE_MISMATCH_FILE, /1 bytes missing/);
  assertRejects(file(`{}`, 3), ErrorCodes.SAFETENSORS_SIZE_MISMATCH_FILE);
  // fileSize is what counts, not the buffer: a header-only buffer of a longer file.
  const bytes = file(`{"a":${entry("U8", [16], 0, 16)}}`);
  assert.throws(
    () => parseSafetensorsHeader({ bytes, fileSize: bytes.length + 20, path: PATH }),
    (error: unknown) => error instanceof AbliterateError && error.code === ErrorCodes.SAFETENSORS_SIZE_MISMATCH_FILE,
  );
});

test("allowed: the empty header {} with and without padding", () => {
  for (const json of ["{}", "{}      ", " {}", "{\n}\t\r\n "]) {
    const header = parse(file(json));
    const expectedLength = Buffer.byteLength(json);
    assert.equal(header.headerLength, expectedLength);
    assert.equal(header.dataStart, 8 + expectedLength);
    assert.equal(header.fileSize, 8 + expectedLength);
    assert.deepEqual(header.tensors, []);
    assert.equal(header.byName.size, 0);
    assert.equal(header.metadata, undefined);
  }
});

test("allowed: zero-sized tensors, rank-0 scalars, metadata, padding; infos sorted by offset", () => {
  // Entries deliberately out of offset order; two zero-sized tensors share offset 8.
  const json =
    `{"__metadata__":{"format":"pt","__proto__":"x"},` +
    `"scalar":${entry("F64", [], 8, 16)},` +
    `"empty.b":${entry("BF16", [0, 4096], 8, 8)},` +
    `"bias":${entry("I32", [2], 0, 8)},` +
    `"empty.a":${entry("U8", [3, 0], 8, 8)},` +
    `"m\\u00e9/\\"q\\"":${entry("BOOL", [2, 1, 1], 16, 18)}}`;
  const padded = json + " ".repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const n = Buffer.byteLength(padded);
  assert.equal(n % 8, 0);
  const header = parse(file(padded, 18));
  assert.equal(header.headerLength, n);
  assert.equal(header.dataStart, 8 + n);
  assert.deepEqual(
    header.tensors.map((t) => [t.name, t.dtype, t.shape, t.dataOffsets, t.byteOffset, t.byteLength]),
    [
      ["bias", "I32", [2], [0, 8], 8 + n, 8],
      ["empty.b", "BF16", [0, 4096], [8, 8], 16 + n, 0],
      ["empty.a", "U8", [3, 0], [8, 8], 16 + n, 0],
      ["scalar", "F64", [], [8, 16], 16 + n, 8],
      ['mé/"q"', "BOOL", [2, 1, 1], [16, 18], 24 + n, 2],
    ],
  );
  assert.equal(header.byName.get("scalar"), header.tensors[3]);
  assert.deepEqual(Object.keys(header.metadata ?? {}), ["format", "__proto__"]);
  assert.equal(header.metadata?.["__proto__"], "x");
  assert.equal(Object.getPrototypeOf(header.metadata), Object.prototype);
});

test("allowed: __metadata__ null is treated as absent, like the crate's Option", () => {
  const header = parse(file(`{"__metadata__":null,"a":${entry("U8", [1], 0, 1)}}`, 1));
  assert.equal(header.metadata, undefined);
  assert.equal(header.tensors.length, 1);
});

test("allowed: every dtype the crate defines, with its element size", () => {
  const sizes: [string, number, number[]][] = [
    ["BOOL", 1, [1]], ["U8", 1, [1]], ["I8", 1, [1]], ["F8_E5M2", 1, [1]], ["F8_E4M3", 1, [1]], ["F8_E8M0", 1, [1]],
    ["F8_E4M3FNUZ", 1, [1]], ["F8_E5M2FNUZ", 1, [1]], ["I16", 2, [1]], ["U16", 2, [1]], ["F16", 2, [1]], ["BF16", 2, [1]],
    ["I32", 4, [1]], ["U32", 4, [1]], ["F32", 4, [1]], ["C64", 8, [1]], ["F64", 8, [1]], ["I64", 8, [1]], ["U64", 8, [1]],
    ["F4", 1, [2]], ["F6_E2M3", 3, [4]], ["F6_E3M2", 3, [4]],
  ];
  let offset = 0;
  const parts = sizes.map(([dtype, bytes, shape], i) => `"t${i}":${entry(dtype, shape, offset, (offset += bytes))}`);
  const header = parse(file(`{${parts.join(",")}}`, offset));
  assert.deepEqual(header.tensors.map((t) => [t.dtype, t.byteLength]), sizes.map(([dtype, bytes]) => [dtype, bytes]));
});

test("integers of 16 digits are read exactly; bit counts up to 2^53 − 1 are allowed", () => {
  // 2^50 − 1 one-byte elements (16 digits, 2^53 − 8 bits): a valid header, so the only failure is that the
  // file does not hold the data, and the message shows the exact end.
  const big = 2 ** 50 - 1;
  const json = `{"w":${entry("U8", [big], 0, big)}}`;
  const error = assertRejects(file(json), ErrorCodes.SAFETENSORS_SIZE_MISMATCH_FILE);
  assert.match(error.message, new RegExp(`ends at byte ${8 + json.length + big} `));
  // Offsets up to 2^53 − 1 are read exactly too: they only disagree with the size.
  const max = Number.MAX_SAFE_INTEGER;
  assertRejects(file(`{"w":${entry("U8", [1], max - 1, max)}}`), ErrorCodes.SAFETENSORS_INVALID_OFFSETS, new RegExp(`\\[${max - 1}, ${max}\\]`));
  assertRejects(file(`{"w":${entry("U8", [2 ** 50], 0, 2 ** 50)}}`), ErrorCodes.SAFETENSORS_SIZE_OVERFLOW, /9007199254740992 bits/);
});
