/** Reads a whole small file (config, direction, index) that must be a regular file: a FIFO never blocks us. */
import { AbliterateError, ErrorCodes } from "../errors.js";
import { describeSpecialFile } from "./describe-special-file.js";
import { openForReading } from "./open-for-reading.js";

export async function readRegularFile(path: string): Promise<Buffer> {
  const handle = await openForReading(path);
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new AbliterateError(ErrorCodes.IO, `is ${describeSpecialFile(info) ?? "not a regular file"}, not a regular file`, { file: path });
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}
