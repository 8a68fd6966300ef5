/**
 * The whole native surface, typed in one place. C++ owns bytes and maths and never parses user input:
 * every job arriving here has been validated and normalized by TypeScript (lib/surgery/plan-*.ts).
 * It runs past ~450 lines on purpose: one file per native surface is the rule (as node-llama-cpp keeps it), so a
 * change to the addon's contract is reviewed in one place.
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

/**
 * The projection backend plug-in an apply job asks for (native/core/projection_backend.h). "cuda" runs on the CPU,
 * saying why in backendFallback, when the build has no CUDA or no device is visible; "auto" takes the first non-CPU
 * plug-in with a device, else the CPU. Default: the ABLITERATE_BACKEND environment variable, else "auto".
 */
export type NativeBackendName = "auto" | "cpu" | "cuda";

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
  backend?: NativeBackendName;
}

export interface ApplyShardResult {
  bytesCopied: number;
  bytesRewritten: number;
  seconds: number;
  /** The backend that ran. */
  backend: "cpu" | "cuda";
  /** Present when `backend` is not the one the job asked for: why (e.g. "cuda: no CUDA device"). */
  backendFallback?: string;
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

export type KernelLevel = "avx512" | "avx2" | "scalar";

/**
 * What the one kernel chooser picked (native/core/kernel_choice.h). ABLITERATE_KERNELS=auto|avx512|avx2|scalar caps
 * all three kernel families at once; each runs the widest table that is compiled in, that the CPU runs and that
 * the cap allows (the forward engine has no AVX-512 table, so it runs AVX2 there).
 */
export interface KernelChoice {
  /** ABLITERATE_KERNELS as given; "auto" when unset. */
  setting: string;
  /** The widest instruction set this CPU runs. */
  cpu: KernelLevel;
  projection: KernelLevel;
  verify: KernelLevel;
  forward: KernelLevel;
  /**
   * The forward table each `compute` setting runs: fp32 is `forward`; bf16 and auto name the bf16 recipe
   * ("avx512+bf16-all", "avx512+bf16") where the CPU has AVX512_BF16 and the cap allows AVX-512, `forward` otherwise.
   */
  forwardCompute: { fp32: string; bf16: string; auto: string };
}

/** One projection backend plug-in compiled into this build. */
export interface BackendInfo {
  name: "cpu" | "cuda";
  /** Devices usable now; 0 means it cannot run, and `reason` says why. */
  devices: number;
  reason?: string;
}

export interface RuntimeInfo {
  /** Default kernel threads (hardware concurrency). */
  threads: number;
  kernels: KernelChoice;
  /** CPU first; "cuda" only in builds with ABLITERATE_CUDA=ON. */
  backends: BackendInfo[];
}

interface RawAddon {
  applyShard(job: ApplyShardJob, onProgress?: (p: ShardProgress) => void): Promise<ApplyShardResult>;
  verifyShard(job: VerifyShardJob, onProgress?: (p: ShardProgress) => void): Promise<VerifyShardResult>;
  decode(bytes: Uint8Array, dtype: NativeDtype): Float64Array;
  encode(values: Float64Array, dtype: NativeDtype): Uint8Array;
  runtimeInfo(): RuntimeInfo;
  // Forward engine (section at the end of this file).
  forward(job: NativeForwardJob, onProgress?: (p: ForwardProgress) => void): Promise<NativeForwardResult>;
  activationMul(activation: NativeActivation, gate: Float32Array, up: Float32Array | null): Float32Array;
  expShifted(values: Float32Array, shift: number): { values: Float32Array; sum: number };
  softCap(values: Float32Array, cap: number): Float32Array;
  logitsRowStats(logits: Float32Array, vocab: number): { argmax: Uint32Array; logZ: Float64Array };
  releaseKeptLayers(): number;
  keptLayerBytes(): number;
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
  try {
    return addon().runtimeInfo();
  } catch (error) {
    translate(error);
  }
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

/** The MLP activations the forward engine computes (each a kernel-table entry: forward_kernels.h). */
export type NativeActivation = "silu" | "gelu_tanh" | "gelu";

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
  activation: NativeActivation;
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
  /**
   * Llama 4's router: top-k by logit, each kept expert weighted by sigmoid(logit) applied to its input (default
   * false: softmax weights applied to the outputs).
   */
  routerSigmoid?: boolean;
  /** OLMo-2: q_norm / k_norm normalize the whole q / k projection, not each head. */
  qkNormWhole?: boolean;
  /** Llama 4: RoPE rotates adjacent pairs (2i, 2i + 1), not (i, i + rotaryDim / 2). */
  ropeInterleaved?: boolean;
  /** Llama 4 attention temperature: q · (log1p(⌊(pos + 1) / floorScale⌋) · scale + 1) on layers with temperatureTuning. */
  temperatureFloorScale?: number;
  temperatureScale?: number;
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
  /** Absent in OLMo-2 (attention reads the residual stream itself). */
  inputNorm?: NativeTensorRef;
  inputNormBias?: NativeTensorRef;
  q?: NativeTensorRef;
  k?: NativeTensorRef;
  v?: NativeTensorRef;
  qkv?: NativeTensorRef;
  qBias?: NativeTensorRef;
  kBias?: NativeTensorRef;
  vBias?: NativeTensorRef;
  qkvBias?: NativeTensorRef;
  /** RMSNorm before RoPE: [headDim] per head, or [q/k width] with spec.qkNormWhole. */
  qNorm?: NativeTensorRef;
  kNorm?: NativeTensorRef;
  o: NativeTensorRef;
  oBias?: NativeTensorRef;
  /** Sandwich norm on the attention output (Gemma 2/3). */
  postAttentionNorm?: NativeTensorRef;
  /** Absent in OLMo-2. */
  preMlpNorm?: NativeTensorRef;
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
  /** Llama 4 chunked attention: queries see only keys in their chunk of this many positions. Absent or 0: none. */
  attentionChunk?: number;
  /** Index into NativeForwardJob.ropeTables. */
  ropeTable: number;
  /** Llama 4 NoPE layer: no rotary embedding. */
  noRope?: boolean;
  /** Llama 4: weightless RMS norm of every q and k head after RoPE. */
  qkL2Norm?: boolean;
  /** Llama 4: attention temperature tuning of q (spec.temperatureFloorScale, spec.temperatureScale). */
  temperatureTuning?: boolean;
}

export interface NativeRopeTable {
  /** rotaryDim / 2 inverse frequencies, fp32 as HF computes them. */
  invFreq: Float32Array;
  /** Multiplies cos and sin (YaRN). */
  attentionScaling: number;
  rotaryDim: number;
}

/**
 * Directional ablation at every residual writer, equal to the weight edit of that writer: its output (after the
 * post-norm where the family has one) becomes out − α B (Bᵀ out). The embedding writes stream 0; layer l's attention
 * and MLP write stream l + 1. α = 0 leaves a writer untouched.
 */
export interface NativeForwardAblation {
  /** The bases concatenated, ranks[b] orthonormal rows of hiddenSize each. */
  basis: Float32Array;
  /** One entry (a basis shared by every writer) or numLayers + 1 (basis s for the writers into stream s). */
  ranks: Uint32Array;
  embeddingAlpha: number;
  /** numLayers entries each. */
  attentionAlpha: Float64Array;
  mlpAlpha: Float64Array;
}

/** x ← x + vector on every row of the residual stream at one point (0 = embedding output, L = last layer's output). */
export interface NativeForwardAddition {
  vector: Float32Array;
  point: number;
}

/** The hooks of one edit of a wave (NativeForwardJob.wave). */
export interface NativeForwardEdit {
  ablation?: NativeForwardAblation;
  addition?: NativeForwardAddition;
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
  /** Also return each logits row's argmax and log Σ exp (native/core/forward/logits_stats.h). */
  logitsStats?: boolean;
  /** Logits returned one by one: token pickTokens[i] of logits row pickRows[i] (an index into logitsRows). Both or neither. */
  pickRows?: Uint32Array;
  pickTokens?: Int32Array;
  /** Return only these logits rows (indices into logitsRows) in `logits`, in this order. */
  wholeRows?: Uint32Array;
  /** Greedy tokens to generate per prompt; 0 for none. */
  maxNewTokens: number;
  eosIds: Int32Array;
  ablation?: NativeForwardAblation;
  addition?: NativeForwardAddition;
  /**
   * Further edits run over the same prompts, layer by layer beside the job's own: each layer is read once for all
   * of them. Prompt passes only (no generation, capture or resume); their results come back in the result's `wave`.
   */
  wave?: NativeForwardEdit[];
  mode: "resident" | "streamed";
  /** Start at decoder `layer` from `hidden` ([tokens, d], the stream entering it); layers below are not run. */
  resumeFrom?: { layer: number; hidden: Float32Array };
  /**
   * Per prompt: its first prefixLength[p] tokens are those of the earlier prompt prefixSource[p], whose keys and
   * values it takes instead of running them (0: none). Both or neither.
   */
  prefixSource?: Uint32Array;
  prefixLength?: Uint32Array;
  /** GEMM arithmetic: fp32 (the reference), bf16 (BF16 dot products, fp32 sums) or auto (bf16 for BF16 weights). */
  compute?: "fp32" | "bf16" | "auto";
  threads?: number;
  /** Tokens per MLP chunk (bounds the [tokens, intermediate] buffers). Default 512. */
  mlpChunkTokens?: number;
  /**
   * Keep the layers this job stages for the next jobs while all kept layers take at most this many bytes, and take
   * those an earlier one kept (resident runs only; any other job frees kept layers first). 0 or absent:
   * keep none. native/core/forward/kept_layers.h.
   */
  keepLayersBytes?: number;
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
  /** Memory reuse across runs of this process: see ForwardOutput (lib/engine/run-forward.ts). */
  packedBytes: number;
  reusedPackedBytes: number;
  reusedBufferBytes: number;
  reusedMappedBytes: number;
  stagedBytes: number;
  keptBytes: number;
  /** The logits of pickRows / pickTokens, in order (empty without picks). */
  pickedLogits: Float32Array;
  /** With logitsStats, per logits row: the first index of its largest value, and log Σ exp of the row. */
  logitsArgmax?: Uint32Array;
  logitsLogZ?: Float64Array;
  /** Per edit of the job's wave, in order: its logits (whole rows as `logits` holds them), picks and statistics. */
  wave: NativeWaveOutput[];
}

export interface NativeWaveOutput {
  logits: Float32Array;
  pickedLogits: Float32Array;
  logitsArgmax?: Uint32Array;
  logitsLogZ?: Float64Array;
}

export interface ForwardProgress {
  layersDone: number;
  layersTotal: number;
}

export async function forward(job: NativeForwardJob, onProgress?: (p: ForwardProgress) => void): Promise<NativeForwardResult> {
  try {
    return await addon().forward(job, onProgress);
  } catch (error) {
    translate(error);
  }
}

/**
 * An MLP activation of the chosen forward table: f(gate[i]) · up[i] (f alone where up is null), in fp32, f the
 * spec's silu, gelu_tanh or gelu. Exposed so tests bound the SIMD polynomials element by element; the engine calls
 * them natively.
 */
export function activationMul(activation: NativeActivation, gate: Float32Array, up: Float32Array | null): Float32Array {
  return addon().activationMul(activation, gate, up);
}

/**
 * The engine's per-row argmax and log Σ exp of rows of `vocab` logits (runForward's logitsStats computes them
 * natively for every logits row). Exposed so tests check them against an fp64 reference.
 */
export function logitsRowStats(logits: Float32Array, vocab: number): { argmax: Uint32Array; logZ: Float64Array } {
  return addon().logitsRowStats(logits, vocab);
}

/** Frees the layers forward jobs kept (NativeForwardJob.keepLayers); returns the bytes they took. */
export function releaseKeptLayers(): number {
  return addon().releaseKeptLayers();
}

/** Bytes the layers forward jobs kept take now. */
export function keptLayerBytes(): number {
  return addon().keptLayerBytes();
}

/** Attention's softmax numerators of the chosen forward table: exp(values − shift) and their sum (tests bound it). */
export function expShifted(values: Float32Array, shift: number): { values: Float32Array; sum: number } {
  return addon().expShifted(values, shift);
}

/** Gemma 2's soft-capping of the chosen forward table, cap · tanh(values / cap), on a copy; exposed for tests. */
export function softCap(values: Float32Array, cap: number): Float32Array {
  return addon().softCap(values, cap);
}
