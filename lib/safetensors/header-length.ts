import { AbliterateError, ErrorCodes } from "../errors.js";

/** The crate's MAX_HEADER_SIZE: 100 MB, decimal. */
export const MAX_HEADER_LENGTH = 100_000_000;

/** "{}" is the smallest header that can hold a JSON object. */
const MIN_HEADER_LENGTH = 2;

export interface HeaderLengthParams {
  /** At least the first 8 bytes of the file (fewer only when the file itself is shorter). */
  prefix: Uint8Array;
  fileSize: number;
  path: string;
}

/**
 * Reads N from the 8-byte little-endian prefix and checks it against the cap and the file size. It runs before
 * anything of size N is allocated, so a hostile length can never drive an allocation.
 */
export function headerLengthFromPrefix({ prefix, fileSize, path }: HeaderLengthParams): number {
  if (fileSize < 8 || prefix.length < 8) {
    throw new AbliterateError(
      ErrorCodes.SAFETENSORS_TRUNCATED,
      `file is ${fileSize} bytes, shorter than the 8-byte header length prefix`,
      { file: path },
    );
  }
  const announced = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (announced > BigInt(MAX_HEADER_LENGTH)) {
    throw new AbliterateError(
      ErrorCodes.SAFETENSORS_HEADER_TOO_LARGE,
      `header length ${announced} exceeds the ${MAX_HEADER_LENGTH}-byte cap`,
      { file: path },
    );
  }
  const headerLength = Number(announced);
  if (headerLength < MIN_HEADER_LENGTH) {
    throw new AbliterateError(
      ErrorCodes.SAFETENSORS_HEADER_TOO_SMALL,
      `header length ${headerLength} is too small to hold a JSON object (minimum ${MIN_HEADER_LENGTH})`,
      { file: path },
    );
  }
  if (8 + headerLength > fileSize) {
    throw new AbliterateError(
      ErrorCodes.SAFETENSORS_TRUNCATED,
      `header length ${headerLength} runs past the end of the file (${fileSize} bytes, so at most ${fileSize - 8} header bytes)`,
      { file: path },
    );
  }
  return headerLength;
}
