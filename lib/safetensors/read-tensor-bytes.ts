import { AbliterateError, ErrorCodes } from "../errors.js";
import { openForReading } from "../fs/open-for-reading.js";
import { readExactly } from "./read-header.js";
import type { SafetensorsHeader } from "./types.js";

/** Small tensors only (norm weights, directions); big ones are streamed by the native code. */
export const MAX_TENSOR_READ_BYTES = 256 * 1024 * 1024;

/**
 * Reads one tensor's bytes into a fresh Uint8Array whose buffer starts at offset 0, so typed views
 * (`new Float32Array(bytes.buffer)`) are always aligned.
 */
export async function readTensorBytes(header: SafetensorsHeader, name: string): Promise<Uint8Array> {
  const tensor = header.byName.get(name);
  if (tensor === undefined) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `no tensor named ${JSON.stringify(name)}`, {
      file: header.path,
    });
  }
  if (tensor.byteLength > MAX_TENSOR_READ_BYTES) {
    throw new AbliterateError(
      ErrorCodes.INVALID_ARGUMENT,
      `tensor ${JSON.stringify(name)} is ${tensor.byteLength} bytes; reading whole tensors is limited to ` +
        `${MAX_TENSOR_READ_BYTES} bytes (256 MiB), larger ones must be streamed`,
      { file: header.path },
    );
  }
  const handle = await openForReading(header.path);
  try {
    const { size } = await handle.stat();
    if (size !== header.fileSize) {
      throw new AbliterateError(
        ErrorCodes.SAFETENSORS_SIZE_MISMATCH_FILE,
        `file is now ${size} bytes but its header was read when it was ${header.fileSize} bytes; it changed underneath`,
        { file: header.path },
      );
    }
    return await readExactly(handle, header.path, tensor.byteOffset, tensor.byteLength);
  } finally {
    await handle.close();
  }
}
