/**
 * Runs tokenized prompts through a model: residual stream at chosen positions (index i enters decoder layer i,
 * index L leaves the last layer before the final norm), logits at chosen positions (teacher forcing), batched greedy
 * generation, and two hooks: directional ablation of every residual write (embedding, attention output, MLP output)
 * with its own α per writer and optionally its own basis per stream, and activation addition.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import { forward, keptLayerBytes, type ForwardProgress, type NativeForwardJob } from "../native/addon.js";
import type { ForwardModel } from "./load-forward-model.js";
import { nativeEdit } from "./native-edit.js";
import { prefixShares } from "./prefix-shares.js";
import { resumableLayer } from "./resumable-layer.js";
import { captureRows, checkedPicks, checkedRows, logitsRows, type CapturePositions, type LogitsRequest } from "./forward-rows.js";
import { chooseMode, defaultMemoryBudget, keptLayersBudget, mlpChunkTokensFor, type ForwardMode, type ModeChoice } from "./memory-budget.js";

/** How projections multiply (ForwardRequest.compute). */
export type ForwardCompute = "fp32" | "bf16" | "auto";

export type { CapturePositions, LogitsRequest } from "./forward-rows.js";

/**
 * α at every residual writer: the hook computes out ← out − α B (Bᵀ out) on what the writer adds to the residual
 * stream, which equals the weight edit W ← W − α B Bᵀ W of that writer. 0 leaves a writer untouched, 1 removes the
 * component, 2 reflects it, < 0 amplifies it.
 */
export interface AblationStrengths {
  /** α of the embedding output (the writer of stream 0). */
  embedding: number;
  /** α_attn[l] of layer l's attention output (written into stream l + 1); numLayers entries. */
  attention: ArrayLike<number>;
  /** α_mlp[l] of layer l's MLP output (written into stream l + 1); numLayers entries. */
  mlp: ArrayLike<number>;
}

/**
 * Directional ablation of the residual writes. Give exactly one of `directions` and `streamDirections`, and either
 * `strengths` or the convenience fields `alpha` / `layers` / `embedding` (which map onto strengths: α at the
 * embedding when `embedding` (default true), α at both writers of every layer in `layers` (default all), 0 elsewhere).
 * Post-norm families (Gemma 2/3, OLMo-2): the hook acts on the write after its post-norm, i.e. on what is added.
 */
export interface ForwardAblation {
  /** One basis for every writer: k directions of hidden_size (orthonormalized here; dependent directions are rejected). */
  directions?: ArrayLike<number>[];
  /**
   * One basis per residual stream, numLayers + 1 entries: the writers into stream s use streamDirections[s] (the
   * embedding writes stream 0, layer l's attention and MLP write stream l + 1; docs/architectures.md § Residual
   * streams). Each entry is orthonormalized on its own; an empty entry is allowed where every writer into that
   * stream has α 0.
   */
  streamDirections?: ArrayLike<number>[][];
  strengths?: AblationStrengths;
  /** Convenience: 1 removes the component (default), 2 reflects, < 0 amplifies. */
  alpha?: number;
  /** Convenience: layers whose attention and MLP writes are projected; all layers when absent. */
  layers?: number[];
  /** Convenience: project the embedding output too (default true). */
  embedding?: boolean;
}

/** Activation addition: `vector` added to every position of the residual stream at index `point` (0..L). */
export interface ForwardAddition {
  vector: ArrayLike<number>;
  point: number;
}

/** The hooks one pass runs under (either may be absent). */
export interface ForwardEdit {
  ablation?: ForwardAblation;
  addition?: ForwardAddition;
}

