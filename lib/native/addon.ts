/**
 * The whole native surface, typed in one place. C++ owns bytes and maths and never parses user input:
 * every job arriving here has been validated and normalized by TypeScript (lib/surgery/plan-*.ts).
 */
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { AbliterateError, ErrorCodes, type ErrorCode } from "../errors.js";

/** Floating dtypes the kernels read and write. */
export type NativeDtype = "F64" | "F32" | "F16" | "BF16";

/**
 * One tensor to project, inside one shard file.
 * The tensor is viewed as a 2-D matrix [rows, cols] of `dtype`, row-major, starting at `offset`.
 * - dModelAxis 0: the tensor is [d_model, cols] (Linear weight [out, in], a bias as [d_model, 1]);
 *   every column w becomes w − α B (Bᵀw). Two passes: pass 1 accumulates BᵀW, pass 2 rewrites rows.
 * - dModelAxis 1: the tensor is [rows, d_model] (embedding, Conv1D [in, out]); every row w becomes
 *   w − α (w B) Bᵀ. One pass.
 * `basis` is k × d_model, row-major, with orthonormal rows (TypeScript orthonormalizes).
 * With normPreserving, every written vector (column for axis 0, row for axis 1) is rescaled to its
 * original Euclidean norm after the projection (grimjim's norm-preserving variant).
 */
export interface NativeTensorJob {
  name: string;
  /** Absolute byte offset of the tensor's first element in the shard file. */
  offset: number;
  rows: number;
  cols: number;
  dtype: NativeDtype;
  dModelAxis: 0 | 1;
  basis: Float64Array;
  /** Number of basis vectors (k); basis.length === k * d_model. */
  rank: number;
  alpha: number;
  normPreserving: boolean;
}

export interface NativeExecutionOptions {
  /** Bytes of tensor data processed per chunk; memory stays O(chunkBytes + cols). Default 8 MiB. */
  chunkBytes?: number;
  /** Worker threads for the kernels. Default: hardware concurrency. */
  threads?: number;
}

export interface ApplyShardJob extends NativeExecutionOptions {
  inputPath: string;
  /** Created or truncated. Bytes outside the target tensors are copied with copy_file_range. */
  outputPath: string;
  tensors: NativeTensorJob[];
  /**
   * fsync the output before resolving (default true). false: for callers that fsync the file themselves before
   * relying on it (apply does, overlapped with verification).
   */
  fsync?: boolean;
}

export interface ApplyShardResult {
  bytesCopied: number;
  bytesRewritten: number;
  seconds: number;
  backend: "cpu" | "cuda";
}

export interface VerifyShardJob extends NativeExecutionOptions {
  originalPath: string;
  modifiedPath: string;
  tensors: NativeTensorJob[];
}

export interface VerifiedTensor {
  name: string;
  /** Elements checked. */
  elements: number;
  /** Elements outside the tolerance (1 ulp of the dtype at the fp64 reference, see docs/precision.md). */
  mismatches: number;
  /** Largest |actual − reference| in units of the dtype's ulp at the reference. */
  maxUlpError: number;
  /** Row-major element index of the first mismatch, or −1. */
  firstMismatchIndex: number;
  firstMismatchExpected: number;
  firstMismatchActual: number;
  /** max over basis vectors and columns (axis 0) / rows (axis 1) of |bᵀw| in the original. */
  projectionBefore: number;
  /** The same in the modified tensor. */
  projectionAfter: number;
  /**
   * Elements whose original or modified value is NaN or ±Inf; each is a mismatch (the non-finite rule,
   * docs/reliability.md), with the first row-major index (or −1).
   */
  nonFinite: number;
  firstNonFinite: number;
  /** Of those, the elements whose original value is NaN or ±Inf, and the first index (or −1). */
  nonFiniteOriginal: number;
  firstNonFiniteOriginal: number;
}

export interface VerifyShardResult {
  tensors: VerifiedTensor[];
  /** Every byte outside the target tensors (header included) is identical, and the sizes match. */
  untouchedIdentical: boolean;
  /** Offset of the first differing byte outside the targets, or −1. */
  firstUntouchedDifference: number;
  seconds: number;
}

/** Progress is reported from a worker thread through a thread-safe function. */
export interface ShardProgress {
  bytesDone: number;
  bytesTotal: number;
}

export interface RuntimeInfo {
  simd: "avx512" | "avx2" | "scalar";
  threads: number;
  cudaCompiled: boolean;
  cudaDevices: number;
}

interface RawAddon {
  applyShard(job: ApplyShardJob, onProgress?: (p: ShardProgress) => void): Promise<ApplyShardResult>;
  verifyShard(job: VerifyShardJob, onProgress?: (p: ShardProgress) => void): Promise<VerifyShardResult>;
  decode(bytes: Uint8Array, dtype: NativeDtype): Float64Array;
  encode(values: Float64Array, dtype: NativeDtype): Uint8Array;
  runtimeInfo(): RuntimeInfo;
  // Forward engine (section at the end of this file).
  forward(job: NativeForwardJob, onProgress?: (p: ForwardProgress) => void): Promise<NativeForwardResult>;
}

