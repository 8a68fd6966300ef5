/**
 * Which tensor gets which projection: the bridge from a checkpoint + config + direction to native jobs.
 * Everything the native side needs is decided and validated here (shapes, dtypes, offsets, bases).
 */
import { join } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { refuseQuantized } from "../arch/detect-quantization.js";
import { findFamily, supportedModelTypes, type FamilyDefinition, type Orientation, type TargetKind, type TargetRule } from "../arch/families.js";
import type { ModelConfig } from "../arch/model-config.js";
import type { DirectionBasis, HarmlessProjection } from "../direction-files/select-basis.js";
import { orthonormalizeRows } from "../direction-files/orthonormalize.js";
import { decodeFloats } from "../direction-files/decode-floats.js";
import type { NativeDtype, NativeTensorJob } from "../native/addon.js";
import { dtypeBytes, isFloatDtype } from "../safetensors/dtypes.js";
import type { Checkpoint } from "../safetensors/read-checkpoint.js";
import { readTensorBytes } from "../safetensors/read-tensor-bytes.js";
import { parseLayerRange, type LayerRange } from "./layer-range.js";

export const ALL_TARGETS: readonly TargetKind[] = ["embed", "attn", "mlp"];

export interface SurgeryOptions {
  /** α: 1 ablates, 2 reflects, negative amplifies. */
  scale: number;
  /** `--layers a:b`, half-open; the embedding counts as writing the stream entering layer 0. */
  layers?: string;
  targets?: readonly TargetKind[];
  /** Extra tensors to edit (regex source), for families without a map or to widen one. */
  include?: readonly string[];
  /** Tensors never to edit (regex source). */
  exclude?: readonly string[];
  /** Orientation of --include tensors. */
  orientation?: Orientation;
  normPreserving?: boolean;
  /**
   * A layer profile: α of every writer (multiplied by `scale`): the embeddings', and one per layer for the attention
   * and the MLP writers. A writer with α = 0 is not edited at all (byte-identical). --include tensors use `scale`.
   */
  alphas?: AlphaProfile;
}

export interface AlphaProfile {
  embed: number;
  attn: readonly number[];
  mlp: readonly number[];
}

export interface PlannedTensor {
  name: string;
  shardPath: string;
  kind: TargetKind | "include";
  layer: number | null;
  orientation: Orientation;
  dtype: NativeDtype;
  shape: number[];
  /** The post-norm whose scale shaped this tensor's basis (γ-aware update), when the family has one. */
  postNorm?: string;
  /** This tensor's own α (scale × its entry of the layer profile). */
  alpha: number;
  /**
   * The residual stream this tensor writes into (0: the embeddings' output; i + 1: layer i's output), which selects
   * its direction in --per-layer / --biprojected runs. Set only in those runs.
   */
  stream?: number;
  jobs: NativeTensorJob[];
}

export interface SurgeryPlan {
  family: string;
  hiddenSize: number;
  numLayers: number;
  layerRange: LayerRange;
  targets: TargetKind[];
  scale: number;
  normPreserving: boolean;
  /** Writers used the direction of the stream they write into (DirectionBasis.byStream). */
  perLayer: boolean;
  projection?: HarmlessProjection;
  tensors: PlannedTensor[];
  jobsByShard: Map<string, NativeTensorJob[]>;
  /** The layer profile the α came from, when there was one. */
  alphas?: AlphaProfile;
  /** lm_head shares the embedding, so editing the embedding also edits the unembedding. */
  tiedEmbeddings: boolean;
  notes: string[];
}

export interface PlanSurgeryParams {
  checkpoint: Checkpoint;
  config: ModelConfig;
  basis: DirectionBasis;
  options: SurgeryOptions;
}


function layerOf(name: string, rule: TargetRule | undefined): number | null {
  if (rule) {
    const match = rule.pattern.exec(name);
    return match && match[1] !== undefined ? Number(match[1]) : null;
  }
  const generic = /\.(?:layers|h|blocks|layer)\.(\d+)\./.exec(name);
  return generic ? Number(generic[1]) : null;
}

/** --include / --exclude are user text; an invalid pattern is a usage error, not a crash. */
function compileNamePattern(source: string, option: string): RegExp {
  try {
    return new RegExp(source);
  } catch (error) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `${option} ${JSON.stringify(source)} is not a valid regular expression (${(error as Error).message})`);
  }
}

