/**
 * Activation addition (x ← x + v at every position of the residual stream entering layer i) with the engine as it
 * is: the engine's hook only projects (x − α r rᵀx), and a negative α only scales what is already there, so it
 * cannot add a vector. Adding v to the stream entering layer i is exactly adding v to the bias of layer i−1's last
 * residual write: the MLP's down_proj.bias (nothing in layer i−1 reads the stream after it). In a parallel-residual
 * layer (attention and MLP read the same input) the attention-output bias serves as well, which covers sparse
 * layers whose MLP is a set of experts. The model description is copied with that bias pointing at a small raw
 * F32 file (existing bias + v); the checkpoint is not touched. Not possible for index 0 (no layer before it), for
 * sequential MoE layers, nor when that write passes through a norm before the residual add (Gemma 2/3 post-norms):
 * those return undefined, and the caller says so.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ForwardModel } from "../engine/load-forward-model.js";
import { decode, type NativeTensorRef } from "../native/addon.js";

const DTYPE_BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2 };

function readVector(file: string, ref: NativeTensorRef, length: number): Float64Array {
  const bytes = new Uint8Array(length * DTYPE_BYTES[ref.dtype]);
  const fd = openSync(file, "r");
  try {
    readSync(fd, bytes, 0, bytes.length, ref.offset);
  } finally {
    closeSync(fd);
  }
  return decode(bytes, ref.dtype);
}

/** Why activation addition at `layerIndex` is not available, or undefined when it is. */
export function additionUnavailableReason(model: ForwardModel, layerIndex: number): string | undefined {
  if (layerIndex <= 0) return "no layer writes before the embeddings (index 0)";
  if (layerIndex > model.spec.numLayers) return `index ${layerIndex} is past the last layer`;
  const role = biasRole(model, layerIndex - 1);
  if (!role) return "the last write of the layer before is a mixture of experts, which has no bias to carry the addition";
  const layer = model.layers[layerIndex - 1];
  if (role === "downBias" ? layer.postMlpNorm : layer.postAttentionNorm) return "the layer's output passes through a post-norm before the residual add";
  return undefined;
}

function biasRole(model: ForwardModel, layer: number): "downBias" | "oBias" | undefined {
  if (!model.layers[layer].experts) return "downBias";
  return model.spec.parallelResidual ? "oBias" : undefined;
}

export interface ResidualAddition {
  model: ForwardModel;
  dispose(): void;
}

export function withResidualAddition(model: ForwardModel, layerIndex: number, vector: ArrayLike<number>): ResidualAddition | undefined {
  if (additionUnavailableReason(model, layerIndex) !== undefined) return undefined;
  const d = model.spec.hiddenSize;
  const layer = model.layers[layerIndex - 1];
  const role = biasRole(model, layerIndex - 1)!;
  const current = layer[role];
  const bias = new Float32Array(d);
  const existing = current ? readVector(model.files[current.file], current, d) : undefined;
  for (let i = 0; i < d; i += 1) bias[i] = (existing?.[i] ?? 0) + vector[i];
  const dir = mkdtempSync(join(tmpdir(), "abl-addition-"));
  const file = join(dir, "o_proj_bias.f32");
  writeFileSync(file, new Uint8Array(bias.buffer));
  const layers = model.layers.map((entry, i) => (i === layerIndex - 1 ? { ...entry, [role]: { file: model.files.length, offset: 0, dtype: "F32" as const, shape: [d] } } : entry));
  return {
    model: { ...model, files: [...model.files, file], layers },
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
