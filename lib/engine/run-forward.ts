/**
 * Runs tokenized prompts through a model: residual stream at chosen positions (index i enters decoder layer i,
 * index L leaves the last layer before the final norm), final-position logits, greedy generation, and optional
 * directional ablation of every residual write (embedding, attention output, MLP output) and activation addition.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import { orthonormalizeRows } from "../direction-files/orthonormalize.js";
import { forward, type ForwardProgress, type NativeForwardAblation, type NativeForwardAddition, type NativeForwardJob } from "../native/addon.js";
import type { ForwardModel } from "./load-forward-model.js";
import { chooseMode, defaultMemoryBudget, mlpChunkTokensFor, type ForwardMode } from "./memory-budget.js";

/** Which positions of each prompt to capture: its last token, its last k tokens, all of them, or none. */
export type CapturePositions = "last" | "all" | "none" | { last: number };

export interface ForwardAblation {
  /** k directions of hidden_size (orthonormalized here; dependent directions are rejected). */
  directions: ArrayLike<number>[];
  /** 1 removes the component (default), 2 reflects, < 0 amplifies. */
  alpha?: number;
  /** Layers whose attention and MLP writes are projected; all layers when absent. */
  layers?: number[];
  /** Project the embedding output too (default true). */
  embedding?: boolean;
}

/** Activation addition: `vector` added to every position of the residual stream at index `point` (0..L). */
export interface ForwardAddition {
  vector: ArrayLike<number>;
  point: number;
}

export interface ForwardRequest {
  model: ForwardModel;
  /** Token ids per prompt. */
  prompts: number[][];
  positions?: CapturePositions;
  /**
   * true or "last": each prompt's final-position logits, [prompts, vocab]; "all": every token's, [tokens, vocab];
   * { last: k } (or one k per prompt): the last k positions of each prompt, prompt after prompt, for teacher forcing
   * (the logits at position i predict token i + 1).
   */
  logits?: boolean | "last" | "all" | { last: number | readonly number[] };
  /** Greedy tokens per prompt (resident mode). */
  maxNewTokens?: number;
  /** Stop ids for generation; the model's (generation_config.json / config.json) when absent. */
  eosTokenIds?: number[];
  ablation?: ForwardAblation;
  addition?: ForwardAddition;
  mode?: ForwardMode | "auto";
  /** Memory budget for the mode choice; default: 80% of available memory. */
  maxMemoryBytes?: number;
  threads?: number;
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
  /** [prompts, vocabSize] (or [tokens, vocabSize] for logits: "all") when logits were asked for. */
  logits?: Float32Array;
  generated?: number[][];
  seconds: number;
  kernels: string;
  /** Estimated peak bytes of the run (weights held at once + activations). */
  estimatedBytes: number;
  /** The activation and scratch part of estimatedBytes. */
  activationBytes: number;
}

function captureRows(lengths: number[], positions: CapturePositions): { rows: number[]; prompt: number[]; position: number[] } {
  const rows: number[] = [];
  const prompt: number[] = [];
  const position: number[] = [];
  let offset = 0;
  lengths.forEach((length, p) => {
    let first = length;
    if (positions === "all") first = 0;
    else if (positions === "last") first = length - 1;
    else if (typeof positions === "object") first = Math.max(0, length - positions.last);
    for (let i = first; i < length; i += 1) {
      rows.push(offset + i);
      prompt.push(p);
      position.push(i);
    }
    offset += length;
  });
  return { rows, prompt, position };
}

