/**
 * Little-endian float bytes → fp64, exactly (every F16/BF16/F32 value is representable in fp64). Direction files
 * are small, so this runs in TypeScript and loading a direction never needs the native addon.
 */
import { dtypeBytes, type FloatDtype } from "../safetensors/dtypes.js";

export type { FloatDtype };

function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1024 + fraction) * 2 ** (exponent - 25);
}

/** Decodes `count` elements starting at byte `offset` of `bytes`. The caller has checked the bounds. */
export function decodeFloats(bytes: Uint8Array, dtype: FloatDtype, offset = 0, count = (bytes.length - offset) / dtypeBytes(dtype)): Float64Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float64Array(count);
  const scratch = new DataView(new ArrayBuffer(4));
  for (let i = 0; i < count; i += 1) {
    switch (dtype) {
      case "F64":
        out[i] = view.getFloat64(offset + i * 8, true);
        break;
      case "F32":
        out[i] = view.getFloat32(offset + i * 4, true);
        break;
      case "F16":
        out[i] = halfToNumber(view.getUint16(offset + i * 2, true));
        break;
      case "BF16":
        // bfloat16 is the top half of an fp32.
        scratch.setUint32(0, view.getUint16(offset + i * 2, true) << 16);
        out[i] = scratch.getFloat32(0);
        break;
    }
  }
  return out;
}
