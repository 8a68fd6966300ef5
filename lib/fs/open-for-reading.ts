import { constants } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { AbliterateError, ErrorCodes } from "../errors.js";

/**
 * Opens with O_NONBLOCK so a FIFO (or other special file) where a weight or config file should be cannot block
 * the open forever; callers then refuse anything that is not a regular file. On regular files the flag is inert.
 */
export async function openForReading(path: string): Promise<FileHandle> {
  try {
    return await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new AbliterateError(ErrorCodes.IO, `cannot open for reading (${code ?? String(cause)})`, {
      file: path,
      cause,
    });
  }
}
