/**
 * The file a discovered subspace is kept in: `subspace` [k, d] (orthonormal rows, F64) — which apply reads as rank k
 * and verify checks — plus, in __metadata__, what each direction is (`directions`: a JSON list with the layer it was
 * measured at, the behaviour and damage left with it and the earlier ones removed, and what it induces alone).
 */
import { writeDirectionFile } from "./write-direction-file.js";

export const SUBSPACE_FORMAT = "abliterate-subspace";

export interface SubspaceDirectionInfo {
  layer: number;
  behaviour: number;
  unchanged: number;
  kl: number;
  induced: number;
}

export async function writeSubspaceFile(params: { path: string; rows: readonly Float64Array[]; directions: SubspaceDirectionInfo[]; metadata?: Record<string, string>; force?: boolean }): Promise<void> {
  await writeDirectionFile({
    path: params.path,
    tensor: "subspace",
    rows: params.rows,
    dimension: params.rows[0].length,
    metadata: { format: SUBSPACE_FORMAT, rank: String(params.rows.length), directions: JSON.stringify(params.directions), ...params.metadata },
    force: params.force,
  });
}
