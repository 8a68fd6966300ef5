/**
 * From a loaded direction file to the orthonormal basis the kernels use.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { DirectionFile } from "./load-direction.js";
import { orthonormalizeRows } from "./orthonormalize.js";

export interface DirectionBasis {
  /** k × d row-major, orthonormal rows. */
  basis: Float64Array;
  rank: number;
  dimension: number;
  /** Which rows of the file were used, for the report. */
  source: { kind: DirectionFile["kind"]; directionLayer?: number };
}

export interface SelectBasisParams {
  file: DirectionFile;
  hiddenSize: number;
  /** Required for `directions` [L+1, d]; index i is the residual stream entering layer i. */
  directionLayer?: number;
}

export function selectBasis({ file, hiddenSize, directionLayer }: SelectBasisParams): DirectionBasis {
  if (file.dimension !== hiddenSize) {
    throw new AbliterateError(
      ErrorCodes.DIRECTION_DIMENSION,
      `direction has dimension ${file.dimension} but the model's hidden_size is ${hiddenSize}`,
      { file: file.path },
    );
  }
  if (file.kind === "directions") {
    if (directionLayer === undefined) {
      throw new AbliterateError(
        ErrorCodes.INVALID_ARGUMENT,
        `holds "directions" [${file.rows.length}, ${file.dimension}] (one candidate per layer); choose one with --direction-layer 0..${file.rows.length - 1}`,
        { file: file.path },
      );
    }
    if (!Number.isInteger(directionLayer) || directionLayer < 0 || directionLayer >= file.rows.length) {
      throw new AbliterateError(
        ErrorCodes.INVALID_ARGUMENT,
        `--direction-layer ${directionLayer} is out of range: "directions" has rows 0..${file.rows.length - 1}`,
        { file: file.path },
      );
    }
    const basis = orthonormalizeRows([file.rows[directionLayer]], file.path);
    return { basis, rank: 1, dimension: hiddenSize, source: { kind: file.kind, directionLayer } };
  }
  if (directionLayer !== undefined) {
    throw new AbliterateError(
      ErrorCodes.INVALID_ARGUMENT,
      `--direction-layer applies only to a "directions" [L+1, d] file; this file holds "${file.kind}"`,
      { file: file.path },
    );
  }
  const basis = orthonormalizeRows(file.rows, file.path);
  return { basis, rank: file.rows.length, dimension: hiddenSize, source: { kind: file.kind } };
}