export interface ForwardRequest {
  model: ForwardModel;
  /** Token ids per prompt. */
  prompts: number[][];
  positions?: CapturePositions;
  logits?: LogitsRequest;
  /** Greedy tokens per prompt; all prompts advance together, one token per step, with a KV cache (streamed: every layer read again per step). */
  maxNewTokens?: number;
  /** Stop ids for generation; the model's (generation_config.json / config.json) when absent. */
  eosTokenIds?: number[];
  ablation?: ForwardAblation;
  addition?: ForwardAddition;
  /**
   * Further edits run over the same prompts in the same pass, each with the numbers a run of its own gives: every
   * layer goes through the request's own edit and then each of these before the next layer is read, so a model
   * that does not fit the budget (streamed) reads its weights once for all of them instead of once per run. Prompt
   * passes only: positions "none", no generation, no resumeFrom. Results in the output's `wave`, in order.
   */
  wave?: readonly ForwardEdit[];
  mode?: ForwardMode | "auto";
  /**
   * How projections multiply: "fp32" (the reference: fp32 products and sums), "bf16" (activations and weights
   * rounded to bf16, products summed in fp32 with the CPU's BF16 dot product) or "auto" (bf16 for weights stored in
   * BF16, where the CPU has AVX512_BF16; fp32 otherwise). Default "fp32": under bf16 the direction golden misses its
   * cos ≥ 0.9999 at one layer (0.99988). docs/precision.md gives the error of each.
   */
  compute?: ForwardCompute;
  /**
   * Run tokens a prompt starts with once where an earlier prompt starts with them too (a chat template's system
   * turn and role header; one prompt under several continuations) and share their keys and values (default true).
   * The numbers are those of running every prompt whole.
   */
  reusePrefix?: boolean;
  /**
   * Start at decoder layer `layer` from a residual stream computed before: `hidden` is [tokens, hiddenSize], the
   * stream entering that layer for every token of every prompt (residualStreamAt() of an unedited run with
   * positions "all"). Layers below are not run, so an edit that starts at `layer` (α 0 at the embedding and at the
   * writers of every layer below it, an addition at a point ≥ it: resumableLayer()) costs only the layers it
   * changes; shared prefixes still run once. The stream at points below `layer` is not computed (zeros). Not
   * with generation.
   */
  resumeFrom?: { layer: number; hidden: Float32Array };
  /**
   * Also return, per logits row, its argmax (the first index of its largest value) and its log-normalizer
   * log Σ exp, computed by the engine's threads (native/core/forward/logits_stats.h: the forward table's exp,
   * summed in fp64, within about 1e-7 of an fp64 log-sum-exp).
   */
  logitsStats?: boolean;
  /**
   * Logits to return one by one: pick i is the logit of `tokens[i]` in logits row `rows[i]` (an index into the
   * logits rows, as logitsPrompt and logitsPosition list them), in the output's `pickedLogits`.
   */
  logitsPicks?: { rows: readonly number[]; tokens: readonly number[] };
  /**
   * Hand back only these logits rows (indices into the logits rows) whole: `logits` then holds row
   * wholeLogitsRows[i] as its row i. The others still count for logitsStats and logitsPicks; not returning them
   * spares the collector their external memory.
   */
  wholeLogitsRows?: readonly number[];
  /** Memory budget for the mode choice; default: 80% of available memory. */
  maxMemoryBytes?: number;
  threads?: number;
  /**
   * Keep the layers a run reads (as its kernels' panels, on huge pages) in the process after the run, so that the
   * next runs on the same unchanged files in the same arithmetic read and pack none of them again, their generation
   * included (default false). Resident, they take the place of the stored bytes the resident estimate already
   * counts; streamed, the first layers that fit what the budget leaves beside the run and what the process holds
   * (keptLayersBudget, heldBytes), and the later ones stream as before; a streamed run that leaves less than is
   * kept frees the last ones. A run that does not keep, or one of other files or arithmetic frees them first;
   * releaseKeptWeights() frees them on request (native/core/forward/kept_layers.h).
   */
  keepWeights?: boolean;
  /**
   * Bytes the process holds beside a streamed run and its kept layers, which the budget must cover too (its kept
   * layers get what is left). Default: the process's resident set, less the kept layers, at the run's start.
   */
  heldBytes?: number;
  onProgress?: (progress: ForwardProgress) => void;
}

export interface ForwardOutput {
  mode: ForwardMode;
  numLayers: number;
  hiddenSize: number;
  vocabSize: number;
  /** [captured rows, numLayers + 1, hiddenSize]; row r is prompt capturedPrompt[r] at position capturedPosition[r]. */
  hidden: Float32Array;
  capturedPrompt: Uint32Array;
  capturedPosition: Uint32Array;
  /** [logits rows, vocabSize] when logits were asked for; row r is prompt logitsPrompt[r] at logitsPosition[r]. */
  logits?: Float32Array;
  logitsPrompt?: Uint32Array;
  logitsPosition?: Uint32Array;
  generated?: number[][];
  seconds: number;
  kernels: string;
  /** Prompt tokens that took their keys and values from an earlier prompt instead of running (0: none). */
  sharedTokens: number;
  /** Estimated peak bytes of the run (weights held at once + activations). */
  estimatedBytes: number;
  /** The activation and scratch part of estimatedBytes. */
  activationBytes: number;
  /**
   * Bytes of weight panels a generation run packed (each weight once for every new token), and the part packed
   * into memory an earlier run of this process gave back, which costs no page faults.
   */
  packedBytes: number;
  reusedPackedBytes: number;
  /**
   * Bytes of the run's large buffers (activation scratch, KV cache, packed panels) laid in pages an earlier run of
   * this process gave back: the pipeline's many runs of the same shapes fault their memory in once.
   */
  reusedBufferBytes: number;
  /**
   * Bytes of checkpoint files an earlier run of this process left mapped and unchanged since (same device, inode,
   * size and modification time): their touched pages need no fault.
   */
  reusedMappedBytes: number;
  /**
   * Bytes of layer weights the prompt pass read out of the checkpoint into its one-layer buffer on huge pages
   * (native/core/forward/staged_weights.h): every layer's tensors but routed experts, once each.
   */
  stagedBytes: number;
  /** Bytes of layer weights the run found kept by an earlier run (keepWeights) and did not read. */
  keptBytes: number;
  /** With logitsStats, per logits row (as logitsPrompt lists them): its argmax and log Σ exp. */
  logitsArgmax?: Uint32Array;
  logitsLogZ?: Float64Array;
  /** With logitsPicks: the picked logits, in order. */
  pickedLogits?: Float32Array;
  /** Per edit of the request's wave, in order: what logits, logitsArgmax, logitsLogZ and pickedLogits hold for its own. */
  wave?: WaveOutput[];
}

