/**
 * safetensors header parsing and validation, written by hand: the npm `safetensors` package is an unusable stub
 * (no reader, no writer), and we need every rule of the reference Rust crate enforced with errors that name the
 * file and the broken rule, before any native code touches a byte range the header claims.
 *
 * Rules, mirroring the crate's `read_metadata` + `Metadata::validate`:
 * - 8-byte LE length N ≤ 100 MB; 8 + N ≤ file size (checked before allocating N; see header-length.ts).
 * - The header is UTF-8 JSON: one object, surrounded by optional JSON whitespace. Python pads it with trailing
 *   spaces. The crate's "must start with '{'" check is still commented out upstream, so leading whitespace is
 *   accepted as the crate accepts it (a BOM is not whitespace and is rejected).
 * - Stricter than the crate, on purpose: duplicate keys (serde keeps one silently) and entries with keys other
 *   than dtype/shape/data_offsets (serde ignores them) are errors, because both hide what a writer meant.
 * - `__metadata__` is string → string (null is accepted as "absent", like the crate's Option).
 * - Every tensor: known dtype; shape of non-negative integers; data_offsets [begin, end] with begin ≤ end;
 *   numel × bits beyond 2^53 is an overflow error; bits a multiple of 8; end − begin equal to the byte size.
 * - Sorted by (begin, end), offsets are contiguous from 0 (no hole, no overlap), and the last end is exactly
 *   the end of the file.
 */
import { AbliterateError, ErrorCodes, type ErrorCode } from "../errors.js";
import { dtypeBits, isSafetensorsDtype } from "./dtypes.js";
import { headerLengthFromPrefix } from "./header-length.js";
import { describeJsonValue, isJsonObject, JsonNumber, parseStrictJson, quoteForMessage, type JsonValue } from "./parse-strict-json.js";
import type { SafetensorsHeader, SafetensorsTensorInfo } from "./types.js";

export interface ParseSafetensorsHeaderParams {
  /** At least the first 8 + N bytes of the file; the whole file is fine. */
  bytes: Uint8Array;
  fileSize: number;
  path: string;
}

const METADATA_KEY = "__metadata__";
const ENTRY_KEYS = ["dtype", "shape", "data_offsets"] as const;

export function parseSafetensorsHeader({ bytes, fileSize, path }: ParseSafetensorsHeaderParams): SafetensorsHeader {
  const headerLength = headerLengthFromPrefix({ prefix: bytes, fileSize, path });
  const dataStart = 8 + headerLength;
  if (bytes.length < dataStart) {
    throw new AbliterateError(
      ErrorCodes.SAFETENSORS_TRUNCATED,
      `only ${bytes.length} bytes available, the header needs ${dataStart}`,
      { file: path },
    );
  }

  let text: string;
  try {
    // ignoreBOM keeps a leading U+FEFF in the text so that it fails as JSON instead of vanishing.
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, dataStart));
  } catch (cause) {
    throw new AbliterateError(ErrorCodes.SAFETENSORS_INVALID_UTF8, "header is not valid UTF-8", { file: path, cause });
  }

  const root = parseStrictJson({ text, file: path, code: ErrorCodes.SAFETENSORS_INVALID_JSON, what: "header" });
  if (!isJsonObject(root)) {
    throw new AbliterateError(
      ErrorCodes.SAFETENSORS_INVALID_JSON,
      `header is ${describeJsonValue(root)}, not a JSON object`,
      { file: path },
    );
  }

  let metadata: Record<string, string> | undefined;
  const tensors: SafetensorsTensorInfo[] = [];
  for (const [name, value] of root) {
    if (name === METADATA_KEY) metadata = parseMetadata(value, path);
    else tensors.push(parseEntry(name, value, dataStart, path));
  }

  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let expectedBegin = 0;
  for (const [index, tensor] of tensors.entries()) {
    const [begin, end] = tensor.dataOffsets;
    if (begin !== expectedBegin) {
      const problem =
        index === 0
          ? `the tensor data must start at offset 0 (lowest offset is ${begin})`
          : begin > expectedBegin
            ? `leaves a hole of ${begin - expectedBegin} bytes after the previous tensor, which ends at ${expectedBegin}`
            : `overlaps the previous tensor, which ends at ${expectedBegin}`;
      throw new AbliterateError(
        ErrorCodes.SAFETENSORS_INVALID_OFFSETS,
        `tensor ${quoteForMessage(tensor.name)} data_offsets [${begin}, ${end}]: ${problem}`,
        { file: path },
      );
    }
    expectedBegin = end;
  }

  if (dataStart + expectedBegin !== fileSize) {
    const difference = fileSize - (dataStart + expectedBegin);
    throw new AbliterateError(
      ErrorCodes.SAFETENSORS_SIZE_MISMATCH_FILE,
      `tensor data ends at byte ${dataStart + expectedBegin} but the file is ${fileSize} bytes ` +
        (difference > 0 ? `(${difference} trailing bytes)` : `(${-difference} bytes missing)`),
      { file: path },
    );
  }

  const byName = new Map(tensors.map((tensor) => [tensor.name, tensor]));
  const header: SafetensorsHeader = { path, fileSize, headerLength, dataStart, tensors, byName };
  if (metadata !== undefined) header.metadata = metadata;
  return header;
}

