/**
 * Opens a model folder for the forward engine: reads config.json (and generation_config.json for EOS ids), maps
 * every weight role of the family to its bytes in the shards, checks shapes and dtypes, and computes the RoPE
 * tables. The result is reusable across runs (different prompts, ablation bases, modes).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describeForward } from "../arch/families.js";
import { eosIds, type ForwardDescription, type LayerRole } from "../arch/forward-description.js";
import { readModelConfig } from "../arch/model-config.js";
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { NativeDtype, NativeExpert, NativeForwardLayer, NativeModelSpec, NativeRopeTable, NativeTensorRef } from "../native/addon.js";
import { readCheckpoint, type Checkpoint } from "../safetensors/index.js";
import { computeRopeTable } from "./rope-table.js";

const FORWARD_DTYPES = new Set<string>(["F32", "F16", "BF16", "F64"]);

export interface ForwardModel {
  dir: string;
  modelType: string;
  family: ForwardDescription;
  spec: NativeModelSpec;
  files: string[];
  embed: NativeTensorRef;
  positionEmbed?: NativeTensorRef;
  finalNorm: NativeTensorRef;
  finalNormBias?: NativeTensorRef;
  /** Absent when the checkpoint has no unembedding (a base model without lm_head and untied). */
  lmHead?: NativeTensorRef;
  lmHeadBias?: NativeTensorRef;
  tiedEmbeddings: boolean;
  layers: NativeForwardLayer[];
  ropeTables: NativeRopeTable[];
  /** Weight bytes per decoder layer. */
  layerBytes: number[];
  embedBytes: number;
  /** lm_head bytes (0 when tied: the embedding is the unembedding). */
  headBytes: number;
  totalBytes: number;
  eosTokenIds: number[];
}

export function tensorBytes(ref: NativeTensorRef | undefined): number {
  if (!ref) return 0;
  const size = ref.dtype === "F64" ? 8 : ref.dtype === "F32" ? 4 : 2;
  return ref.shape.reduce((a, b) => a * b, 1) * size;
}

function generationEosIds(dir: string): number[] | undefined {
  const path = join(dir, "generation_config.json");
  if (!existsSync(path)) return undefined;
  try {
    const ids = eosIds(JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>);
    return ids.length > 0 ? ids : undefined;
  } catch {
    return undefined;
  }
}

class TensorResolver {
  readonly files: string[] = [];
  private readonly fileIndex = new Map<string, number>();
  constructor(private readonly checkpoint: Checkpoint) {}

  has(name: string): boolean {
    return this.checkpoint.tensorLocations.has(name);
  }

  /**
   * Slices [E, a, b] into E refs of shape [a, b] (checked against `expectedSlice`), each `transposed` as asked: fused
   * experts stored per expert as [in, out].
   */
  slices(name: string, count: number, expectedSlice: number[], transposed: boolean): NativeTensorRef[] {
    const whole = this.ref(name, [count, ...expectedSlice]);
    const bytes = tensorBytes(whole) / count;
    return Array.from({ length: count }, (_, e) => ({ ...whole, offset: whole.offset + e * bytes, shape: [...expectedSlice], ...(transposed ? { transposed: true } : {}) }));
  }

  /** `expectedShape` as stored (a transposed role's is [in, out]). */
  ref(name: string, expectedShape: number[] | undefined, transposed = false): NativeTensorRef {
    const location = this.checkpoint.tensorLocations.get(name);
    if (!location) {
      throw new AbliterateError(ErrorCodes.TENSOR_MISSING, `the checkpoint has no tensor ${name}`, { file: this.checkpoint.dir });
    }
    const { shard, tensor } = location;
    if (!FORWARD_DTYPES.has(tensor.dtype)) {
      throw new AbliterateError(ErrorCodes.TENSOR_SHAPE, `${name} is ${tensor.dtype}; the forward engine reads F32, F16 and BF16`, { file: shard.path });
    }
    if (expectedShape && (expectedShape.length !== tensor.shape.length || expectedShape.some((v, i) => v !== tensor.shape[i]))) {
      throw new AbliterateError(
        ErrorCodes.TENSOR_SHAPE,
        `${name} has shape [${tensor.shape.join(", ")}], expected [${expectedShape.join(", ")}] from config.json`,
        { file: shard.path },
      );
    }
    let file = this.fileIndex.get(shard.path);
    if (file === undefined) {
      file = this.files.length;
      this.files.push(shard.path);
      this.fileIndex.set(shard.path, file);
    }
    const ref: NativeTensorRef = { file, offset: tensor.byteOffset, dtype: tensor.dtype as NativeDtype, shape: [...tensor.shape] };
    if (transposed) ref.transposed = true;
    return ref;
  }
}

/** Expected shape of each layer role, from the spec. */
function roleShapes(spec: NativeModelSpec): Record<LayerRole, number[]> {
  const d = spec.hiddenSize;
  const q = spec.numHeads * spec.headDim;
  const kv = spec.numKvHeads * spec.headDim;
  const inter = spec.intermediateSize;
  return {
    inputNorm: [d],
    inputNormBias: [d],
    q: [q, d],
    k: [kv, d],
    v: [kv, d],
    qkv: [q + 2 * kv, d],
    qBias: [q],
    kBias: [kv],
    vBias: [kv],
    qkvBias: [q + 2 * kv],
    // OLMo-2 normalizes the whole q / k projection, the others one head at a time.
    qNorm: [spec.qkNormWhole ? q : spec.headDim],
    kNorm: [spec.qkNormWhole ? kv : spec.headDim],
    o: [d, q],
    oBias: [d],
    postAttentionNorm: [d],
    preMlpNorm: [d],
    preMlpNormBias: [d],
    postMlpNorm: [d],
    gate: [inter, d],
    up: [inter, d],
    gateUp: [2 * inter, d],
    down: [d, inter],
    gateBias: [inter],
    upBias: [inter],
    downBias: [d],
    router: [spec.numExperts, d],
    sharedGate: [spec.sharedIntermediateSize, d],
    sharedUp: [spec.sharedIntermediateSize, d],
    sharedDown: [d, spec.sharedIntermediateSize],
    sharedExpertGate: [1, d],
  };
}

