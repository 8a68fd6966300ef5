/**
 * Property-based fuzzing of the header parser (issue 6): whatever the bytes, parsing either yields a header that
 * satisfies every invariant the rest of the tool relies on, or throws AbliterateError with a SAFETENSORS_* code.
 * Never another exception, never a hang, and reads are never sized by what the file claims.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import { AbliterateError, ErrorCodes } from "../../lib/errors.js";
import { dtypeBits } from "../../lib/safetensors/dtypes.js";
import { parseSafetensorsHeader } from "../../lib/safetensors/parse-header.js";
import { readSafetensorsHeader } from "../../lib/safetensors/read-header.js";
import { serializeSafetensors } from "../../lib/safetensors/serialize-safetensors.js";
import type { SafetensorsHeader } from "../../lib/safetensors/types.js";
import { patternTensor, rawSafetensorsBytes, withTempDir } from "../helpers/safetensors-fixtures.js";

const PATH = "/fuzz/model.safetensors";
const RUNS = 2000;

/** Checks, independently of the parser, everything a consumer may assume about a parsed header. */
function assertHeaderInvariants(header: SafetensorsHeader, fileSize: number): void {
  assert.equal(header.path, PATH);
  assert.equal(header.fileSize, fileSize);
  assert.ok(header.headerLength >= 2 && header.headerLength <= 100_000_000);
  assert.equal(header.dataStart, 8 + header.headerLength);
  let expectedBegin = 0;
  for (const tensor of header.tensors) {
    assert.equal(header.byName.get(tensor.name), tensor);
    assert.ok(tensor.shape.every((size) => Number.isSafeInteger(size) && size >= 0));
    const bits = tensor.shape.reduce((product, size) => product * BigInt(size), 1n) * BigInt(dtypeBits(tensor.dtype));
    assert.equal(bits % 8n, 0n);
    assert.equal(BigInt(tensor.byteLength), bits / 8n);
    const [begin, end] = tensor.dataOffsets;
    assert.equal(begin, expectedBegin);
    assert.equal(end - begin, tensor.byteLength);
    assert.equal(tensor.byteOffset, header.dataStart + begin);
    assert.ok(tensor.byteOffset + tensor.byteLength <= fileSize);
    expectedBegin = end;
  }
  assert.equal(header.byName.size, header.tensors.length);
  assert.equal(header.dataStart + expectedBegin, fileSize);
  if (header.metadata) for (const value of Object.values(header.metadata)) assert.equal(typeof value, "string");
}

/** Parses; returns "ok" or the error code, failing the property on anything but a SAFETENSORS_* AbliterateError. */
function parseOutcome(bytes: Uint8Array, fileSize = bytes.length): string {
  try {
    const header = parseSafetensorsHeader({ bytes, fileSize, path: PATH });
    assertHeaderInvariants(header, fileSize);
    return "ok";
  } catch (error) {
    if (error instanceof assert.AssertionError) throw error;
    assert.ok(error instanceof AbliterateError, `not an AbliterateError: ${String(error)}`);
    assert.match(error.code, /^SAFETENSORS_/);
    assert.equal(error.file, PATH);
    assert.ok(error.message.includes(PATH));
    return error.code;
  }
}

/** A valid file with a few tensors of mixed dtypes (including zero-sized and rank-0) and metadata. */
function validFile(): Uint8Array {
  return serializeSafetensors({
    tensors: [
      patternTensor({ name: "model.layers.0.mlp.down_proj.weight", dtype: "BF16", shape: [4, 6], seed: 1 }),
      patternTensor({ name: "scale", dtype: "F32", shape: [], seed: 2 }),
      patternTensor({ name: "empty", dtype: "F16", shape: [0, 3], seed: 3 }),
      patternTensor({ name: "packed", dtype: "F4", shape: [2, 3], seed: 4 }),
      patternTensor({ name: "ids", dtype: "I64", shape: [3], seed: 5 }),
    ],
    metadata: { format: "pt" },
  });
}

test("fuzz: random bytes", () => {
  const codes = new Set<string>();
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => void codes.add(parseOutcome(bytes))),
    { numRuns: RUNS, seed: 1 },
  );
  // Random bytes mostly fail at the length prefix; the point is that they fail typed.
  assert.ok(codes.has(ErrorCodes.SAFETENSORS_HEADER_TOO_LARGE));
});