const here = dirname(fileURLToPath(import.meta.url));
// dist/lib/native → package root is three levels up.
const packageRoot = join(here, "..", "..", "..");
const candidates = [
  join(packageRoot, "build", "Release", "abliterate.node"),
  join(packageRoot, "build", "Debug", "abliterate.node"),
];

let loaded: RawAddon | undefined;

function addon(): RawAddon {
  if (loaded) return loaded;
  const override = process.env.ABLITERATE_ADDON;
  const path = override ?? candidates.find((candidate) => existsSync(candidate));
  if (!path) {
    throw new AbliterateError(
      ErrorCodes.NATIVE,
      `native addon not built (looked for ${candidates.join(", ")}); run \`npm install\` or \`npm run build:native\``,
    );
  }
  loaded = createRequire(import.meta.url)(path) as RawAddon;
  return loaded;
}

/** Native errors carry `code` (E_IO, E_NOSPC, E_INVALID_JOB, E_CUDA) and, for I/O, `path`. */
function translate(error: unknown): never {
  const e = error as { code?: string; message?: string; path?: string };
  const map: Record<string, ErrorCode> = {
    E_IO: ErrorCodes.IO,
    E_NOSPC: ErrorCodes.DISK_FULL,
    E_INVALID_JOB: ErrorCodes.NATIVE,
    E_CUDA: ErrorCodes.NATIVE,
  };
  const code = (e?.code && map[e.code]) || ErrorCodes.NATIVE;
  throw new AbliterateError(code, e?.message ?? String(error), { file: e?.path, cause: error });
}

export async function applyShard(job: ApplyShardJob, onProgress?: (p: ShardProgress) => void): Promise<ApplyShardResult> {
  try {
    return await addon().applyShard(job, onProgress);
  } catch (error) {
    translate(error);
  }
}

export async function verifyShard(job: VerifyShardJob, onProgress?: (p: ShardProgress) => void): Promise<VerifyShardResult> {
  try {
    return await addon().verifyShard(job, onProgress);
  } catch (error) {
    translate(error);
  }
}

/** Decodes little-endian F64/F32/F16/BF16 bytes to doubles (exact: every value is representable). */
export function decode(bytes: Uint8Array, dtype: NativeDtype): Float64Array {
  return addon().decode(bytes, dtype);
}

/** Encodes doubles to little-endian `dtype` bytes, rounding to nearest-even; NaN, Inf, subnormals kept. */
export function encode(values: Float64Array, dtype: NativeDtype): Uint8Array {
  return addon().encode(values, dtype);
}

export function runtimeInfo(): RuntimeInfo {
  return addon().runtimeInfo();
}

// ---------------------------------------------------------------------------------------------------------------
// Forward engine (native/addon_forward.cpp, native/core/forward/). Jobs are built by lib/engine, which has read
// config.json, resolved and shape-checked every tensor, and computed the RoPE frequencies.

/** A weight inside one of the job's files: row-major `shape` of `dtype` from absolute byte `offset`. */
export interface NativeTensorRef {
  /** Index into NativeForwardJob.files. */
  file: number;
  /** A matrix stored [in, out] (GPT-2 Conv1D) rather than nn.Linear's [out, in]; `shape` is as stored. */
  transposed?: boolean;
  offset: number;
  dtype: NativeDtype;
  shape: number[];
}

export interface NativeModelSpec {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  vocabSize: number;
  normEps: number;
  normKind: "rms" | "layer";
  /** Gemma: RMSNorm weights applied as (1 + w). */
  normAddOne: boolean;
  /** act(gate x) ⊙ (up x); false: act(up x) (GPT-2). */
  gatedMlp: boolean;
  activation: "silu" | "gelu_tanh" | "gelu";
  /** GPT-NeoX: x + attn(ln1 x) + mlp(ln2 x). */
  parallelResidual: boolean;
  /** GPT-NeoX: the fused qkv rows are [q_h; k_h; v_h] head after head (needs numKvHeads = numHeads). */
  qkvPerHead: boolean;
  /** Multiplies the embedding output (Gemma: √d). 1 for none. */
  embeddingScale: number;
  /** Attention score scale; 0 means 1/√head_dim. */
  attentionScale: number;
  /** 0 for none. */
  attnLogitSoftcap: number;
  finalLogitSoftcap: number;
  /** Mixture of experts: routed experts per sparse layer (0 for dense models). */
  numExperts: number;
  /** Top-k experts per token. */
  expertsPerToken: number;
  moeIntermediateSize: number;
  /** Hidden units of the shared expert (Qwen2-MoE), 0 when none. */
  sharedIntermediateSize: number;
  /** Renormalize the kept top-k routing weights to sum 1 (Mixtral always; Qwen-MoE per config). */
  normTopkProb: boolean;
}

