/** Direction tensors from a safetensors file already in memory (direction files are small). */
import { AbliterateError, ErrorCodes } from "../errors.js";
import { parseSafetensorsHeader } from "../safetensors/parse-header.js";
import { decodeFloats, type FloatDtype } from "./decode-floats.js";
import type { DecodedTensor } from "./direction-file.js";

const FLOAT_DTYPES: readonly string[] = ["F64", "F32", "F16", "BF16"];
const READ_NAMES = ["direction", "directions", "subspace", "harmless_mean"];

export function readSafetensorsDirection(bytes: Uint8Array, path: string): { tensors: Map<string, DecodedTensor>; metadata?: Record<string, string> } {
  const header = parseSafetensorsHeader({ bytes, fileSize: bytes.length, path });
  const tensors = new Map<string, DecodedTensor>();
  for (const name of READ_NAMES) {
    const info = header.byName.get(name);
    if (!info) continue;
    if (!FLOAT_DTYPES.includes(info.dtype)) {
      throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `tensor "${name}" has dtype ${info.dtype}; expected F64, F32, F16 or BF16`, { file: path });
    }
    tensors.set(name, { shape: info.shape, values: decodeFloats(bytes, info.dtype as FloatDtype, info.byteOffset, info.shape.reduce((a, b) => a * b, 1)) });
  }
  return { tensors, metadata: header.metadata };
}
