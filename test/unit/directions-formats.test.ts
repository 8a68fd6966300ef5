/**
 * Direction interop: files written by the real producers (torch.save, numpy.save, llama.cpp's gguf-py; made by
 * test/golden/projection/generate.py) read back to the exact values, and malformed or hostile files of every
 * format refused with DIRECTION_INVALID and a message that names the problem. No Python runs here.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadDirectionFile } from "../../lib/direction-files/load-direction.js";
import { readStoredZip } from "../../lib/direction-files/read-zip.js";
import { AbliterateError, ErrorCodes, type ErrorCode } from "../../lib/errors.js";
import { buildGguf, PROJECTION_GOLDEN_DIR, writeStoredZip } from "../helpers/family-fixtures.js";
import { makeRandom } from "../helpers/tiny-llama.js";

const FIXTURES = join(PROJECTION_GOLDEN_DIR, "directions");
const values = JSON.parse(readFileSync(join(FIXTURES, "values.json"), "utf8")) as { direction: number[]; matrix: number[][] };
const HIDDEN = values.direction.length;

function scratch(): string {
  return mkdtempSync(join(tmpdir(), "abl-dir-"));
}

/** Writes bytes under a name and expects loadDirectionFile to refuse them with `code` and a message matching `pattern`. */
async function expectRefusal(name: string, bytes: Uint8Array | string, pattern: RegExp, code: ErrorCode = ErrorCodes.DIRECTION_INVALID): Promise<void> {
  const dir = scratch();
  try {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    await assert.rejects(loadDirectionFile(path), (error: unknown) => {
      assert.ok(error instanceof AbliterateError, String(error));
      assert.equal(error.code, code, error.message);
      assert.match(error.message, pattern);
      assert.ok(error.message.includes(path), "the message names the file");
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function assertRowsEqual(actual: Float64Array[], expected: number[][], round: (x: number) => number = (x) => x): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((row, i) => assert.deepEqual([...row], expected[i].map(round), `row ${i}`));
}

const f32 = Math.fround;
/** Round to float16 / bfloat16 by arithmetic (ties to even), independent of the decoder under test. */
function roundToBits(x: number, mantissaBits: number, minExponent: number): number {
  if (x === 0) return x;
  const exponent = Math.max(Math.floor(Math.log2(Math.abs(x))), minExponent);
  const quantum = 2 ** (exponent - mantissaBits);
  const scaled = x / quantum;
  const floor = Math.floor(scaled);
  const rounded = scaled - floor > 0.5 || (scaled - floor === 0.5 && floor % 2 !== 0) ? floor + 1 : floor;
  return rounded * quantum;
}
const f16 = (x: number) => roundToBits(x, 10, -14);
const bf16 = (x: number) => roundToBits(f32(x), 7, -126);

test("torch.save files: dict, bare 2-D, strided view, bf16/f16, shared storage", async () => {
  const dict = await loadDirectionFile(join(FIXTURES, "dict-f32.pt"));
  assert.equal(dict.format, "pt");
  assert.equal(dict.kind, "direction");
  assertRowsEqual(dict.rows, [values.direction], f32);

  const bare = await loadDirectionFile(join(FIXTURES, "bare-f64-2d.pt"));
  assert.equal(bare.kind, "matrix");
  assertRowsEqual(bare.rows, values.matrix);

  // Stored as the transpose's storage and read back through strides (1, 3).
  const strided = await loadDirectionFile(join(FIXTURES, "strided-f64-2d.pt"));
  assertRowsEqual(strided.rows, values.matrix);

  const named = await loadDirectionFile(join(FIXTURES, "named-bf16-f16.pt"));
  assert.equal(named.kind, "subspace");
  assertRowsEqual(named.rows, values.matrix, bf16);
  assertRowsEqual(named.harmlessMean!, [values.matrix[0]], f16);

  const shared = await loadDirectionFile(join(FIXTURES, "shared-storage.pt"));
  assertRowsEqual(shared.rows, [values.direction]);
  assertRowsEqual(shared.harmlessMean!, [values.matrix[0]]);
});

test(".npy files: float32 1-D, float64 2-D; Fortran order and integer dtypes refused", async () => {
  const direction = await loadDirectionFile(join(FIXTURES, "direction-f32.npy"));
  assert.equal(direction.format, "npy");
  assertRowsEqual(direction.rows, [values.direction], f32);
  const matrix = await loadDirectionFile(join(FIXTURES, "matrix-f64.npy"));
  assert.equal(matrix.kind, "matrix");
  assertRowsEqual(matrix.rows, values.matrix);
  await assert.rejects(loadDirectionFile(join(FIXTURES, "matrix-fortran.npy")), /Fortran order/);
  await assert.rejects(loadDirectionFile(join(FIXTURES, "int32.npy")), /dtype '<i4' is not supported/);
});

test("llama.cpp control vector: direction.N becomes row N + 1; rows 0 and 1 are absent", async () => {
  const file = await loadDirectionFile(join(FIXTURES, "control-vector.gguf"));
  assert.equal(file.format, "gguf");
  assert.equal(file.kind, "directions");
  // The fixture holds direction.1 = matrix[0], direction.2 = matrix[1] (F32) and direction.3 = r (F16).
  assert.equal(file.rows.length, 5);
  assert.deepEqual([...file.absentRows!].sort(), [0, 1]);
  assertRowsEqual(file.rows.slice(2), [values.matrix[0].map(f32), values.matrix[1].map(f32), values.direction.map(f16)]);
  assert.deepEqual([...file.rows[0]], new Array(HIDDEN).fill(0));
  assert.equal(file.metadata!["controlvector.model_hint"], "llama");
});

test(".json arrays and named objects", async () => {
  const dir = scratch();
  try {
    const bare = join(dir, "bare.json");
    writeFileSync(bare, JSON.stringify(values.matrix));
    const matrix = await loadDirectionFile(bare);
    assert.equal(matrix.format, "json");
    assert.equal(matrix.kind, "matrix");
    assertRowsEqual(matrix.rows, values.matrix);
    const named = join(dir, "named.json");
    writeFileSync(named, JSON.stringify({ subspace: values.matrix.slice(0, 2), harmless_mean: values.direction, metadata: { source: "test" } }));
    const subspace = await loadDirectionFile(named);
    assert.equal(subspace.kind, "subspace");
    assertRowsEqual(subspace.harmlessMean!, [values.direction]);
    assert.equal(subspace.metadata!.source, "test");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("malformed .json is refused with the reason", async () => {
  await expectRefusal("a.json", "[1, 2", /not valid JSON/);
  await expectRefusal("a.json", "[[1, 2], [3]]", /not rectangular: row 1 has 1 values/);
  await expectRefusal("a.json", '[1, "2"]', /holds "2" at \[1\]/);
  await expectRefusal("a.json", "[[[1]]]", /more than 2 dimensions/);
  await expectRefusal("a.json", "[]", /empty array/);
  await expectRefusal("a.json", '{"directions": [1, 2]}', /"directions" has shape \[2\]; expected \[n, d\]/);
  await expectRefusal("a.json", '{"weights": [1, 2]}', /holds none of the tensors/);
  await expectRefusal("a.json", '{"direction": [1, 2], "subspace": [[1, 2]]}', /several of/);
  await expectRefusal("a.json", '{"direction": [1, 2], "harmless_mean": [1, 2, 3]}', /harmless_mean" has width 3/);
  await expectRefusal("a.json", "[1, 1e999]", /Infinity at element 1/, ErrorCodes.DIRECTION_NOT_FINITE);
});

/** A .npy file from its parts, so each rule can be broken alone. */
function npy(header: string, data: Uint8Array, version = 1): Uint8Array {
  const preamble = version === 1 ? 10 : 12;
  const padded = header.padEnd(Math.ceil((preamble + header.length + 1) / 64) * 64 - preamble - 1, " ") + "\n";
  const head = new Uint8Array(preamble);
  head.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const view = new DataView(head.buffer);
  if (version === 1) view.setUint16(8, padded.length, true);
  else view.setUint32(8, padded.length, true);
  return Buffer.concat([head, new TextEncoder().encode(padded), data]);
}

test("malformed .npy is refused with the reason", async () => {
  const data = new Uint8Array(new Float32Array(HIDDEN).fill(0.25).buffer);
  const ok = npy(`{'descr': '<f4', 'fortran_order': False, 'shape': (${HIDDEN},), }`, data);
  const dir = scratch();
  try {
    writeFileSync(join(dir, "ok.npy"), ok);
    assert.deepEqual([...(await loadDirectionFile(join(dir, "ok.npy"))).rows[0]], new Array(HIDDEN).fill(0.25));
    writeFileSync(join(dir, "v2.npy"), npy(`{'descr': '<f4', 'fortran_order': False, 'shape': (2, 8), }`, data, 2));
    assert.equal((await loadDirectionFile(join(dir, "v2.npy"))).rows.length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await expectRefusal("a.npy", ok.subarray(0, ok.length - 3), /needs 64 data bytes but the file holds 61 \(truncated\)/);
  await expectRefusal("a.npy", Buffer.concat([ok, new Uint8Array(4)]), /needs 64 data bytes but the file holds 68/);
  await expectRefusal("a.npy", ok.subarray(0, 40), /header announces \d+ bytes but the file ends/);
  await expectRefusal("a.npy", npy(`{'descr': '>f4', 'fortran_order': False, 'shape': (${HIDDEN},), }`, data), /big-endian/);
  await expectRefusal("a.npy", npy(`{'descr': '<f2', 'fortran_order': False, 'shape': (32,), }`, data), /'<f2' is not supported/);
  await expectRefusal("a.npy", npy(`{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (16,), }`, data), /structured dtypes/);
  await expectRefusal("a.npy", npy(`{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 4), }`, data), /expected 1-D \[d\] or 2-D/);
  await expectRefusal("a.npy", npy(`{'descr': '<f4', 'shape': (16,), }`, data), /no 'fortran_order'/);
  await expectRefusal("a.npy", npy(`{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (16,), }`, data), /appears twice/);
  await expectRefusal("a.npy", npy(`{'descr': '<f4', 'fortran_order': False, 'shape': (16,), } + __import__('os')`, data), /unexpected text after the dictionary/);
  const future = Uint8Array.from(ok);
  future[6] = 4;
  await expectRefusal("a.npy", future, /format version 4\.0 is not supported/);
});

test("malformed GGUF control vectors are refused with the reason, and truncation anywhere is caught", async () => {
  const vector = Array.from({ length: HIDDEN }, (_, i) => i - 3);
  const dir = scratch();
  try {
    const path = join(dir, "ok.gguf");
    writeFileSync(path, buildGguf({ kv: [["general.architecture", "controlvector"]], tensors: [{ name: "direction.4", values: vector }] }));
    const file = await loadDirectionFile(path);
    assert.deepEqual([...file.rows[5]], vector, "direction.4 is row 5");
    assert.deepEqual([...file.absentRows!], [0, 1, 2, 3, 4]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  await expectRefusal("a.gguf", buildGguf({ version: 1, tensors: [{ name: "direction.1", values: vector }] }), /GGUF version 1 is not supported/);
  await expectRefusal("a.gguf", buildGguf({ kv: [["general.architecture", "llama"]], tensors: [{ name: "direction.1", values: vector }] }), /general\.architecture is "llama", not "controlvector"/);
  await expectRefusal("a.gguf", buildGguf({ tensors: [{ name: "direction.0", values: vector }] }), /"direction\.0" is invalid/);
  await expectRefusal("a.gguf", buildGguf({ tensors: [{ name: "blk.0.attn_q.weight", values: vector }] }), /not a direction\.N tensor/);
  await expectRefusal("a.gguf", buildGguf({ tensors: [{ name: "direction.1", values: vector, type: 8 }] }), /ggml type Q8_0; control vectors are F32/);
  await expectRefusal("a.gguf", buildGguf({ tensors: [{ name: "direction.1", values: vector }, { name: "direction.2", values: vector.slice(1) }] }), /has 15 elements but others have 16/);
  await expectRefusal("a.gguf", buildGguf({ tensors: [{ name: "direction.1", values: vector, dims: [4, 4] }] }), /a direction is 1-D/);
  await expectRefusal("a.gguf", buildGguf({ tensors: [{ name: "direction.1", values: vector }, { name: "direction.1", values: vector }] }), /appears twice/);
  await expectRefusal("a.gguf", buildGguf({ tensors: [] }), /holds no direction\.N tensors/);
  // Huge announced counts and lengths are caught before anything is allocated.
  const huge = buildGguf({ tensors: [{ name: "direction.1", values: vector }] });
  new DataView(huge.buffer, huge.byteOffset).setBigUint64(8, 1n << 40n, true);
  await expectRefusal("a.gguf", huge, /more than the file can hold/);
  const real = readFileSync(join(FIXTURES, "control-vector.gguf"));
  for (let length = 4; length < real.length; length += 7) {
    await expectRefusal("cut.gguf", real.subarray(0, length), /truncated|spans bytes|GGUF/);
  }
});

// --- .pt: the real file's pickle, re-packed with hand-made changes -------------------------------------------

const realPt = readFileSync(join(FIXTURES, "dict-f32.pt"));
const realEntries = readStoredZip(realPt, "dict-f32.pt");
const realPickle = realEntries.get("dict-f32/data.pkl")!;
const realStorage = realEntries.get("dict-f32/data/0")!;

function pt(pickle: Uint8Array, storages: Record<string, Uint8Array> = { "0": realStorage }, method?: number): Uint8Array {
  return writeStoredZip([
    { name: "archive/data.pkl", data: pickle, method },
    ...Object.entries(storages).map(([key, data]) => ({ name: `archive/data/${key}`, data })),
    { name: "archive/byteorder", data: new TextEncoder().encode("little") },
  ]);
}

const ascii = (text: string) => new TextEncoder().encode(text);
const bytes = (...parts: (string | number[] | Uint8Array)[]) => Buffer.concat(parts.map((part) => (typeof part === "string" ? ascii(part) : Uint8Array.from(part))));

test("a re-packed torch pickle still reads (the hand-made zip writer is sound)", async () => {
  const dir = scratch();
  try {
    writeFileSync(join(dir, "a.pt"), pt(realPickle));
    assertRowsEqual((await loadDirectionFile(join(dir, "a.pt"))).rows, [values.direction], f32);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("hostile .pt payloads are refused without running anything", async () => {
  const marker = join(tmpdir(), `abl-pwned-${process.pid}`);
  // pickle.dumps of a class whose __reduce__ returns (os.system, ("touch MARKER",)), written out by hand.
  const osSystem = bytes([0x80, 0x02], "cos\nsystem\n", [0x71, 0x00, 0x58], new Uint8Array(new Uint32Array([6 + marker.length]).buffer), `touch ${marker}`, [0x85, 0x52, 0x2e]);
  await expectRefusal("evil.pt", pt(osSystem), /refused pickle global os\.system/);
  // The same through STACK_GLOBAL (protocol 4) with posix.system.
  const stackGlobal = bytes([0x80, 0x04, 0x8c, 5], "posix", [0x8c, 6], "system", [0x93, 0x8c, 2], "id", [0x85, 0x52, 0x2e]);
  await expectRefusal("evil.pt", pt(stackGlobal), /refused pickle global posix\.system/);
  // Hidden after a valid tensor: the dict value is replaced by builtins.eval.
  const hidden = Buffer.from(realPickle);
  const at = hidden.indexOf(ascii("collections\nOrderedDict"));
  const evil = Buffer.concat([hidden.subarray(0, at), ascii("builtins\neval\n"), hidden.subarray(at + "collections\nOrderedDict\n".length)]);
  await expectRefusal("evil.pt", pt(evil), /refused pickle global builtins\.eval/);
  // Opcodes that build arbitrary objects are refused by name.
  await expectRefusal("evil.pt", pt(bytes([0x80, 0x02, 0x7d, 0x7d, 0x62, 0x2e])), /refused pickle opcode 0x62 \(BUILD\)/);
  await expectRefusal("evil.pt", pt(bytes([0x80, 0x02, 0x28], "iposix\nsystem\n", [0x2e])), /refused pickle opcode 0x69 \(INST\)/);
  await expectRefusal("evil.pt", pt(bytes([0x80, 0x02, 0x28, 0x29, 0x81, 0x2e])), /0x81 \(NEWOBJ\)/);
  // OrderedDict is allowed, but only as OrderedDict().
  await expectRefusal("evil.pt", pt(bytes([0x80, 0x02], "ccollections\nOrderedDict\n", [0x4b, 1, 0x85, 0x52, 0x2e])), /refused call to collections\.OrderedDict with 1 argument/);
  assert.ok(!(await import("node:fs")).existsSync(marker), "nothing was executed");
});

test("broken .pt archives are refused with the reason", async () => {
  await expectRefusal("a.pt", pt(realPickle, {}), /storage 0 is missing from the archive/);
  await expectRefusal("a.pt", pt(realPickle, { "0": realStorage.subarray(0, 60) }), /storage 0 holds 60 bytes, but 16 F32 elements need 64/);
  await expectRefusal("a.pt", pt(realPickle, undefined, 8), /compressed \(method 8\); only stored entries/);
  // The tensor claims 16 elements of a 16-element storage starting at offset 1.
  const shifted = Buffer.from(realPickle);
  shifted[shifted.indexOf(Uint8Array.from([0x4b, 0x00, 0x4b, 0x10, 0x85]))! + 1] = 1;
  await expectRefusal("a.pt", pt(shifted), /reads past its 16-element storage/);
  await expectRefusal("a.pt", pt(realPickle.subarray(0, realPickle.length - 1)), /truncated inside an opcode/);
  await expectRefusal("a.pt", writeStoredZip([{ name: "x/other.bin", data: new Uint8Array(4) }]), /no <name>\/data\.pkl/);
  const flipped = Buffer.from(realPt);
  flipped[flipped.indexOf(realStorage) + 5] ^= 0xff;
  await expectRefusal("a.pt", flipped, /fails its CRC-32 check/);
  await expectRefusal("a.pt", pt(bytes([0x80, 0x02, 0x4b, 1, 0x2e])), /holds no tensor/);
  for (let length = 4; length < realPt.length; length += 13) {
    await expectRefusal("cut.pt", realPt.subarray(0, length), /zip archive/);
  }
});

test("safetensors direction files: malformed ones are DIRECTION_INVALID naming the file", async () => {
  await expectRefusal("a.safetensors", new Uint8Array([1, 2, 3]), /not a valid safetensors direction file/);
  await expectRefusal("a.bin", "hello", /not a direction file this tool reads/);
});

test("random corruption of every format ends in a typed error or a clean read, never a crash", async () => {
  const random = makeRandom(2024);
  const dir = scratch();
  try {
    const sources: [string, Uint8Array][] = [
      ["a.npy", readFileSync(join(FIXTURES, "matrix-f64.npy"))],
      ["a.gguf", readFileSync(join(FIXTURES, "control-vector.gguf"))],
      ["a.pt", realPt],
      ["a.json", new TextEncoder().encode(JSON.stringify({ directions: values.matrix }))],
      ["a.safetensors", readFileSync(join(PROJECTION_GOLDEN_DIR, "direction.safetensors"))],
    ];
    // The pickle itself, mutated and re-packed with a valid CRC, so the unpickler (not the CRC) meets the damage.
    for (let i = 0; i < 150; i += 1) {
      const pickle = Buffer.from(realPickle);
      for (let flips = 1 + Math.floor(random() * 3); flips > 0; flips -= 1) pickle[Math.floor(random() * pickle.length)] = Math.floor(random() * 256);
      sources.push([`p${i}.pt`, pt(pickle)]);
    }
    for (const [name, original] of sources.slice(0, 5)) {
      for (let i = 0; i < 60; i += 1) {
        const mutated = Buffer.from(original);
        for (let flips = 1 + Math.floor(random() * 3); flips > 0; flips -= 1) mutated[Math.floor(random() * mutated.length)] = Math.floor(random() * 256);
        sources.push([`m${i}-${name}`, mutated]);
      }
    }
    for (const [name, bytes] of sources) {
      const path = join(dir, name);
      writeFileSync(path, bytes);
      try {
        const file = await loadDirectionFile(path);
        assert.ok(file.rows.every((row) => row.every(Number.isFinite)), `${name}: a clean read holds finite values`);
      } catch (error) {
        assert.ok(error instanceof AbliterateError, `${name}: ${String((error as Error).stack)}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