test("fuzz: random header text behind a correct length prefix", () => {
  const codes = new Set<string>();
  const text = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ unit: fc.constantFrom(..."{}[]\":,0123456789-.eE aFtrunl\\"), maxLength: 200 }),
    fc.json({ maxDepth: 4 }),
  );
  fc.assert(
    fc.property(text, fc.nat({ max: 64 }), (header, dataLength) => void codes.add(parseOutcome(rawSafetensorsBytes(header, dataLength)))),
    { numRuns: RUNS, seed: 2 },
  );
  assert.ok(codes.has(ErrorCodes.SAFETENSORS_INVALID_JSON));
});

test("fuzz: every truncation of a valid file", () => {
  const bytes = validFile();
  assert.equal(parseOutcome(bytes), "ok");
  const dataStart = 8 + Number(Buffer.from(bytes).readBigUInt64LE(0));
  fc.assert(
    fc.property(fc.integer({ min: 0, max: bytes.length - 1 }), fc.boolean(), (cut, claimFullSize) => {
      if (claimFullSize) {
        // A short buffer of a full-size file: fine exactly when the buffer holds the whole header.
        assert.equal(parseOutcome(bytes.subarray(0, cut), bytes.length) === "ok", cut >= dataStart, `buffer cut at ${cut}`);
      } else {
        assert.notEqual(parseOutcome(bytes.subarray(0, cut)), "ok", `a file cut at ${cut} parsed`);
      }
    }),
    { numRuns: RUNS, seed: 3 },
  );
});

test("fuzz: bit flips of a valid file", () => {
  const original = validFile();
  const outcomes = new Set<string>();
  fc.assert(
    fc.property(fc.array(fc.nat({ max: original.length * 8 - 1 }), { minLength: 1, maxLength: 8 }), (bits) => {
      const bytes = Uint8Array.from(original);
      for (const bit of bits) bytes[bit >> 3] ^= 1 << (bit & 7);
      outcomes.add(parseOutcome(bytes));
    }),
    { numRuns: RUNS, seed: 4 },
  );
  // Flips inside tensor data leave a valid file; flips in the header must be caught.
  assert.ok(outcomes.has("ok"));
  assert.ok(outcomes.size > 3, [...outcomes].join(", "));
});

/** Hostile JSON: valid-looking entries with hostile values spliced in as raw text. */
const hostileNumber = fc.oneof(
  fc.constantFrom(
    "0", "-0", "-1", "1.5", "1e3", "1E+2", "0.0", "01", "9007199254740991", "9007199254740992", "9007199254740993",
    "18446744073709551615", "18446744073709551616", "1e400", "-1e400", "1099511627776", "2251799813685248",
    "4503599627370496", "99999999999999999999999999999999999999999999999999",
  ),
  fc.nat({ max: 64 }).map(String),
);
const hostileValue: fc.Arbitrary<string> = fc.letrec<{ value: string }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    hostileNumber,
    fc.constantFrom("null", "true", "false", '"F32"', '"BF16"', '"F4"', '"constructor"', '"__proto__"', '""', "{}", "[]"),
    fc.array(tie("value"), { maxLength: 4 }).map((items) => `[${items.join(",")}]`),
    fc.array(fc.tuple(fc.constantFrom("dtype", "shape", "data_offsets", "x", "__proto__"), tie("value")), { maxLength: 4 })
      .map((pairs) => `{${pairs.map(([k, v]) => `"${k}":${v}`).join(",")}}`),
  ),
})).value;
const hostileEntry = fc.oneof(
  fc.record({
    dtype: fc.oneof(fc.constantFrom('"F32"', '"U8"', '"F4"', '"F6_E2M3"', '"C64"', '"I64"', '"nope"'), hostileValue),
    shape: fc.oneof(fc.array(hostileNumber, { maxLength: 4 }).map((dims) => `[${dims.join(",")}]`), hostileValue),
    offsets: fc.oneof(fc.tuple(hostileNumber, hostileNumber).map(([a, b]) => `[${a},${b}]`), hostileValue),
  }).map(({ dtype, shape, offsets }) => `{"dtype":${dtype},"shape":${shape},"data_offsets":${offsets}}`),
  hostileValue,
);
const hostileHeader = fc
  .array(fc.tuple(fc.constantFrom("a", "b", "c", "__metadata__", "__proto__", "a\\u0000"), hostileEntry), { maxLength: 5 })
  .map((entries) => `{${entries.map(([name, entry]) => `"${name}":${entry}`).join(",")}}`);