function buildRules(family: FamilyDefinition | undefined, config: ModelConfig, options: SurgeryOptions): TargetRule[] {
  const includeRules: TargetRule[] = (options.include ?? []).map((source) => ({
    kind: "attn" as TargetKind,
    pattern: compileNamePattern(source, "--include"),
    orientation: options.orientation ?? "linear",
  }));
  if (!family && includeRules.length === 0) {
    throw new AbliterateError(
      ErrorCodes.UNSUPPORTED_FAMILY,
      `model_type "${config.modelType}" is not supported. Supported: ${supportedModelTypes().join(", ")}. ` +
        `To edit tensors by name anyway, pass --include REGEX (repeatable) with --orientation linear|rows|bias (and --exclude REGEX).`,
    );
  }
  return [...(family?.rules ?? []), ...includeRules];
}

function checkShape(tensor: { name: string; shape: number[] }, orientation: Orientation, hiddenSize: number, file: string): void {
  const shape = tensor.shape;
  const expectations: Record<Orientation, [number, number, string]> = {
    linear: [2, 0, "[d_model, in]"],
    rows: [2, 1, "[n, d_model]"],
    bias: [1, 0, "[d_model]"],
    "experts-linear": [3, 1, "[experts, d_model, in]"],
    "experts-rows": [3, 2, "[experts, in, d_model]"],
  };
  const [rank, axis, text] = expectations[orientation];
  if (shape.length !== rank || shape[axis] !== hiddenSize) {
    throw new AbliterateError(
      ErrorCodes.TENSOR_SHAPE,
      `tensor "${tensor.name}" has shape [${shape.join(", ")}], but a ${orientation} residual writer must be ${text} with d_model = ${hiddenSize}`,
      { file },
    );
  }
}

async function postNormBasis(params: { checkpoint: Checkpoint; normName: string; plusOne: boolean; basis: Float64Array; rank: number; dimension: number; file: string }): Promise<Float64Array> {
  const location = params.checkpoint.tensorLocations.get(params.normName);
  if (!location) {
    throw new AbliterateError(ErrorCodes.TENSOR_SHAPE, `post-norm weight "${params.normName}" is missing from the checkpoint`, { file: params.file });
  }
  const { shard, tensor } = location;
  const d = params.dimension;
  if (!isFloatDtype(tensor.dtype) || tensor.shape.length !== 1 || tensor.shape[0] !== d) {
    throw new AbliterateError(ErrorCodes.TENSOR_SHAPE, `post-norm weight "${params.normName}" must be a float vector of length ${d}`, { file: shard.path });
  }
  const weight = decodeFloats(await readTensorBytes(shard, params.normName), tensor.dtype as NativeDtype);
  const scaled = Array.from({ length: params.rank }, (_, k) =>
    Float64Array.from({ length: d }, (_, i) => (params.plusOne ? 1 + weight[i] : weight[i]) * params.basis[k * d + i]),
  );
  return orthonormalizeRows(scaled, shard.path);
}

function jobsFor(params: { name: string; byteOffset: number; dtype: NativeDtype; shape: number[]; orientation: Orientation; basis: Float64Array; rank: number; scale: number; normPreserving: boolean }): NativeTensorJob[] {
  const { shape, orientation } = params;
  const elementBytes = dtypeBytes(params.dtype);
  const base = { name: params.name, dtype: params.dtype, basis: params.basis, rank: params.rank, alpha: params.scale, normPreserving: params.normPreserving };
  switch (orientation) {
    case "linear":
      return [{ ...base, offset: params.byteOffset, rows: shape[0], cols: shape[1], dModelAxis: 0 }];
    case "bias":
      return [{ ...base, offset: params.byteOffset, rows: shape[0], cols: 1, dModelAxis: 0 }];
    case "rows":
      return [{ ...base, offset: params.byteOffset, rows: shape[0], cols: shape[1], dModelAxis: 1 }];
    case "experts-rows":
      return [{ ...base, offset: params.byteOffset, rows: shape[0] * shape[1], cols: shape[2], dModelAxis: 1 }];
    case "experts-linear":
      return Array.from({ length: shape[0] }, (_, expert) => ({
        ...base,
        name: `${params.name}[${expert}]`,
        offset: params.byteOffset + expert * shape[1] * shape[2] * elementBytes,
        rows: shape[1],
        cols: shape[2],
        dModelAxis: 0 as const,
      }));
  }
}

