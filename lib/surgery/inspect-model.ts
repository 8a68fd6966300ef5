/** inspect: what a surgery would touch and how, without a direction file and without writing anything. */
import { readModelConfig } from "../arch/model-config.js";
import { readCheckpoint } from "../safetensors/read-checkpoint.js";
import { planSurgery, type PlannedTensor, type SurgeryOptions } from "./plan-surgery.js";
import { findOtherWeights } from "./find-other-weights.js";

export interface InspectReport {
  dir: string;
  family: string;
  modelType: string;
  hiddenSize: number;
  numLayers: number;
  /** Count of tensors per dtype across the checkpoint. */
  dtypes: Record<string, number>;
  totalBytes: number;
  shards: number;
  tiedEmbeddings: boolean;
  notes: string[];
  targets: Pick<PlannedTensor, "name" | "kind" | "layer" | "orientation" | "dtype" | "shape" | "postNorm">[];
}

export async function inspectModel(params: { modelDir: string } & Omit<SurgeryOptions, "scale">): Promise<InspectReport> {
  const config = await readModelConfig(params.modelDir);
  const checkpoint = await readCheckpoint(params.modelDir);
  // A unit placeholder direction: post-norm bases are computed but not reported, so any unit vector will do.
  const basis = new Float64Array(config.hiddenSize);
  basis[0] = 1;
  const plan = await planSurgery({
    checkpoint,
    config,
    basis: { basis, rank: 1, dimension: config.hiddenSize, source: { kind: "direction" } },
    options: { ...params, scale: 1 },
  });
  // inspect writes nothing, so weight files apply would refuse are reported rather than refused.
  const others = await findOtherWeights({ dir: params.modelDir, checkpoint });
  const notes = [...plan.notes];
  if (others.length > 0) {
    notes.push(`apply and verify would refuse this folder: it holds weights besides the checkpoint: ${others.map((other) => `${other.file} (${other.why})`).join("; ")}`);
  }
  const dtypes: Record<string, number> = {};
  for (const shard of checkpoint.shards) for (const tensor of shard.tensors) dtypes[tensor.dtype] = (dtypes[tensor.dtype] ?? 0) + 1;
  return {
    dir: params.modelDir,
    family: plan.family,
    modelType: config.modelType,
    hiddenSize: config.hiddenSize,
    numLayers: config.numLayers,
    dtypes,
    totalBytes: checkpoint.totalBytes,
    shards: checkpoint.shards.length,
    tiedEmbeddings: plan.tiedEmbeddings,
    notes,
    targets: plan.tensors.map(({ name, kind, layer, orientation, dtype, shape, postNorm }) => ({ name, kind, layer, orientation, dtype, shape, postNorm })),
  };
}
