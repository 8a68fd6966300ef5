/**
 * Reads a direction file into plain fp64 vectors, whatever its format (docs/architectures.md § Direction files):
 * safetensors, .npy, .json, llama.cpp control-vector GGUF, or torch.save .pt (through a restricted reader).
 * The format is recognised by content (magic bytes), not by extension; what the tensors mean is decided once,
 * in direction-file.ts. Validation happens here, before anything is written.
 */
import { readRegularFile } from "../fs/read-regular-file.js";
import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { directionFileFromTensors, type DecodedTensor, type DirectionFile, type DirectionFileFormat } from "./direction-file.js";
import { isGguf, readGgufControlVector } from "./read-gguf-control-vector.js";
import { readJsonDirection } from "./read-json-direction.js";
import { isNpy, readNpy } from "./read-npy.js";
import { readPtDirection } from "./read-pt-direction.js";
import { readSafetensorsDirection } from "./read-safetensors-direction.js";
import { isZip } from "./read-zip.js";

export type { DirectionFile, DirectionFileKind, DirectionFileFormat } from "./direction-file.js";

/** Direction files hold a few vectors per layer; anything larger is not one. */
export const MAX_DIRECTION_FILE_BYTES = 1024 * 1024 * 1024;

function detectFormat(bytes: Uint8Array, path: string): DirectionFileFormat {
  if (isNpy(bytes)) return "npy";
  if (isGguf(bytes)) return "gguf";
  if (isZip(bytes)) return "pt";
  if (/\.safetensors$/i.test(path)) return "safetensors";
  // safetensors starts with a little-endian u64 header length, whose top byte is always 0; JSON text has no NULs.
  if (bytes.length >= 8 && bytes[7] === 0) return "safetensors";
  const text = new TextDecoder("latin1").decode(bytes.subarray(0, 64)).trimStart();
  if (text.startsWith("[") || text.startsWith("{")) return "json";
  throw new AbliterateError(
    ErrorCodes.DIRECTION_INVALID,
    "is not a direction file this tool reads: expected safetensors, .npy, .json, a llama.cpp control-vector .gguf or a torch.save .pt",
    { file: path },
  );
}

export async function loadDirectionFile(path: string): Promise<DirectionFile> {
  let bytes: Buffer;
  try {
    const info = await stat(path);
    if (!info.isFile()) throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, "is not a regular file", { file: path });
    if (info.size > MAX_DIRECTION_FILE_BYTES) {
      throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `is ${info.size} bytes; direction files over ${MAX_DIRECTION_FILE_BYTES} bytes are refused`, { file: path });
    }
    bytes = await readRegularFile(path);
  } catch (error) {
    if (error instanceof AbliterateError) throw error;
    throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `cannot read direction file (${(error as NodeJS.ErrnoException).code ?? String(error)})`, { file: path, cause: error });
  }
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const format = detectFormat(bytes, path);
  let read: { tensors: Map<string, DecodedTensor>; metadata?: Record<string, string>; absentRows?: Set<number> };
  try {
    switch (format) {
      case "safetensors":
        read = readSafetensorsDirection(bytes, path);
        break;
      case "npy":
        read = { tensors: readNpy(bytes, path) };
        break;
      case "json":
        read = readJsonDirection(bytes, path);
        break;
      case "gguf":
        read = readGgufControlVector(bytes, path);
        break;
      case "pt":
        read = readPtDirection(bytes, path);
        break;
    }
  } catch (error) {
    // The safetensors parser reports its own codes (truncation, bad JSON header...): all of them mean "bad direction file".
    if (error instanceof AbliterateError && format === "safetensors" && error.code.startsWith("SAFETENSORS_")) {
      throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `not a valid safetensors direction file: ${error.message}`, { file: path, cause: error });
    }
    throw error;
  }
  return directionFileFromTensors({ path, sha256, format, ...read });
}