function nativeAblation(model: ForwardModel, ablation: ForwardAblation): NativeForwardAblation {
  const d = model.spec.hiddenSize;
  const rows = ablation.directions.map((direction, i) => {
    if (direction.length !== d) {
      throw new AbliterateError(ErrorCodes.DIRECTION_DIMENSION, `ablation direction ${i} has ${direction.length} entries, hidden_size is ${d}`);
    }
    const values = Float64Array.from(direction);
    if (values.some((v) => !Number.isFinite(v))) throw new AbliterateError(ErrorCodes.DIRECTION_NOT_FINITE, `ablation direction ${i} holds NaN or Inf`);
    return values;
  });
  const basis = orthonormalizeRows(rows, "ablation");
  const layers = new Uint8Array(model.spec.numLayers);
  if (ablation.layers) {
    for (const layer of ablation.layers) {
      if (!Number.isInteger(layer) || layer < 0 || layer >= layers.length) {
        throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `ablation layer ${layer} is outside 0..${layers.length - 1}`);
      }
      layers[layer] = 1;
    }
  } else {
    layers.fill(1);
  }
  return { basis: Float32Array.from(basis), rank: rows.length, alpha: ablation.alpha ?? 1, embedding: ablation.embedding ?? true, layers };
}

function nativeAddition(model: ForwardModel, addition: ForwardAddition): NativeForwardAddition {
  const { hiddenSize, numLayers } = model.spec;
  if (addition.vector.length !== hiddenSize) {
    throw new AbliterateError(ErrorCodes.DIRECTION_DIMENSION, `addition vector has ${addition.vector.length} entries, hidden_size is ${hiddenSize}`);
  }
  const vector = Float32Array.from(addition.vector);
  if (vector.some((v) => !Number.isFinite(v))) throw new AbliterateError(ErrorCodes.DIRECTION_NOT_FINITE, "addition vector holds NaN or Inf (or overflows f32)");
  if (!Number.isInteger(addition.point) || addition.point < 0 || addition.point > numLayers) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `addition point ${addition.point} is outside 0..${numLayers}`);
  }
  return { vector, point: addition.point };
}

export async function runForward(request: ForwardRequest): Promise<ForwardOutput> {
  const { model, prompts } = request;
  const { vocabSize, numLayers, hiddenSize } = model.spec;
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
  if ((wantLogits || maxNewTokens > 0) && !model.lmHead) {
    throw new AbliterateError(ErrorCodes.TENSOR_MISSING, "logits need lm_head, which this checkpoint does not have", { file: model.dir });
  }
  const capture = captureRows(lengths, request.positions ?? "last");
  const logitsRows: number[] = [];
  if (wantLogits) {
    const spec = request.logits;
    let offset = 0;
    lengths.forEach((length, p) => {
      let count = 1;
      if (spec === "all") count = length;
      else if (typeof spec === "object") {
        count = typeof spec.last === "number" ? spec.last : spec.last[p];
        if (!Number.isInteger(count) || count < 1 || count > length) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `logits: last ${count} positions of prompt ${p}, which has ${length} tokens`);
      }
      for (let i = length - count; i < length; i += 1) logitsRows.push(offset + i);
      offset += length;
    });
  }
  const budget = request.maxMemoryBytes ?? defaultMemoryBudget();
  const mlpChunkTokens = mlpChunkTokensFor(model, budget);
  const rows = lengths.reduce((a, b) => a + b, 0);
  const choice = chooseMode({
    model,
    shape: {
      rows,
      capturedRows: capture.rows.length,
      logitsRows: logitsRows.length,
      maxNewTokens,
      prompts: prompts.length,
      longestPrompt: Math.max(...lengths),
      mlpChunkTokens,
    },
    budgetBytes: budget,
    requested: request.mode,
    needsHead: wantLogits || maxNewTokens > 0,
  });

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
    logitsRows: Uint32Array.from(logitsRows),
    maxNewTokens,
    eosIds: Int32Array.from(request.eosTokenIds ?? model.eosTokenIds),
    ablation: request.ablation ? nativeAblation(model, request.ablation) : undefined,
    addition: request.addition ? nativeAddition(model, request.addition) : undefined,
    mode: choice.mode,
    threads: request.threads,
    mlpChunkTokens,
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
    generated: maxNewTokens > 0 ? result.generated.map((ids) => Array.from(ids)) : undefined,
    seconds: result.seconds,
    kernels: result.kernels,
    estimatedBytes: choice.estimatedBytes,
    activationBytes: choice.activationBytes,
  };
}