export interface WaveOutput {
  logits?: Float32Array;
  logitsArgmax?: Uint32Array;
  logitsLogZ?: Float64Array;
  pickedLogits?: Float32Array;
}

/** Checks that a resumed run skips only layers its edit leaves alone; returns the native form. */
function checkResume(request: ForwardRequest, tokens: number): { layer: number; hidden: Float32Array } {
  const { layer, hidden } = request.resumeFrom!;
  const { numLayers, hiddenSize } = request.model.spec;
  const fail = (message: string) => {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `resumeFrom: ${message}`);
  };
  if (!Number.isInteger(layer) || layer < 1 || layer > numLayers) fail(`layer ${layer} is outside 1..${numLayers}`);
  if (!(hidden instanceof Float32Array) || hidden.length !== tokens * hiddenSize) fail(`hidden must be a Float32Array of ${tokens} × ${hiddenSize}`);
  if ((request.maxNewTokens ?? 0) > 0) fail("generation needs every layer's keys and values");
  const start = resumableLayer({ ablation: request.ablation, addition: request.addition, numLayers });
  if (start < layer) {
    fail(`the edit changes the stream entering layer ${start} (the embedding, a writer below layer ${layer}, or an addition below it), so layers below ${layer} cannot be skipped`);
  }
  return { layer, hidden };
}

/** What a request runs and how: its checked rows and edits, shared prefixes and the mode the budget gives it. */
function planOf(request: ForwardRequest) {
  const { model, prompts } = request;
  const { vocabSize } = model.spec;
  if (prompts.length === 0) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "no prompts to run");
  const lengths = prompts.map((ids, p) => {
    if (ids.length === 0) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `prompt ${p} has no tokens`);
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `prompt ${p} has token id ${id}, outside the vocabulary of ${vocabSize}`);
      }
    }
    return ids.length;
  });
  const maxNewTokens = request.maxNewTokens ?? 0;
  const wantLogits = request.logits !== undefined && request.logits !== false;
  const stats = wantLogits && request.logitsStats === true;
  if ((wantLogits || maxNewTokens > 0) && !model.lmHead) {
    throw new AbliterateError(ErrorCodes.TENSOR_MISSING, "logits need lm_head, which this checkpoint does not have", { file: model.dir });
  }
  const capture = captureRows(lengths, request.positions ?? "last");
  const logitsAt = logitsRows(lengths, request.logits);
  const resume = request.resumeFrom ? checkResume(request, lengths.reduce((a, b) => a + b, 0)) : undefined;
  const wave = request.wave && request.wave.length > 0 ? request.wave : undefined;
  if (wave && (maxNewTokens > 0 || capture.rows.length > 0 || resume)) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "a wave of edits runs prompt passes only: positions \"none\", no generation and no resumeFrom");
  }
  const shares = request.reusePrefix === false ? undefined : prefixShares(prompts);
  const sharedTokens = shares?.sharedTokens ?? 0;
  const budget = request.maxMemoryBytes ?? defaultMemoryBudget();
  const mlpChunkTokens = mlpChunkTokensFor(model, budget);
  const rows = lengths.reduce((a, b) => a + b, 0);
  const choice = chooseMode({
    model,
    shape: {
      rows,
      capturedRows: capture.rows.length,
      logitsRows: logitsAt.rows.length,
      maxNewTokens,
      sharedTokens,
      prompts: prompts.length,
      longestPrompt: Math.max(...lengths),
      mlpChunkTokens,
      waveEdits: wave?.length ?? 0,
    },
    budgetBytes: budget,
    requested: request.mode,
    needsHead: wantLogits || maxNewTokens > 0,
  });

  return { lengths, maxNewTokens, wantLogits, stats, capture, logitsAt, resume, wave, shares, sharedTokens, budget, mlpChunkTokens, rows, choice };
}

