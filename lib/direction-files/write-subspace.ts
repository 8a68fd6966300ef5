/**
 * The file a discovered subspace is kept in: `subspace` [k, d] (orthonormal rows, F64) — which apply reads as rank k
 * and verify checks — plus, in __metadata__, what each direction is (`directions`: a JSON list with the layer it was
 * measured at, the behaviour and damage left with it and the earlier ones removed, and what it induces alone).
 */
import { writeOutputFile } from "../fs/write-output-file.js";
import { serializeSafetensors } from "../safetensors/serialize-safetensors.js";
import { TOOL_VERSION } from "../version.js";

export const SUBSPACE_FORMAT = "abliterate-subspace";

export interface SubspaceDirectionInfo {
  layer: number;
  behaviour: number;
  unchanged: number;
  kl: number;
  induced: number;
}

export async function writeSubspaceFile(params: { path: string; rows: readonly Float64Array[]; directions: SubspaceDirectionInfo[]; metadata?: Record<string, string>; force?: boolean }): Promise<void> {
  const d = params.rows[0].length;
  const values = new Float64Array(params.rows.length * d);
  params.rows.forEach((row, i) => values.set(row, i * d));
  const bytes = serializeSafetensors({
    tensors: [{ name: "subspace", dtype: "F64", shape: [params.rows.length, d], data: new Uint8Array(values.buffer) }],
    metadata: { format: SUBSPACE_FORMAT, tool: `abliterate ${TOOL_VERSION}`, rank: String(params.rows.length), directions: JSON.stringify(params.directions), ...params.metadata },
  });
  await writeOutputFile({ path: params.path, data: bytes, force: params.force ?? true });
}
