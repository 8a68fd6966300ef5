/**
 * Writes a direction file apply reads: one of `direction` [d], `directions` [L+1, d] (zero rows where a stream has no
 * direction) or `subspace` [k, d], as F64, with string metadata, through the one output-file writer.
 */
import { writeOutputFile } from "../fs/write-output-file.js";
import { serializeSafetensors } from "../safetensors/serialize-safetensors.js";
import { TOOL_VERSION } from "../version.js";

export async function writeDirectionFile(params: {
  path: string;
  tensor: "direction" | "directions" | "subspace";
  rows: readonly (ArrayLike<number> | undefined)[];
  dimension: number;
  metadata?: Record<string, string>;
  force?: boolean;
}): Promise<void> {
  const d = params.dimension;
  const values = new Float64Array(params.rows.length * d);
  params.rows.forEach((row, i) => {
    if (row) values.set(Array.from(row), i * d);
  });
  const shape = params.tensor === "direction" ? [d] : [params.rows.length, d];
  const bytes = serializeSafetensors({
    tensors: [{ name: params.tensor, dtype: "F64", shape, data: new Uint8Array(values.buffer) }],
    metadata: { tool: `abliterate ${TOOL_VERSION}`, ...params.metadata },
  });
  await writeOutputFile({ path: params.path, data: bytes, force: params.force ?? true });
}