function parseMetadata(value: JsonValue, path: string): Record<string, string> | undefined {
  if (value === null) return undefined;
  if (!isJsonObject(value)) {
    throw new AbliterateError(
      ErrorCodes.SAFETENSORS_INVALID_ENTRY,
      `__metadata__ is ${describeJsonValue(value)}, not an object of strings`,
      { file: path },
    );
  }
  const entries: [string, string][] = [];
  for (const [key, item] of value) {
    if (typeof item !== "string") {
      throw new AbliterateError(
        ErrorCodes.SAFETENSORS_INVALID_ENTRY,
        `__metadata__ value for ${quoteForMessage(key)} is ${describeJsonValue(item)}, not a string`,
        { file: path },
      );
    }
    entries.push([key, item]);
  }
  // fromEntries defines own properties, so a "__proto__" key stays a plain key.
  return Object.fromEntries(entries);
}

function parseEntry(name: string, value: JsonValue, dataStart: number, path: string): SafetensorsTensorInfo {
  const fail = (code: ErrorCode, problem: string): never => {
    throw new AbliterateError(code, `tensor ${quoteForMessage(name)}${problem}`, { file: path });
  };
  const invalid = (problem: string): never => fail(ErrorCodes.SAFETENSORS_INVALID_ENTRY, `: ${problem}`);
  if (!isJsonObject(value)) return invalid(`entry is ${describeJsonValue(value)}, not {dtype, shape, data_offsets}`);
  for (const key of ENTRY_KEYS) if (!value.has(key)) invalid(`entry has no "${key}"`);
  if (value.size !== ENTRY_KEYS.length) {
    const extra = [...value.keys()].find((key) => !(ENTRY_KEYS as readonly string[]).includes(key));
    invalid(`entry has the unexpected key ${quoteForMessage(extra ?? "")} (only dtype, shape, data_offsets are allowed)`);
  }

  const dtype = value.get("dtype");
  if (typeof dtype !== "string") return invalid(`dtype is ${describeJsonValue(dtype)}, not a string`);
  if (!isSafetensorsDtype(dtype)) {
    return fail(ErrorCodes.SAFETENSORS_UNKNOWN_DTYPE, `: unknown dtype ${quoteForMessage(dtype, 40)}`);
  }

  const rawShape = value.get("shape");
  if (!Array.isArray(rawShape)) return invalid(`shape is ${describeJsonValue(rawShape)}, not an array`);
  const shape: number[] = [];
  for (const [axis, dimension] of rawShape.entries()) {
    const size = nonNegativeSafeInteger(dimension);
    if (size === undefined) invalid(`shape[${axis}] is ${describeJsonValue(dimension)}, not a non-negative integer below 2^53`);
    shape.push(size as number);
  }

  const rawOffsets = value.get("data_offsets");
  if (!Array.isArray(rawOffsets) || rawOffsets.length !== 2) {
    const length = Array.isArray(rawOffsets) ? ` of length ${rawOffsets.length}` : "";
    return invalid(`data_offsets is ${describeJsonValue(rawOffsets)}${length}, not [begin, end]`);
  }
  const begin = nonNegativeSafeInteger(rawOffsets[0]);
  const end = nonNegativeSafeInteger(rawOffsets[1]);
  if (begin === undefined || end === undefined) {
    return invalid(`data_offsets [${rawOffsets.map(describeJsonValue).join(", ")}] are not non-negative integers below 2^53`);
  }
  if (end < begin) return invalid(`data_offsets [${begin}, ${end}] end before they begin`);

  // Exact in doubles: a product of two safe integers is exact when the true value is ≤ 2^53 − 1, and rounds to
  // ≥ 2^53 when it is not, so comparing the rounded product detects every overflow. Multiplied left to right
  // like the crate's checked_mul, so [2^40, 2^40, 0] overflows there and here alike.
  const bits = dtypeBits(dtype);
  let elements = 1;
  for (const size of shape) {
    elements *= size;
    if (elements > Number.MAX_SAFE_INTEGER) {
      fail(ErrorCodes.SAFETENSORS_SIZE_OVERFLOW, `: shape [${shape.join(", ")}] has more than 2^53 elements`);
    }
  }
  const totalBits = elements * bits;
  if (totalBits > Number.MAX_SAFE_INTEGER) {
    fail(ErrorCodes.SAFETENSORS_SIZE_OVERFLOW, `: shape [${shape.join(", ")}] × ${dtype} is ${BigInt(elements) * BigInt(bits)} bits, beyond 2^53`);
  }
  if (totalBits % 8 !== 0) {
    fail(ErrorCodes.SAFETENSORS_SIZE_MISMATCH, `: shape [${shape.join(", ")}] × ${dtype} is ${totalBits} bits, not a whole number of bytes`);
  }
  const byteLength = totalBits / 8;
  if (end - begin !== byteLength) {
    fail(
      ErrorCodes.SAFETENSORS_SIZE_MISMATCH,
      ` data_offsets [${begin}, ${end}] do not match shape [${shape.join(", ")}] × ${dtype} (${byteLength} bytes)`,
    );
  }
  return { name, dtype, shape, dataOffsets: [begin, end], byteOffset: dataStart + begin, byteLength };
}

/** Small integers arrive as numbers; larger ones (JsonNumber) have at least 16 digits, and few of those are safe. */
function nonNegativeSafeInteger(value: JsonValue | undefined): number | undefined {
  if (typeof value === "number") return value;
  if (!(value instanceof JsonNumber) || !value.isNonNegativeInteger() || value.text.length > 16) return undefined;
  const parsed = Number(value.text);
  return Number.isSafeInteger(parsed) ? parsed : undefined;
}
