/** Builds `abliteration.json` (lib/provenance/provenance.ts) from a finished surgery and its verification. */
import { basename } from "node:path";
import type { Orientation } from "../arch/families.js";
import type { ModelSource, Provenance } from "../provenance/provenance.js";
import { TOOL_VERSION } from "../version.js";
import { formatLayerRange } from "./layer-range.js";
import type { PreparedSurgery } from "./prepare-surgery.js";
import type { VerificationSummary } from "./verify-shards.js";

export function buildProvenance(params: { prepared: PreparedSurgery; verification: VerificationSummary; source?: ModelSource; modelDir: string; include?: string[]; exclude?: string[]; orientation?: Orientation }): Provenance {
  const { plan, directionFile, basis, config } = params.prepared;
  const v = params.verification;
  return {
    tool: { name: "abliterate", version: TOOL_VERSION },
    created: new Date().toISOString(),
    source: { ...params.source, ...(params.source?.repo ? {} : { folder: basename(params.modelDir) }) },
    model: { family: plan.family, model_type: config.modelType, hidden_size: config.hiddenSize, num_layers: config.numLayers },
    direction: {
      file: basename(directionFile.path),
      sha256: directionFile.sha256,
      kind: directionFile.kind,
      format: directionFile.format,
      ...(basis.source.directionLayer !== undefined ? { direction_layer: basis.source.directionLayer } : {}),
      rank: basis.rank,
      ...(basis.source.harmlessRow !== undefined ? { harmless_row: basis.source.harmlessRow } : {}),
    },
    scale: plan.scale,
    ...(plan.alphas ? { alphas: { embed: plan.alphas.embed, attn: [...plan.alphas.attn], mlp: [...plan.alphas.mlp] } } : {}),
    layers: formatLayerRange(plan.layerRange),
    targets: plan.targets,
    ...(params.include?.length ? { include: params.include } : {}),
    ...(params.exclude?.length ? { exclude: params.exclude } : {}),
    ...(params.orientation ? { orientation: params.orientation } : {}),
    norm_preserving: plan.normPreserving,
    ...(plan.perLayer ? { per_layer: true } : {}),
    ...(plan.projection ? { projection: plan.projection } : {}),
    tied_embeddings: plan.tiedEmbeddings,
    notes: plan.notes,
    tensors_changed: plan.tensors.map((tensor) => ({
      name: tensor.name,
      shard: basename(tensor.shardPath),
      kind: tensor.kind,
      layer: tensor.layer,
      orientation: tensor.orientation,
      alpha: tensor.alpha,
      ...(tensor.postNorm ? { post_norm: tensor.postNorm } : {}),
      ...(tensor.stream !== undefined ? { stream: tensor.stream } : {}),
    })),
    verification: {
      passed: v.passed,
      tensors_checked: v.tensorsChecked,
      elements_checked: v.elementsChecked,
      mismatches: v.mismatches,
      max_ulp_error: v.maxUlpError,
      max_ablation_residual: v.maxAblationResidual,
      untouched_identical: v.untouchedIdentical,
    },
  };
}
