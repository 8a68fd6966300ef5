/**
 * llama.cpp control vectors (GGUF v2/v3 with `direction.N` tensors), parsed by hand with a bounds check on every
 * read. Index mapping, from llama.cpp (common.cpp `llama_control_vector_load_one`, llama-adapter.cpp
 * `llama_adapter_cvec::apply`, and the model graphs, which call `build_cvec(cur, il)` on layer il's output after its
 * residual adds):
 * - `direction.N` (N ≥ 1; `direction.0` is rejected by the loader) is stored in slot N − 1 and copied into
 *   tensors[N], which is added to the output of layer il = N (0-based).
 * - Layer N's output is the residual stream entering layer N + 1, our `directions` row N + 1.
 * So `direction.N` → row N + 1. Rows 0 (embeddings) and 1 (layer 0's output) cannot be expressed in the format and
 * are reported absent, like any N the file skips.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import { decodeFloats, type FloatDtype } from "./decode-floats.js";
import type { DecodedTensor } from "./direction-file.js";

const GGML_TYPES: Record<number, FloatDtype> = { 0: "F32", 1: "F16" };
const GGML_TYPE_NAMES: Record<number, string> = { 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 30: "BF16" };
const MAX_DIMS = 4;

export function isGguf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x47 && bytes[1] === 0x47 && bytes[2] === 0x55 && bytes[3] === 0x46;
}

class Cursor {
  position = 0;
  private readonly view: DataView;
  constructor(private readonly bytes: Uint8Array, private readonly fail: (message: string) => never) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  need(count: number, what: string): void {
    if (count < 0 || this.position + count > this.bytes.length) this.fail(`truncated: ${what} at byte ${this.position} needs ${count} bytes, ${this.bytes.length - this.position} remain`);
  }
  u32(what: string): number {
    this.need(4, what);
    const value = this.view.getUint32(this.position, true);
    this.position += 4;
    return value;
  }
  u64(what: string): number {
    this.need(8, what);
    const value = this.view.getBigUint64(this.position, true);
    this.position += 8;
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} at byte ${this.position - 8} is ${value}, beyond any real file`);
    return Number(value);
  }
  skip(count: number, what: string): void {
    this.need(count, what);
    this.position += count;
  }
  string(what: string): string {
    const length = this.u64(`${what} length`);
    this.need(length, what);
    const text = new TextDecoder("utf-8", { fatal: false }).decode(this.bytes.subarray(this.position, this.position + length));
    this.position += length;
    return text;
  }
}

// Sizes of GGUF metadata value types (gguf_type); 8 = string and 9 = array are variable.
const SCALAR_SIZES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

function readValue(cursor: Cursor, type: number, key: string, depth: number, fail: (message: string) => never): string | number | undefined {
  if (type === 8) return cursor.string(`value of "${key}"`);
  if (type === 9) {
    if (depth > 2) fail(`metadata "${key}" nests arrays too deeply`);
    const elementType = cursor.u32(`array type of "${key}"`);
    const count = cursor.u64(`array length of "${key}"`);
    const size = SCALAR_SIZES[elementType];
    if (size !== undefined) cursor.skip(size * count, `array "${key}"`);
    else for (let i = 0; i < count; i += 1) readValue(cursor, elementType, key, depth + 1, fail);
    return undefined;
  }
  const size = SCALAR_SIZES[type];
  if (size === undefined) return fail(`metadata "${key}" has unknown value type ${type}`);
  // Only unsigned 32-bit values are kept (general.alignment, controlvector.layer_count); the rest are skipped.
  if (type === 4) return cursor.u32(`value of "${key}"`);
  cursor.skip(size, `value of "${key}"`);
  return undefined;
}

export function readGgufControlVector(bytes: Uint8Array, path: string): { tensors: Map<string, DecodedTensor>; metadata: Record<string, string>; absentRows: Set<number> } {
  const fail = (message: string): never => {
    throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `GGUF control vector: ${message}`, { file: path });
  };
  if (!isGguf(bytes)) fail("file does not start with the GGUF magic");
  const cursor = new Cursor(bytes, fail);
  cursor.skip(4, "magic");
  const version = cursor.u32("version");
  if (version !== 2 && version !== 3) fail(`GGUF version ${version} is not supported (2 and 3 are)`);
  const tensorCount = cursor.u64("tensor count");
  const kvCount = cursor.u64("metadata count");
  // Every tensor info and key/value pair takes at least 8 bytes; larger counts cannot fit in the file.
  if (tensorCount > bytes.length / 8 || kvCount > bytes.length / 8) fail(`announces ${tensorCount} tensors and ${kvCount} metadata entries, more than the file can hold`);
  const metadata: Record<string, string> = {};
  let alignment = 32;
  for (let i = 0; i < kvCount; i += 1) {
    const key = cursor.string("metadata key");
    const type = cursor.u32(`type of "${key}"`);
    const value = readValue(cursor, type, key, 0, fail);
    if (value !== undefined) metadata[key] = String(value);
    if (key === "general.alignment") {
      if (type !== 4 || typeof value !== "number" || value === 0 || (value & (value - 1)) !== 0) fail("general.alignment must be a power-of-two uint32");
      alignment = value as number;
    }
  }
  const architecture = metadata["general.architecture"];
  if (architecture !== undefined && architecture !== "controlvector") {
    fail(`general.architecture is "${architecture}", not "controlvector": this is a model or another adapter, not a control vector`);
  }
  const infos: { name: string; dims: number[]; type: number; offset: number }[] = [];
  for (let i = 0; i < tensorCount; i += 1) {
    const name = cursor.string("tensor name");
    const dimCount = cursor.u32(`dimension count of "${name}"`);
    if (dimCount === 0 || dimCount > MAX_DIMS) fail(`tensor "${name}" has ${dimCount} dimensions`);
    const dims = Array.from({ length: dimCount }, () => cursor.u64(`dimension of "${name}"`));
    const type = cursor.u32(`type of "${name}"`);
    const offset = cursor.u64(`offset of "${name}"`);
    infos.push({ name, dims, type, offset });
  }
  const dataStart = Math.ceil(cursor.position / alignment) * alignment;
  const byLayer = new Map<number, Float64Array>();
  let width: number | undefined;
  for (const info of infos) {
    const match = /^direction\.(\d+)$/.exec(info.name);
    if (!match) fail(`tensor "${info.name}" is not a direction.N tensor; a control vector holds only direction.1 … direction.N`);
    const layer = Number(match![1]);
    if (layer === 0) fail(`"direction.0" is invalid: llama.cpp numbers control-vector layers from 1 (direction.N is added to layer N's output)`);
    const dtype = GGML_TYPES[info.type];
    if (!dtype) fail(`tensor "${info.name}" has ggml type ${GGML_TYPE_NAMES[info.type] ?? info.type}; control vectors are F32 (or F16)`);
    const elements = info.dims.reduce((a, b) => a * b, 1);
    if (info.dims.some((dim, index) => index > 0 && dim !== 1)) fail(`tensor "${info.name}" has shape [${info.dims.join(", ")}]; a direction is 1-D`);
    if (width !== undefined && elements !== width) fail(`tensor "${info.name}" has ${elements} elements but others have ${width}`);
    width = elements;
    const begin = dataStart + info.offset;
    const length = elements * (dtype === "F32" ? 4 : 2);
    if (info.offset % alignment !== 0) fail(`tensor "${info.name}" offset ${info.offset} is not aligned to ${alignment}`);
    if (begin + length > bytes.length) fail(`tensor "${info.name}" spans bytes ${begin}..${begin + length} but the file has ${bytes.length}`);
    if (byLayer.has(layer)) fail(`"${info.name}" appears twice`);
    byLayer.set(layer, decodeFloats(bytes, dtype!, begin, elements));
  }
  if (byLayer.size === 0 || width === undefined || width === 0) fail("holds no direction.N tensors");
  const maxLayer = Math.max(...byLayer.keys());
  const rowCount = maxLayer + 2;
  const values = new Float64Array(rowCount * width!);
  const absentRows = new Set<number>();
  for (let row = 0; row < rowCount; row += 1) {
    const vector = byLayer.get(row - 1);
    if (vector) values.set(vector, row * width!);
    else absentRows.add(row);
  }
  return { tensors: new Map([["directions", { shape: [rowCount, width!], values }]]), metadata, absentRows };
}