/** The process's resident set less the kept layers: what it holds beside a run's own memory and its kept layers. */
function heldBesideKeptLayers(): number {
  return Math.max(0, process.memoryUsage.rss() - keptLayerBytes());
}

/**
 * The mode runForward would run this request in, and its memory estimate, without running it (the scorer asks
 * whether its passes stream before it runs them in waves).
 */
export function forwardModeOf(request: ForwardRequest): ModeChoice {
  return planOf(request).choice;
}

export async function runForward(request: ForwardRequest): Promise<ForwardOutput> {
  const { model, prompts } = request;
  const { vocabSize, numLayers, hiddenSize } = model.spec;
  const { lengths, maxNewTokens, wantLogits, stats, capture, logitsAt, resume, wave, shares, sharedTokens, budget, mlpChunkTokens, rows, choice } = planOf(request);
  const tokens = new Int32Array(rows);
  let offset = 0;
  for (const ids of prompts) {
    tokens.set(ids, offset);
    offset += ids.length;
  }
  const job: NativeForwardJob = {
    files: model.files,
    spec: model.spec,
    embed: model.embed,
    positionEmbed: model.positionEmbed,
    finalNorm: model.finalNorm,
    finalNormBias: model.finalNormBias,
    lmHead: model.lmHead,
    lmHeadBias: model.lmHeadBias,
    layers: model.layers,
    ropeTables: model.ropeTables,
    tokens,
    promptLengths: Uint32Array.from(lengths),
    captureRows: Uint32Array.from(capture.rows),
    logitsRows: Uint32Array.from(logitsAt.rows),
    logitsStats: stats,
    ...(request.logitsPicks ? checkedPicks(request.logitsPicks, logitsAt.rows.length, vocabSize) : {}),
    wholeRows: request.wholeLogitsRows ? checkedRows(request.wholeLogitsRows, logitsAt.rows.length) : undefined,
    maxNewTokens,
    eosIds: Int32Array.from(request.eosTokenIds ?? model.eosTokenIds),
    ...nativeEdit(model, request),
    wave: wave?.map((edit) => nativeEdit(model, edit)),
    mode: choice.mode,
    compute: request.compute ?? "fp32",
    prefixSource: sharedTokens > 0 ? shares!.source : undefined,
    prefixLength: sharedTokens > 0 ? shares!.length : undefined,
    resumeFrom: resume,
    threads: request.threads,
    mlpChunkTokens,
    keepLayersBytes: request.keepWeights === true ? keptLayersBudget(model, budget, choice, choice.mode === "streamed" ? (request.heldBytes ?? heldBesideKeptLayers()) : 0) : 0,
  };
  const result = await forward(job, request.onProgress);
  return {
    mode: choice.mode,
    numLayers,
    hiddenSize,
    vocabSize,
    hidden: result.hidden,
    capturedPrompt: Uint32Array.from(capture.prompt),
    capturedPosition: Uint32Array.from(capture.position),
    logits: wantLogits ? result.logits : undefined,
    logitsPrompt: wantLogits ? Uint32Array.from(logitsAt.prompt) : undefined,
    logitsPosition: wantLogits ? Uint32Array.from(logitsAt.position) : undefined,
    generated: maxNewTokens > 0 ? result.generated.map((ids) => Array.from(ids)) : undefined,
    seconds: result.seconds,
    kernels: result.kernels,
    sharedTokens,
    estimatedBytes: choice.estimatedBytes,
    activationBytes: choice.activationBytes,
    packedBytes: result.packedBytes,
    reusedPackedBytes: result.reusedPackedBytes,
    reusedBufferBytes: result.reusedBufferBytes,
    reusedMappedBytes: result.reusedMappedBytes,
    stagedBytes: result.stagedBytes,
    keptBytes: result.keptBytes,
    logitsArgmax: stats ? result.logitsArgmax : undefined,
    logitsLogZ: stats ? result.logitsLogZ : undefined,
    pickedLogits: request.logitsPicks ? result.pickedLogits : undefined,
    wave: wave
      ? result.wave.map((out) => ({
          logits: wantLogits ? out.logits : undefined,
          logitsArgmax: stats ? out.logitsArgmax : undefined,
          logitsLogZ: stats ? out.logitsLogZ : undefined,
          pickedLogits: request.logitsPicks ? out.pickedLogits : undefined,
        }))
      : undefined,
  };
}
