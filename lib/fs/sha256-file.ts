/**
 * sha256 of one whole file, read into one reused buffer. A read stream hands over a freshly allocated buffer per
 * chunk, and on this project's VMs faulting those pages in costs as much as the hashing: streaming 2.2 GB of shards
 * from a warm page cache hashed 0.75 GB/s, reading them into one 4 MB buffer 1.5 GB/s (bench/digest-bench.ts).
 */
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { fromFileSystemError } from "./file-system-error.js";

/** Bytes read at a time when the caller gives no buffer. */
export const SHA256_READ_BYTES = 4 << 20;

/** Hex sha256 of the file's bytes; a read error becomes an error naming the file (fromFileSystemError). */
export async function sha256File(path: string, buffer: Buffer = Buffer.allocUnsafe(SHA256_READ_BYTES)): Promise<string> {
  const hash = createHash("sha256");
  try {
    const file = await open(path, "r");
    try {
      for (;;) {
        const { bytesRead } = await file.read(buffer, 0, buffer.length, null);
        if (bytesRead === 0) break;
        hash.update(bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead));
      }
    } finally {
      await file.close();
    }
  } catch (error) {
    throw fromFileSystemError(error, path);
  }
  return hash.digest("hex");
}
