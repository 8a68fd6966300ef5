/** Shared by apply and verify: everything read and decided before a byte is written. */
import { readModelConfig, type ModelConfig } from "../arch/model-config.js";
import type { TargetKind, Orientation } from "../arch/families.js";
import { loadDirectionFile, type DirectionFile } from "../direction-files/load-direction.js";
import { selectBasis, type DirectionBasis, type HarmlessProjection } from "../direction-files/select-basis.js";
import { readCheckpoint, type Checkpoint } from "../safetensors/read-checkpoint.js";
import { refuseOtherWeights } from "./find-other-weights.js";
import { planSurgery, type AlphaProfile, type SurgeryPlan } from "./plan-surgery.js";

export interface SurgeryParams {
  /** Path of the direction file. */
  direction: string;
  /**
   * Row of a `directions` [L+1, d] file; index i is the residual stream entering layer i. With `projection:
   * "projected"` on a `direction`/`subspace` file, the harmless_mean row to project against.
   */
  directionLayer?: number;
  /** With a `directions` [L+1, d] file: every writer uses the row of the stream it writes into (embeddings 0, layer i → i + 1). */
  perLayer?: boolean;
  /** Orthogonalize the direction against the harmless mean: at the direction's layer, or at every target layer. */
  projection?: HarmlessProjection;
  /** α (default 1). */
  scale?: number;
  /** Half-open layer range `a:b` (default all). */
  layers?: string;
  /** Default embed, attn and mlp. */
  targets?: TargetKind[];
  include?: string[];
  exclude?: string[];
  orientation?: Orientation;
  normPreserving?: boolean;
  /** Per-writer α (a layer profile), multiplied by `scale`; writers at 0 are left alone. */
  alphas?: AlphaProfile;
}

export interface PreparedSurgery {
  config: ModelConfig;
  checkpoint: Checkpoint;
  directionFile: DirectionFile;
  basis: DirectionBasis;
  plan: SurgeryPlan;
}

export interface PrepareSurgeryOptions {
  /** Absolute paths inside the model folder that are not part of the model (verify: an output made inside it). */
  skipPath?: (absolutePath: string) => boolean;
}

export async function prepareSurgery(modelDir: string, params: SurgeryParams, options: PrepareSurgeryOptions = {}): Promise<PreparedSurgery> {
  const config = await readModelConfig(modelDir);
  const checkpoint = await readCheckpoint(modelDir);
  // Every weight file a loader may pick must be the edited one (find-other-weights.ts).
  await refuseOtherWeights({ dir: modelDir, checkpoint, skipPath: options.skipPath });
  const directionFile = await loadDirectionFile(params.direction);
  const basis = selectBasis({
    file: directionFile,
    hiddenSize: config.hiddenSize,
    numLayers: config.numLayers,
    directionLayer: params.directionLayer,
    perLayer: params.perLayer,
    projection: params.projection,
  });
  const plan = await planSurgery({
    checkpoint,
    config,
    basis,
    options: {
      scale: params.scale ?? 1,
      layers: params.layers,
      targets: params.targets,
      include: params.include,
      exclude: params.exclude,
      orientation: params.orientation,
      normPreserving: params.normPreserving,
      alphas: params.alphas,
    },
  });
  return { config, checkpoint, directionFile, basis, plan };
}
