/**
 * `abliteration.json`: what was done and what verification found (DESIGN.md § Streaming, Provenance).
 * It lives beside the shards, never inside their headers, so shards differ from the input only in edited bytes.
 * `verify` reads it back to recover the options a run used.
 */
import { readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { writeFileNamingErrors } from "./file-system-error.js";
import type { TargetKind, Orientation } from "../arch/families.js";
import type { HarmlessProjection } from "../directions/select-basis.js";
import { TOOL_VERSION } from "../version.js";
import type { PreparedSurgery } from "./prepare-surgery.js";
import { formatLayerRange } from "./layer-range.js";
import type { VerificationSummary } from "./verify-shards.js";

export const PROVENANCE_FILE = "abliteration.json";

export interface ModelSource {
  repo?: string;
  revision?: string;
  commit?: string;
}

export interface Provenance {
  tool: { name: "abliterate"; version: string };
  created: string;
  source: ModelSource & { folder?: string };
  model: { family: string; model_type: string; hidden_size: number; num_layers: number };
  direction: { file: string; sha256: string; kind: string; format?: string; direction_layer?: number; rank: number; harmless_row?: number };
  scale: number;
  layers: string;
  targets: TargetKind[];
  include?: string[];
  exclude?: string[];
  orientation?: Orientation;
  norm_preserving: boolean;
  /** --per-layer: writers used the direction of the stream they write into. */
  per_layer?: boolean;
  /** --projected / --biprojected. */
  projection?: HarmlessProjection;
  tied_embeddings: boolean;
  notes: string[];
  tensors_changed: { name: string; shard: string; kind: string; layer: number | null; orientation: Orientation; post_norm?: string; stream?: number }[];
  verification: {
    passed: boolean;
    tensors_checked: number;
    elements_checked: number;
    mismatches: number;
    max_ulp_error: number;
    max_ablation_residual: number;
    untouched_identical: boolean;
  };
}

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

export async function writeProvenance(dir: string, provenance: Provenance): Promise<void> {
  await writeFileNamingErrors(join(dir, PROVENANCE_FILE), `${JSON.stringify(provenance, null, 2)}\n`);
}

/** Reads a previous run's record, or undefined when the folder has none. */
export async function readProvenance(dir: string): Promise<Provenance | undefined> {
  const file = join(dir, PROVENANCE_FILE);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as Provenance;
  } catch (error) {
    throw new AbliterateError(ErrorCodes.CONFIG_INVALID, `${PROVENANCE_FILE} is not valid JSON`, { file, cause: error });
  }
}
