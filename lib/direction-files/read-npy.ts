/**
 * NumPy `.npy` arrays (format versions 1.0, 2.0, 3.0), parsed by hand: the header is a Python dict literal, read
 * here by a tiny literal reader that knows only strings, True/False and tuples of integers, never by evaluating it.
 * Accepted: little-endian float32 / float64, C order, 1-D or 2-D, data exactly numel × itemsize bytes.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import { decodeFloats, type FloatDtype } from "./decode-floats.js";
import { UNNAMED, type DecodedTensor } from "./direction-file.js";

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const DTYPES: Record<string, FloatDtype> = { "<f4": "F32", "<f8": "F64" };

export function isNpy(bytes: Uint8Array): boolean {
  return bytes.length >= 6 && MAGIC.every((byte, index) => bytes[index] === byte);
}

type Literal = string | boolean | number[];

/** Reads `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`. */
function parseHeaderDict(text: string, fail: (message: string) => never): Map<string, Literal> {
  let position = 0;
  const skip = () => {
    while (position < text.length && /\s/.test(text[position])) position += 1;
  };
  const expect = (char: string) => {
    skip();
    if (text[position] !== char) fail(`header: expected "${char}" at character ${position} of ${JSON.stringify(text.trim())}`);
    position += 1;
  };
  const readString = (): string => {
    skip();
    const quote = text[position];
    if (quote !== "'" && quote !== '"') fail(`header: expected a quoted string at character ${position}`);
    const end = text.indexOf(quote, position + 1);
    if (end < 0) fail("header: unterminated string");
    const value = text.slice(position + 1, end);
    position = end + 1;
    return value;
  };
  const readValue = (): Literal => {
    skip();
    const char = text[position];
    if (char === "'" || char === '"') return readString();
    if (text.startsWith("True", position)) {
      position += 4;
      return true;
    }
    if (text.startsWith("False", position)) {
      position += 5;
      return false;
    }
    if (char === "(") {
      position += 1;
      const items: number[] = [];
      for (;;) {
        skip();
        if (text[position] === ")") {
          position += 1;
          return items;
        }
        const match = /^\d+/.exec(text.slice(position));
        if (!match) fail(`header: expected an integer in the shape tuple at character ${position}`);
        items.push(Number(match[0]));
        position += match[0].length;
        skip();
        if (text[position] === ",") position += 1;
        else if (text[position] !== ")") fail(`header: expected "," or ")" in the shape tuple at character ${position}`);
      }
    }
    return fail(`header: unsupported value at character ${position} (structured dtypes and other Python literals are not direction arrays)`);
  };
  const entries = new Map<string, Literal>();
  expect("{");
  for (;;) {
    skip();
    if (text[position] === "}") {
      position += 1;
      break;
    }
    const key = readString();
    expect(":");
    if (entries.has(key)) fail(`header: key "${key}" appears twice`);
    entries.set(key, readValue());
    skip();
    if (text[position] === ",") position += 1;
    else if (text[position] !== "}") fail(`header: expected "," or "}" at character ${position}`);
  }
  skip();
  if (position !== text.length) fail("header: unexpected text after the dictionary");
  return entries;
}

export function readNpy(bytes: Uint8Array, path: string): Map<string, DecodedTensor> {
  const fail = (message: string): never => {
    throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `.npy ${message}`, { file: path });
  };
  if (!isNpy(bytes)) fail("file does not start with the \\x93NUMPY magic");
  if (bytes.length < 10) fail("file is truncated inside its preamble");
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerStart: number;
  let headerLength: number;
  if (major === 1) {
    headerStart = 10;
    headerLength = view.getUint16(8, true);
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) fail("file is truncated inside its preamble");
    headerStart = 12;
    headerLength = view.getUint32(8, true);
  } else {
    return fail(`format version ${major}.${bytes[7]} is not supported (1.0, 2.0 and 3.0 are)`);
  }
  const dataStart = headerStart + headerLength;
  if (dataStart > bytes.length) fail(`header announces ${headerLength} bytes but the file ends after ${bytes.length - headerStart}`);
  let headerText: string;
  try {
    headerText = new TextDecoder(major === 3 ? "utf-8" : "latin1", { fatal: true }).decode(bytes.subarray(headerStart, dataStart));
  } catch {
    return fail("header is not valid text");
  }
  const header = parseHeaderDict(headerText, fail);
  const descr = header.get("descr");
  const fortranOrder = header.get("fortran_order");
  const shape = header.get("shape");
  if (typeof descr !== "string") return fail("header has no 'descr' string");
  if (typeof fortranOrder !== "boolean") return fail("header has no 'fortran_order' flag");
  if (!Array.isArray(shape)) return fail("header has no 'shape' tuple");
  const dtype = DTYPES[descr];
  if (!dtype) {
    return fail(
      `dtype '${descr}' is not supported: directions must be little-endian float32 ('<f4') or float64 ('<f8')` +
        (descr.startsWith(">") ? " (this array is big-endian; save it with .astype('<f4'))" : ""),
    );
  }
  if (fortranOrder) fail("array is in Fortran order; save it with np.ascontiguousarray(...) (C order)");
  if (shape.length !== 1 && shape.length !== 2) fail(`array has shape (${shape.join(", ")}); expected 1-D [d] or 2-D [n, d]`);
  const count = shape.reduce((a, b) => a * b, 1);
  const itemSize = dtype === "F32" ? 4 : 8;
  const expectedBytes = count * itemSize;
  const actualBytes = bytes.length - dataStart;
  if (actualBytes !== expectedBytes) {
    fail(`shape (${shape.join(", ")}) of ${descr} needs ${expectedBytes} data bytes but the file holds ${actualBytes}${actualBytes < expectedBytes ? " (truncated)" : ""}`);
  }
  return new Map([[UNNAMED, { shape: [...shape], values: decodeFloats(bytes, dtype, dataStart, count) }]]);
}