export async function loadForwardModel(dir: string): Promise<ForwardModel> {
  const config = await readModelConfig(dir);
  const configFile = join(dir, "config.json");
  const family = describeForward(config.modelType, config.text, configFile);
  const checkpoint = await readCheckpoint(dir);
  const resolver = new TensorResolver(checkpoint);
  const prefix = family.prefixes.find((p) => resolver.has(p + family.embed));
  if (prefix === undefined) {
    throw new AbliterateError(ErrorCodes.TENSOR_MISSING, `the checkpoint has no ${family.embed} (tried prefixes ${family.prefixes.map((p) => JSON.stringify(p)).join(", ")})`, {
      file: dir,
    });
  }
  const d = family.spec.hiddenSize;
  const embedLocation = checkpoint.tensorLocations.get(prefix + family.embed)!;
  const vocabSize = embedLocation.tensor.shape[0];
  const spec: NativeModelSpec = { ...family.spec, vocabSize };
  const embed = resolver.ref(prefix + family.embed, [vocabSize, d]);
  const positionEmbed = family.positionEmbed ? resolver.ref(prefix + family.positionEmbed, [family.maxPositionEmbeddings, d]) : undefined;
  const finalNorm = resolver.ref(prefix + family.finalNorm, [d]);
  const finalNormBias = family.finalNormBias ? resolver.ref(prefix + family.finalNormBias, [d]) : undefined;
  // transformers ties lm_head to the embedding when tie_word_embeddings holds, whatever the file also stores.
  const lmHead = family.tieWordEmbeddings ? embed : resolver.has(family.lmHead) ? resolver.ref(family.lmHead, [vocabSize, d]) : undefined;
  const lmHeadBias = family.lmHeadBias && resolver.has(family.lmHeadBias) ? resolver.ref(family.lmHeadBias, [vocabSize]) : undefined;

  const shapes = roleShapes(spec);
  const denseRequired = new Set<LayerRole>(family.requiredRoles);
  const sparseRequired = new Set<LayerRole>(family.sparse?.requiredRoles ?? []);
  const layers: NativeForwardLayer[] = [];
  const layerBytes: number[] = [];
  for (let i = 0; i < spec.numLayers; i += 1) {
    const names = family.layerNames(i);
    const layer: Partial<NativeForwardLayer> = { slidingWindow: family.slidingWindow(i), ropeTable: family.ropeTableOf(i), ...family.layerOptions?.(i) };
    let bytes = 0;
    const sparse = family.sparse?.isSparse(i) ?? false;
    const required = sparse ? sparseRequired : denseRequired;
    for (const [role, suffix] of Object.entries(names) as [LayerRole, string][]) {
      const name = prefix + suffix;
      if (!resolver.has(name) && !required.has(role)) continue;
      const transposed = family.transposedRoles?.has(role) ?? false;
      const ref = resolver.ref(name, transposed ? [...shapes[role]].reverse() : shapes[role], transposed);
      layer[role] = ref;
      bytes += tensorBytes(ref);
    }
    if (sparse) {
      const moe = spec.moeIntermediateSize;
      const layout = family.sparse!;
      layer.experts = [];
      const fused = layout.fusedExperts?.(i);
      if (fused) {
        // Stored [in, out] per expert: gate_up [d, 2 · moe], down [moe, d].
        const gateUp = resolver.slices(prefix + fused.gateUp, spec.numExperts, [d, 2 * moe], true);
        const down = resolver.slices(prefix + fused.down, spec.numExperts, [moe, d], true);
        for (let e = 0; e < spec.numExperts; e += 1) layer.experts.push({ gateUp: gateUp[e], down: down[e] });
      } else {
        for (let e = 0; e < spec.numExperts; e += 1) {
          const names = layout.expertNames!(i, e);
          layer.experts.push({
            gate: resolver.ref(prefix + names.gate, [moe, d]),
            up: resolver.ref(prefix + names.up, [moe, d]),
            down: resolver.ref(prefix + names.down, [d, moe]),
          });
        }
      }
      for (const expert of layer.experts as NativeExpert[]) {
        bytes += tensorBytes(expert.gate) + tensorBytes(expert.up) + tensorBytes(expert.gateUp) + tensorBytes(expert.down);
      }
    }
    layers.push(layer as NativeForwardLayer);
    layerBytes.push(bytes);
  }

  const ropeTables = family.rope.map((parameters) =>
    computeRopeTable({ parameters, headDim: spec.headDim, maxPositionEmbeddings: family.maxPositionEmbeddings, file: configFile }),
  );
  const embedBytes = tensorBytes(embed) + tensorBytes(positionEmbed);
  const headBytes = lmHead && lmHead !== embed ? tensorBytes(lmHead) : 0;
  return {
    dir,
    modelType: config.modelType,
    family,
    spec,
    files: resolver.files,
    embed,
    positionEmbed,
    finalNorm,
    finalNormBias,
    lmHead,
    lmHeadBias,
    tiedEmbeddings: lmHead === embed,
    layers,
    ropeTables,
    layerBytes,
    embedBytes,
    headBytes,
    totalBytes: layerBytes.reduce((a, b) => a + b, 0) + embedBytes + headBytes,
    eosTokenIds: generationEosIds(dir) ?? family.eosTokenIds,
  };
}