test("fuzz: hostile JSON (huge shapes, negative numbers, floats, nested objects, duplicate keys)", () => {
  const codes = new Set<string>();
  fc.assert(
    fc.property(hostileHeader, fc.nat({ max: 96 }), (header, dataLength) => void codes.add(parseOutcome(rawSafetensorsBytes(header, dataLength)))),
    { numRuns: RUNS, seed: 5 },
  );
  for (const code of [
    ErrorCodes.SAFETENSORS_INVALID_JSON,
    ErrorCodes.SAFETENSORS_INVALID_ENTRY,
    ErrorCodes.SAFETENSORS_UNKNOWN_DTYPE,
    ErrorCodes.SAFETENSORS_SIZE_OVERFLOW,
    ErrorCodes.SAFETENSORS_SIZE_MISMATCH,
  ]) {
    assert.ok(codes.has(code), `hostile JSON never reached ${code}: ${[...codes].join(", ")}`);
  }
});

test("deep nesting and long inputs fail typed and fast", () => {
  const started = performance.now();
  for (const header of ["[".repeat(200_000), "{\"a\":".repeat(100_000), `{"a":${"[".repeat(129)}${"]".repeat(129)}}`]) {
    assert.equal(parseOutcome(rawSafetensorsBytes(header)), ErrorCodes.SAFETENSORS_INVALID_JSON);
  }
  // 127 levels are fine as JSON (they fail later, as an entry).
  assert.equal(parseOutcome(rawSafetensorsBytes(`{"a":${"[".repeat(126)}${"]".repeat(126)}}`)), ErrorCodes.SAFETENSORS_INVALID_ENTRY);
  // A 1 MB string key and a 100k-dimension shape.
  assert.equal(parseOutcome(rawSafetensorsBytes(`{"${"k".repeat(1_000_000)}":1}`)), ErrorCodes.SAFETENSORS_INVALID_ENTRY);
  const dims = Array(100_000).fill(2 ** 20).join(",");
  assert.equal(parseOutcome(rawSafetensorsBytes(`{"a":{"dtype":"U8","shape":[${dims}],"data_offsets":[0,0]}}`)), ErrorCodes.SAFETENSORS_SIZE_OVERFLOW);
  assert.ok(performance.now() - started < 5000, "hostile inputs took too long");
});

test("fuzz: readSafetensorsHeader never reads more than the file holds, whatever length it claims", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "claimed.safetensors");
    // Record the size of every buffer handed to FileHandle.read.
    const probe = await open(path, "w");
    const prototype = Object.getPrototypeOf(probe) as { read: (...args: unknown[]) => Promise<unknown> };
    await probe.close();
    const originalRead = prototype.read;
    let largestBuffer = 0;
    prototype.read = function (this: unknown, ...args: unknown[]) {
      const buffer = args[0];
      if (ArrayBuffer.isView(buffer)) largestBuffer = Math.max(largestBuffer, buffer.byteLength);
      return originalRead.apply(this, args);
    };
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 100_000_000n }), fc.bigInt({ min: 0n, max: 64n })),
          fc.uint8Array({ maxLength: 64 }),
          async (claimed, rest) => {
            const bytes = new Uint8Array(8 + rest.length);
            new DataView(bytes.buffer).setBigUint64(0, claimed, true);
            bytes.set(rest, 8);
            writeFileSync(path, bytes);
            largestBuffer = 0;
            try {
              assertHeaderInvariantsForFile(await readSafetensorsHeader(path), bytes.length, path);
            } catch (error) {
              if (error instanceof assert.AssertionError) throw error;
              assert.ok(error instanceof AbliterateError, String(error));
              assert.match(error.code, /^SAFETENSORS_/);
            }
            assert.ok(largestBuffer <= bytes.length, `read into ${largestBuffer} bytes for a ${bytes.length}-byte file claiming ${claimed}`);
          },
        ),
        { numRuns: RUNS, seed: 6 },
      );
    } finally {
      prototype.read = originalRead;
    }
  });
});

function assertHeaderInvariantsForFile(header: SafetensorsHeader, fileSize: number, path: string): void {
  assert.equal(header.path, path);
  assertHeaderInvariants({ ...header, path: PATH }, fileSize);
}
