/**
 * Reads a direction file into plain fp64 vectors. Formats (DESIGN.md § Direction files): a safetensors file holding
 * `direction` [d], `directions` [n_layers + 1, d] (per-layer candidates) or `subspace` [k, d].
 * Validation happens here, before anything is written: finite values, the model's hidden size, non-zero norms.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { decode, type NativeDtype } from "../native/addon.js";
import { readSafetensorsHeader } from "../safetensors/read-header.js";
import { readTensorBytes } from "../safetensors/read-tensor-bytes.js";

export type DirectionFileKind = "direction" | "directions" | "subspace";

export interface DirectionFile {
  path: string;
  sha256: string;
  kind: DirectionFileKind;
  /** One vector per row: 1 for `direction`, L+1 for `directions`, k for `subspace`. */
  rows: Float64Array[];
  dimension: number;
  /** Optional `harmless_mean` [L+1, d] rows (for the projected variants), when the file has them. */
  harmlessMean?: Float64Array[];
  metadata?: Record<string, string>;
}

const FLOAT_DTYPES: readonly string[] = ["F64", "F32", "F16", "BF16"];

function splitRows(values: Float64Array, rowCount: number, dimension: number): Float64Array[] {
  return Array.from({ length: rowCount }, (_, row) => values.slice(row * dimension, (row + 1) * dimension));
}

export async function loadDirectionFile(path: string): Promise<DirectionFile> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `cannot read direction file (${(error as NodeJS.ErrnoException).code ?? String(error)})`, { file: path, cause: error });
  }
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  const header = await readSafetensorsHeader(path);
  const present = (["direction", "directions", "subspace"] as const).filter((name) => header.byName.has(name));
  if (present.length !== 1) {
    throw new AbliterateError(
      ErrorCodes.DIRECTION_INVALID,
      present.length === 0
        ? `holds none of the tensors "direction" [d], "directions" [L+1, d] or "subspace" [k, d] (found: ${[...header.byName.keys()].join(", ") || "nothing"})`
        : `holds several of "direction", "directions", "subspace" (${present.join(", ")}); keep exactly one`,
      { file: path },
    );
  }
  const kind = present[0];
  const readMatrix = async (name: string): Promise<{ rows: Float64Array[]; dimension: number }> => {
    const info = header.byName.get(name)!;
    if (!FLOAT_DTYPES.includes(info.dtype)) {
      throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `tensor "${name}" has dtype ${info.dtype}; expected F64, F32, F16 or BF16`, { file: path });
    }
    const expectedRank = name === "direction" ? 1 : 2;
    if (info.shape.length !== expectedRank) {
      throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `tensor "${name}" has shape [${info.shape.join(", ")}]; expected rank ${expectedRank}`, { file: path });
    }
    const rowCount = expectedRank === 1 ? 1 : info.shape[0];
    const dimension = info.shape[expectedRank - 1];
    if (rowCount === 0 || dimension === 0) {
      throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `tensor "${name}" is empty (shape [${info.shape.join(", ")}])`, { file: path });
    }
    const values = decode(await readTensorBytes(header, name), info.dtype as NativeDtype);
    const badIndex = values.findIndex((value) => !Number.isFinite(value));
    if (badIndex >= 0) {
      throw new AbliterateError(
        ErrorCodes.DIRECTION_NOT_FINITE,
        `tensor "${name}" holds ${String(values[badIndex])} at element ${badIndex}; directions must be finite`,
        { file: path },
      );
    }
    return { rows: splitRows(values, rowCount, dimension), dimension };
  };
  const { rows, dimension } = await readMatrix(kind);
  const harmlessMean = header.byName.has("harmless_mean") ? (await readMatrix("harmless_mean")).rows : undefined;
  return { path, sha256, kind, rows, dimension, harmlessMean, metadata: header.metadata };
}
