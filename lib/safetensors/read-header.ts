import type { FileHandle } from "node:fs/promises";
import { openForReading } from "../fs/open-for-reading.js";
import { describeSpecialFile } from "../fs/describe-special-file.js";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { headerLengthFromPrefix } from "./header-length.js";
import { parseSafetensorsHeader } from "./parse-header.js";
import type { SafetensorsHeader } from "./types.js";

/**
 * Reads and validates a shard's header. Only 8 + N bytes are read, and N is checked against the 100 MB cap and
 * the file size before the N-byte buffer exists.
 */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const handle = await openForReading(path);
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new AbliterateError(ErrorCodes.IO, `is ${describeSpecialFile(stats) ?? "not a regular file"}, not a safetensors file`, { file: path });
    const fileSize = stats.size;
    const prefix = await readExactly(handle, path, 0, Math.min(8, fileSize));
    const headerLength = headerLengthFromPrefix({ prefix, fileSize, path });
    const bytes = new Uint8Array(8 + headerLength);
    bytes.set(prefix, 0);
    bytes.set(await readExactly(handle, path, 8, headerLength), 8);
    return parseSafetensorsHeader({ bytes, fileSize, path });
  } finally {
    await handle.close();
  }
}

/** Reads `length` bytes at `position` into a fresh, zero-offset buffer; a short file is a truncation error. */
export async function readExactly(handle: FileHandle, path: string, position: number, length: number): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  let filled = 0;
  while (filled < length) {
    let bytesRead: number;
    try {
      ({ bytesRead } = await handle.read(buffer, filled, length - filled, position + filled));
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      throw new AbliterateError(ErrorCodes.IO, `read failed at byte ${position + filled} (${code ?? String(cause)})`, {
        file: path,
        cause,
      });
    }
    if (bytesRead === 0) {
      throw new AbliterateError(
        ErrorCodes.SAFETENSORS_TRUNCATED,
        `file ended at byte ${position + filled} while reading ${length} bytes at ${position}`,
        { file: path },
      );
    }
    filled += bytesRead;
  }
  return buffer;
}