/**
 * config.json's layer count against the checkpoint's. A num_hidden_layers below the highest layer index leaves the
 * writers of the layers past it unedited without a word (the default range is 0:num_hidden_layers), so it is
 * refused. One above it names layers the checkpoint does not have: nothing is left unedited, but transformers would
 * initialize those layers at random, so it is noted. Returns the notes.
 */
function checkLayerCount(params: { checkpoint: Checkpoint; family: FamilyDefinition; numLayers: number }): string[] {
  const layers = new Map<number, string>();
  for (const name of params.checkpoint.tensorLocations.keys()) {
    for (const candidate of params.family.rules) {
      const match = candidate.pattern.exec(name);
      if (match && match[1] !== undefined && !layers.has(Number(match[1]))) layers.set(Number(match[1]), name);
    }
  }
  if (layers.size === 0) return [];
  const beyond = [...layers.keys()].filter((layer) => layer >= params.numLayers).sort((a, b) => a - b);
  if (beyond.length > 0) {
    throw new AbliterateError(
      ErrorCodes.CONFIG_INVALID,
      `num_hidden_layers is ${params.numLayers}, but the checkpoint has residual writers of layer ${beyond[0]}${beyond.length > 1 ? ` (and ${beyond.length - 1} more layer(s) up to ${beyond[beyond.length - 1]})` : ""}, e.g. "${layers.get(beyond[0])}"; ` +
        "their writers would be left unedited. Fix num_hidden_layers (or the checkpoint)",
      { file: join(params.checkpoint.dir, "config.json") },
    );
  }
  const missing = Array.from({ length: params.numLayers }, (_, layer) => layer).filter((layer) => !layers.has(layer));
  if (missing.length === 0) return [];
  return [`config.json's num_hidden_layers is ${params.numLayers}, but the checkpoint has no residual writer of layer ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? ", …" : ""}; a loader would initialize such layers at random`];
}

/** The basis a writer into `stream` uses: the global one, or the per-stream one of --per-layer / --biprojected. */
function streamBasis(basis: DirectionBasis, stream: number, tensorName: string, file: string): Float64Array {
  if (!basis.byStream) return basis.basis;
  const chosen = basis.byStream[stream];
  if (!chosen) {
    throw new AbliterateError(
      ErrorCodes.INVALID_ARGUMENT,
      `tensor "${tensorName}" writes residual stream ${stream}, for which the direction file has no direction; ` +
        `narrow the edit with --layers and --targets (stream 0 is written by the embeddings, stream i + 1 by layer i)`,
      { file },
    );
  }
  return chosen;
}

/** α of one writer: the profile's entry for its kind and layer, times the scale; --include tensors take the scale. */
function tensorAlpha(options: SurgeryOptions, kind: PlannedTensor["kind"], layer: number | null): number {
  const profile = options.alphas;
  if (!profile || kind === "include") return options.scale;
  const entry = kind === "embed" ? profile.embed : layer === null ? undefined : (kind === "attn" ? profile.attn : profile.mlp)[layer];
  if (entry === undefined || !Number.isFinite(entry)) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `the α profile has no finite entry for the ${kind} writer of layer ${layer}`);
  }
  return options.scale * entry;
}