/** One routed expert: gate/up (or fused gateUp) and down, nn.Linear layout. */
export interface NativeExpert {
  gate?: NativeTensorRef;
  up?: NativeTensorRef;
  gateUp?: NativeTensorRef;
  down: NativeTensorRef;
}

/** One decoder layer's weights; separate q/k/v or a fused qkv, separate gate/up or a fused gateUp. */
export interface NativeForwardLayer {
  inputNorm: NativeTensorRef;
  inputNormBias?: NativeTensorRef;
  q?: NativeTensorRef;
  k?: NativeTensorRef;
  v?: NativeTensorRef;
  qkv?: NativeTensorRef;
  qBias?: NativeTensorRef;
  kBias?: NativeTensorRef;
  vBias?: NativeTensorRef;
  qkvBias?: NativeTensorRef;
  qNorm?: NativeTensorRef;
  kNorm?: NativeTensorRef;
  o: NativeTensorRef;
  oBias?: NativeTensorRef;
  /** Sandwich norm on the attention output (Gemma 2/3). */
  postAttentionNorm?: NativeTensorRef;
  preMlpNorm: NativeTensorRef;
  preMlpNormBias?: NativeTensorRef;
  postMlpNorm?: NativeTensorRef;
  gate?: NativeTensorRef;
  up?: NativeTensorRef;
  gateUp?: NativeTensorRef;
  down: NativeTensorRef;
  gateBias?: NativeTensorRef;
  upBias?: NativeTensorRef;
  downBias?: NativeTensorRef;
  /** Sparse layers: router [numExperts, hiddenSize] and the experts (the dense MLP roles stay absent). */
  router?: NativeTensorRef;
  experts?: NativeExpert[];
  /** Qwen2-MoE shared expert, scaled by sigmoid(sharedExpertGate · x). */
  sharedGate?: NativeTensorRef;
  sharedUp?: NativeTensorRef;
  sharedDown?: NativeTensorRef;
  sharedExpertGate?: NativeTensorRef;
  /** 0: full causal attention. */
  slidingWindow: number;
  /** Index into NativeForwardJob.ropeTables. */
  ropeTable: number;
}

export interface NativeRopeTable {
  /** rotaryDim / 2 inverse frequencies, fp32 as HF computes them. */
  invFreq: Float32Array;
  /** Multiplies cos and sin (YaRN). */
  attentionScaling: number;
  rotaryDim: number;
}

export interface NativeForwardAblation {
  /** rank × hiddenSize, orthonormal rows. */
  basis: Float32Array;
  rank: number;
  alpha: number;
  /** Project the embedding output too. */
  embedding: boolean;
  /** One entry per layer: 1 projects that layer's attention and MLP writes. */
  layers: Uint8Array;
}

/** x ← x + vector on every row of the residual stream at one point (0 = embedding output, L = last layer's output). */
export interface NativeForwardAddition {
  vector: Float32Array;
  point: number;
}

export interface NativeForwardJob {
  files: string[];
  spec: NativeModelSpec;
  embed: NativeTensorRef;
  positionEmbed?: NativeTensorRef;
  finalNorm: NativeTensorRef;
  finalNormBias?: NativeTensorRef;
  /** Needed when logitsRows is non-empty or maxNewTokens > 0. */
  lmHead?: NativeTensorRef;
  lmHeadBias?: NativeTensorRef;
  layers: NativeForwardLayer[];
  ropeTables: NativeRopeTable[];
  /** All prompts' ids concatenated. */
  tokens: Int32Array;
  promptLengths: Uint32Array;
  /** Rows of the concatenation whose residual stream is returned at all L + 1 points. */
  captureRows: Uint32Array;
  /** Rows of the concatenation whose logits are returned. */
  logitsRows: Uint32Array;
  /** Greedy tokens to generate per prompt (resident mode only); 0 for none. */
  maxNewTokens: number;
  eosIds: Int32Array;
  ablation?: NativeForwardAblation;
  addition?: NativeForwardAddition;
  mode: "resident" | "streamed";
  threads?: number;
  /** Tokens per MLP chunk (bounds the [tokens, intermediate] buffers). Default 512. */
  mlpChunkTokens?: number;
}

export interface NativeForwardResult {
  /** [captureRows, numLayers + 1, hiddenSize] */
  hidden: Float32Array;
  /** [logitsRows, vocabSize] */
  logits: Float32Array;
  /** Per prompt, the greedy ids (an EOS id, when met, is the last one). */
  generated: Int32Array[];
  seconds: number;
  kernels: string;
}

export interface ForwardProgress {
  layersDone: number;
  layersTotal: number;
}

export async function forward(job: NativeForwardJob, onProgress?: (p: ForwardProgress) => void): Promise<NativeForwardResult> {
  const native = addon();
  if (typeof native.forward !== "function") {
    throw new AbliterateError(ErrorCodes.NATIVE, "the native addon was built without the forward engine; rebuild it (`npm run build:native`)");
  }
  try {
    return await native.forward(job, onProgress);
  } catch (error) {
    translate(error);
  }
}
