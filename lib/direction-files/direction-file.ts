/**
 * What a direction file holds once read, whatever its format, and the one place that decides what the tensors in
 * it mean (docs/architectures.md § Direction files). Every reader (safetensors, .npy, .json, GGUF control vector, .pt) turns
 * its bytes into named fp64 tensors and hands them to `directionFileFromTensors`, so the rules are the same for all:
 * - `direction` [d]: one direction.
 * - `directions` [L+1, d]: per-layer candidates; row i is the residual stream entering layer i (row L: after the
 *   last layer).
 * - `subspace` [k, d]: rank k.
 * - optional `harmless_mean` [L+1, d] or [d] (for --projected / --biprojected); `harmful_mean` is accepted and
 *   ignored.
 * - a single unnamed array (bare .npy / .json / .pt tensor): [d] is a `direction`; [n, d] is a `matrix`, read as
 *   `directions` when a layer is chosen (--direction-layer / --per-layer) and as a `subspace` otherwise
 *   (see select-basis.ts).
 * Values are checked here: finite, non-empty, consistent widths.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";

export type DirectionFileKind = "direction" | "directions" | "subspace" | "matrix";
export type DirectionFileFormat = "safetensors" | "npy" | "json" | "gguf" | "pt";

export interface DirectionFile {
  path: string;
  sha256: string;
  format: DirectionFileFormat;
  kind: DirectionFileKind;
  /** One vector per row: 1 for `direction`, L+1 for `directions`, k for `subspace`, n for `matrix`. */
  rows: Float64Array[];
  dimension: number;
  /**
   * Rows the file does not define (a GGUF control vector has no vector for the embeddings or for layer 0's output);
   * they are zero-filled in `rows` and refused when selected.
   */
  absentRows?: ReadonlySet<number>;
  /** Optional `harmless_mean` rows (for the projected variants), when the file has them. */
  harmlessMean?: Float64Array[];
  metadata?: Record<string, string>;
}

/** A tensor as read from any format: row-major fp64 values. */
export interface DecodedTensor {
  shape: number[];
  values: Float64Array;
}

export const DIRECTION_NAMES = ["direction", "directions", "subspace"] as const;
/** Name under which readers report a single unnamed array. */
export const UNNAMED = "";

function splitRows(values: Float64Array, rowCount: number, dimension: number): Float64Array[] {
  return Array.from({ length: rowCount }, (_, row) => values.slice(row * dimension, (row + 1) * dimension));
}

function describe(name: string): string {
  return name === UNNAMED ? "the array" : `tensor "${name}"`;
}

function checkedRows(name: string, tensor: DecodedTensor, allowedRanks: readonly number[], path: string): { rows: Float64Array[]; dimension: number } {
  const { shape, values } = tensor;
  if (!allowedRanks.includes(shape.length)) {
    throw new AbliterateError(
      ErrorCodes.DIRECTION_INVALID,
      `${describe(name)} has shape [${shape.join(", ")}]; expected ${allowedRanks.map((rank) => (rank === 1 ? "[d]" : "[n, d]")).join(" or ")}`,
      { file: path },
    );
  }
  const rowCount = shape.length === 1 ? 1 : shape[0];
  const dimension = shape[shape.length - 1];
  if (rowCount === 0 || dimension === 0) {
    throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `${describe(name)} is empty (shape [${shape.join(", ")}])`, { file: path });
  }
  if (values.length !== rowCount * dimension) {
    throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `${describe(name)} holds ${values.length} values but its shape [${shape.join(", ")}] needs ${rowCount * dimension}`, { file: path });
  }
  const badIndex = values.findIndex((value) => !Number.isFinite(value));
  if (badIndex >= 0) {
    throw new AbliterateError(
      ErrorCodes.DIRECTION_NOT_FINITE,
      `${describe(name)} holds ${String(values[badIndex])} at element ${badIndex}; directions must be finite`,
      { file: path },
    );
  }
  return { rows: splitRows(values, rowCount, dimension), dimension };
}

export interface DirectionFromTensorsParams {
  path: string;
  sha256: string;
  format: DirectionFileFormat;
  tensors: ReadonlyMap<string, DecodedTensor>;
  metadata?: Record<string, string>;
  absentRows?: ReadonlySet<number>;
}

export function directionFileFromTensors({ path, sha256, format, tensors, metadata, absentRows }: DirectionFromTensorsParams): DirectionFile {
  const present = DIRECTION_NAMES.filter((name) => tensors.has(name));
  const unnamed = tensors.get(UNNAMED);
  if (present.length > 1) {
    throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `holds several of "direction", "directions", "subspace" (${present.join(", ")}); keep exactly one`, { file: path });
  }
  if (present.length === 0 && !unnamed) {
    throw new AbliterateError(
      ErrorCodes.DIRECTION_INVALID,
      `holds none of the tensors "direction" [d], "directions" [L+1, d] or "subspace" [k, d] (found: ${[...tensors.keys()].map((name) => name || "(unnamed)").join(", ") || "nothing"})`,
      { file: path },
    );
  }
  let kind: DirectionFileKind;
  let main: { rows: Float64Array[]; dimension: number };
  if (present.length === 1) {
    kind = present[0];
    main = checkedRows(kind, tensors.get(kind)!, kind === "direction" ? [1] : [2], path);
  } else {
    main = checkedRows(UNNAMED, unnamed!, [1, 2], path);
    kind = unnamed!.shape.length === 1 ? "direction" : "matrix";
  }
  let harmlessMean: Float64Array[] | undefined;
  const harmless = tensors.get("harmless_mean");
  if (harmless) {
    const checked = checkedRows("harmless_mean", harmless, [1, 2], path);
    if (checked.dimension !== main.dimension) {
      throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `tensor "harmless_mean" has width ${checked.dimension} but the direction has ${main.dimension}`, { file: path });
    }
    harmlessMean = checked.rows;
  }
  return {
    path,
    sha256,
    format,
    kind,
    rows: main.rows,
    dimension: main.dimension,
    ...(absentRows && absentRows.size > 0 ? { absentRows } : {}),
    ...(harmlessMean ? { harmlessMean } : {}),
    ...(metadata ? { metadata } : {}),
  };
}
