/**
 * The projected variants (grimjim): r ← normalize(r − (r·ĥ)ĥ), with ĥ = normalize(mean harmless activation), so the
 * edit never touches the direction the model uses on harmless prompts. For a rank-k subspace every vector is
 * orthogonalized against ĥ and the result re-orthonormalized.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import { orthonormalizeRows, vectorNorm } from "./orthonormalize.js";

/** Below this fraction of its norm left after removing ĥ, a direction is taken to be parallel to ĥ. */
export const PARALLEL_TOLERANCE = 1e-6;

export interface ProjectOutHarmlessParams {
  rows: readonly Float64Array[];
  harmless: Float64Array;
  /** For messages: the direction file, and which harmless_mean row. */
  file: string;
  label: string;
}

/** Returns k × d orthonormal rows spanning the directions with ĥ removed (all rows ⟂ ĥ). */
export function projectOutHarmless({ rows, harmless, file, label }: ProjectOutHarmlessParams): Float64Array {
  const harmlessNorm = vectorNorm(harmless);
  if (harmlessNorm === 0) {
    throw new AbliterateError(ErrorCodes.DIRECTION_DEGENERATE, `${label} is zero, so there is no harmless direction to project out`, { file });
  }
  const unit = Float64Array.from(harmless, (value) => value / harmlessNorm);
  const projected = rows.map((row, index) => {
    const rowNorm = vectorNorm(row);
    const vector = Float64Array.from(row, (value) => value / (rowNorm || 1));
    // Twice, as in orthonormalize.ts: one pass leaves O(ε·|r·ĥ|) of ĥ behind.
    for (let pass = 0; pass < 2; pass += 1) {
      let dot = 0;
      for (let i = 0; i < vector.length; i += 1) dot += vector[i] * unit[i];
      for (let i = 0; i < vector.length; i += 1) vector[i] -= dot * unit[i];
    }
    if (rowNorm > 0 && vectorNorm(vector) < PARALLEL_TOLERANCE) {
      throw new AbliterateError(
        ErrorCodes.DIRECTION_DEGENERATE,
        `${rows.length === 1 ? "the direction" : `direction ${index}`} is parallel to ${label}; projecting it out leaves nothing`,
        { file },
      );
    }
    return vector;
  });
  // MGS only combines vectors that are each ⟂ ĥ, so the basis stays ⟂ ĥ up to rounding.
  return orthonormalizeRows(projected, file);
}