export async function planSurgery({ checkpoint, config, basis, options }: PlanSurgeryParams): Promise<SurgeryPlan> {
  refuseQuantized(config, checkpoint);
  if (options.alphas) {
    for (const key of ["attn", "mlp"] as const) {
      if (options.alphas[key].length !== config.numLayers) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `the α profile has ${options.alphas[key].length} ${key} entries; the model has ${config.numLayers} layers`);
    }
  }
  if (!Number.isFinite(options.scale)) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--scale must be a finite number, got ${options.scale}`);
  }
  const family = findFamily(config.modelType);
  const layerNotes = family ? checkLayerCount({ checkpoint, family, numLayers: config.numLayers }) : [];
  const rules = buildRules(family, config, options);
  const layerRange = parseLayerRange(options.layers, config.numLayers);
  const targets = [...(options.targets ?? ALL_TARGETS)];
  const excludes = (options.exclude ?? []).map((source) => compileNamePattern(source, "--exclude"));
  const normPreserving = options.normPreserving ?? false;
  const tensors: PlannedTensor[] = [];
  const jobsByShard = new Map<string, NativeTensorJob[]>();
  for (const shard of checkpoint.shards) {
    for (const info of shard.tensors) {
      const rule = rules.find((candidate) => candidate.pattern.test(info.name));
      if (!rule || excludes.some((pattern) => pattern.test(info.name))) continue;
      const isInclude = !family?.rules.includes(rule);
      const kind: PlannedTensor["kind"] = isInclude ? "include" : rule.kind;
      if (kind !== "include" && !targets.includes(kind)) continue;
      const layer = layerOf(info.name, isInclude ? undefined : rule);
      const inRange = layer === null ? layerRange.start === 0 : layer >= layerRange.start && layer < layerRange.end;
      if (!inRange) continue;
      if (!isFloatDtype(info.dtype)) {
        throw new AbliterateError(
          info.dtype.startsWith("F8") ? ErrorCodes.UNSUPPORTED_QUANTIZATION : ErrorCodes.TENSOR_SHAPE,
          `tensor "${info.name}" has dtype ${info.dtype}; surgery supports F32, F16, BF16 and F64 weights`,
          { file: shard.path },
        );
      }
      const alpha = tensorAlpha(options, kind, layer);
      if (alpha === 0) continue;
      checkShape(info, rule.orientation, config.hiddenSize, shard.path);
      const stream = layer === null ? 0 : layer + 1;
      const writerBasis = streamBasis(basis, stream, info.name, shard.path);
      const normName = rule.postNorm?.(info.name);
      const tensorBasis = normName
        ? await postNormBasis({ checkpoint, normName, plusOne: family?.normScalePlusOne ?? false, basis: writerBasis, rank: basis.rank, dimension: config.hiddenSize, file: shard.path })
        : writerBasis;
      const jobs = jobsFor({
        name: info.name,
        byteOffset: info.byteOffset,
        dtype: info.dtype as NativeDtype,
        shape: info.shape,
        orientation: rule.orientation,
        basis: tensorBasis,
        rank: basis.rank,
        scale: alpha,
        normPreserving,
      });
      tensors.push({
        name: info.name,
        shardPath: shard.path,
        kind,
        layer,
        orientation: rule.orientation,
        dtype: info.dtype as NativeDtype,
        shape: info.shape,
        postNorm: normName,
        alpha,
        ...(basis.byStream ? { stream } : {}),
        jobs,
      });
      const shardJobs = jobsByShard.get(shard.path) ?? [];
      shardJobs.push(...jobs);
      jobsByShard.set(shard.path, shardJobs);
    }
  }
  if (tensors.length === 0) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `nothing to edit: no residual-writer tensor matches --targets ${targets.join(",")} and --layers ${options.layers ?? "all"}`, { file: checkpoint.dir });
  }
  const lmHeadPresent = family ? [...checkpoint.tensorLocations.keys()].some((name) => family.lmHead.test(name)) : true;
  const tiedEmbeddings = config.tieWordEmbeddings || !lmHeadPresent;
  const notes: string[] = [...layerNotes];
  if (tiedEmbeddings && tensors.some((tensor) => tensor.kind === "embed")) {
    notes.push("lm_head is tied to the token embedding: editing the embedding also edits the unembedding (the output logits).");
  }
  if (tensors.some((tensor) => tensor.postNorm)) {
    notes.push(`post-norm family: writers behind a norm use the γ-aware direction u = normalize(g ⊙ r), g = ${family?.normScalePlusOne ? "1 + weight" : "weight"} of that norm.`);
  }
  if (basis.source.perLayer) {
    notes.push("per-layer: each writer uses the direction of the residual stream it writes into (embeddings: row 0, layer i: row i + 1).");
  }
  if (basis.source.projection === "projected") {
    notes.push(`projected: the direction was orthogonalized against the harmless mean${basis.source.harmlessRow !== undefined ? ` (row ${basis.source.harmlessRow})` : ""}.`);
  } else if (basis.source.projection === "biprojected") {
    notes.push("biprojected: the direction was orthogonalized against the harmless mean of each stream it is written into.");
  }
  return {
    family: family?.name ?? config.modelType,
    hiddenSize: config.hiddenSize,
    numLayers: config.numLayers,
    layerRange,
    targets,
    scale: options.scale,
    normPreserving,
    perLayer: basis.source.perLayer ?? false,
    ...(basis.source.projection ? { projection: basis.source.projection } : {}),
    tensors,
    jobsByShard,
    ...(options.alphas ? { alphas: options.alphas } : {}),
    tiedEmbeddings,
    notes,
  };
}
