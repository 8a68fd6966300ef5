import { rename, rm, writeFile } from "node:fs/promises";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { dtypeBits, isSafetensorsDtype } from "./dtypes.js";
import type { SerializableTensor } from "./types.js";

/** Names must be valid Unicode: JSON.stringify escapes a lone surrogate, and no reader (ours, Rust's) accepts it. */
const LONE_SURROGATE = /\p{Surrogate}/u;

export interface SerializeSafetensorsParams {
  tensors: SerializableTensor[];
  metadata?: Record<string, string>;
}

/**
 * Builds a safetensors file in memory. Deterministic: tensors are laid out in the given order with contiguous
 * data_offsets, the header JSON has the crate's form (`__metadata__` first, then entries with keys dtype, shape,
 * data_offsets, no whitespace) and is padded with spaces to a multiple of 8 bytes, as the Rust/Python writer
 * does. For the writer's own tensor order, pass the tensors through `sortLikeSafetensorsWriter` first.
 */
export function serializeSafetensors(params: SerializeSafetensorsParams): Buffer {
  return Buffer.concat(safetensorsParts(params));
}

/**
 * The same file as parts: the 8-byte length and padded header, then each tensor's data as given (not copied), for
 * writers that stream them out; a multi-GB activations file is then never held twice.
 */
export function safetensorsParts({ tensors, metadata }: SerializeSafetensorsParams): Uint8Array[] {
  const seen = new Set<string>();
  const parts: string[] = [];
  if (metadata !== undefined) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== "string" || LONE_SURROGATE.test(key) || LONE_SURROGATE.test(value)) {
        throw new AbliterateError(
          ErrorCodes.SAFETENSORS_INVALID_ENTRY,
          `__metadata__ entry ${JSON.stringify(key)} is not a pair of well-formed strings`,
        );
      }
    }
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const tensor of tensors) {
    const label = `tensor ${JSON.stringify(tensor.name)}`;
    if (tensor.name === "__metadata__" || seen.has(tensor.name) || LONE_SURROGATE.test(tensor.name)) {
      throw new AbliterateError(ErrorCodes.SAFETENSORS_INVALID_ENTRY, `${label} is reserved, given twice, or not well-formed Unicode`);
    }
    seen.add(tensor.name);
    if (!isSafetensorsDtype(tensor.dtype)) {
      throw new AbliterateError(ErrorCodes.SAFETENSORS_UNKNOWN_DTYPE, `${label}: unknown dtype ${JSON.stringify(tensor.dtype)}`);
    }
    if (!tensor.shape.every((size) => Number.isSafeInteger(size) && size >= 0)) {
      throw new AbliterateError(ErrorCodes.SAFETENSORS_INVALID_ENTRY, `${label}: shape [${tensor.shape.join(", ")}] is not non-negative integers`);
    }
    const bits = tensor.shape.reduce((product, size) => product * BigInt(size), 1n) * BigInt(dtypeBits(tensor.dtype));
    if (bits % 8n !== 0n || BigInt(tensor.data.length) * 8n !== bits) {
      throw new AbliterateError(
        ErrorCodes.SAFETENSORS_SIZE_MISMATCH,
        `${label}: ${tensor.data.length} data bytes do not match shape [${tensor.shape.join(", ")}] × ${tensor.dtype} (${bits} bits)`,
      );
    }
    const end = offset + tensor.data.length;
    parts.push(
      `${JSON.stringify(tensor.name)}:{"dtype":"${tensor.dtype}","shape":[${tensor.shape.join(",")}],"data_offsets":[${offset},${end}]}`,
    );
    offset = end;
  }
  const json = Buffer.from(`{${parts.join(",")}}`, "utf8");
  const headerLength = Math.ceil(json.length / 8) * 8;
  const header = Buffer.alloc(8 + headerLength, 0x20);
  header.writeBigUInt64LE(BigInt(headerLength), 0);
  json.copy(header, 8);
  return [header, ...tensors.map((tensor) => tensor.data)];
}

/** Writes through `path.tmp-<pid>` and a rename, so a reader never sees a half-written file at `path`. */
export async function writeSafetensorsFile(path: string, params: SerializeSafetensorsParams): Promise<void> {
  const bytes = serializeSafetensors(params);
  const temporary = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(temporary, bytes);
    await rename(temporary, path);
  } catch (cause) {
    await rm(temporary, { force: true });
    const code = (cause as NodeJS.ErrnoException).code;
    throw new AbliterateError(code === "ENOSPC" ? ErrorCodes.DISK_FULL : ErrorCodes.IO, `cannot write (${code ?? String(cause)})`, {
      file: path,
      cause,
    });
  }
}
