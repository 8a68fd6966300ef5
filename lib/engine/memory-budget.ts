/**
 * Memory sizes (`--max-memory 512MB`), the default budget, and the choice between resident and layer-streamed runs.
 *
 * Units follow the rest of the tool (SI, as formatBytes prints them): K/KB, M/MB, G/GB, T/TB are powers of 1000;
 * KiB, MiB, GiB, TiB powers of 1024; a plain number is bytes. The default budget is 80% of the memory the kernel
 * reports available (MemAvailable in /proc/meminfo, else os.freemem()).
 */
import { readFileSync } from "node:fs";
import { freemem } from "node:os";
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { ForwardModel } from "./load-forward-model.js";

const EXPONENTS: Record<string, number> = { "": 0, K: 1, M: 2, G: 3, T: 4 };

export function parseMemorySize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(?:([KMGT])(i)?)?B?\s*$/i.exec(text);
  if (!match) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `"${text}" is not a memory size (examples: 512MB, 4GB, 1.5GiB, 800000000)`);
  }
  const base = match[3] ? 1024 : 1000;
  const bytes = Math.floor(Number(match[1]) * base ** EXPONENTS[(match[2] ?? "").toUpperCase()]);
  if (!(bytes > 0)) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `memory size "${text}" must be positive`);
  return bytes;
}

export function availableMemoryBytes(): number {
  try {
    const match = /^MemAvailable:\s+(\d+)\s+kB/m.exec(readFileSync("/proc/meminfo", "utf8"));
    if (match) return Number(match[1]) * 1024;
  } catch {
    // Not Linux: fall through.
  }
  return freemem();
}

export function defaultMemoryBudget(): number {
  return Math.floor(availableMemoryBytes() * 0.8);
}

export interface ActivationShape {
  /** Tokens of all prompts together. */
  rows: number;
  /** Rows whose residual stream is kept at every layer. */
  capturedRows: number;
  logitsRows: number;
  maxNewTokens: number;
  /** Prompt tokens that take their keys and values from an earlier prompt (the prompt pass then keeps a KV cache). */
  sharedTokens?: number;
  prompts: number;
  longestPrompt: number;
  mlpChunkTokens: number;
  /** Further edits of a wave (runForward's `wave`): each holds its own stream, own rows and logits. */
  waveEdits?: number;
}

/** Bytes of fp32 activations, scratch and outputs one run holds at its peak (weights not included). */
export function activationBytes(model: ForwardModel, shape: ActivationShape): number {
  const { hiddenSize: d, numHeads, numKvHeads, headDim, intermediateSize, numLayers, vocabSize } = model.spec;
  const qkv = (numHeads + 2 * numKvHeads) * headDim;
  const perRow = 4 * (3 * d + qkv + numHeads * headDim);
  const mlp = 4 * Math.min(shape.mlpChunkTokens, shape.rows) * 3 * intermediateSize;
  const captured = 4 * shape.capturedRows * (numLayers + 1) * d;
  const logits = 4 * (shape.logitsRows + shape.prompts) * vocabSize;
  // Generation keeps every layer's keys and values; a prompt pass that shares prefixes, one layer's at a time.
  const kvRow = 4 * 2 * numKvHeads * headDim;
  const kvCache = shape.maxNewTokens > 0 ? kvRow * numLayers * (shape.rows + shape.prompts * shape.maxNewTokens) : (shape.sharedTokens ?? 0) > 0 ? kvRow * shape.rows : 0;
  // A wave's edit: the stream of every row and of the rows that run, and its logits rows with their normed inputs.
  const perWaveEdit = 4 * (2 * shape.rows * d + shape.logitsRows * (vocabSize + d));
  return shape.rows * perRow + mlp + captured + logits + kvCache + (shape.waveEdits ?? 0) * perWaveEdit;
}

export type ForwardMode = "resident" | "streamed";

export interface ModeChoice {
  mode: ForwardMode;
  /** Estimated peak bytes in that mode. */
  estimatedBytes: number;
  /** The activation and scratch part of it. */
  activationBytes: number;
  residentBytes: number;
  streamedBytes: number;
}

/** lm_head bytes a streamed run holds at once (it reads the unembedding in slices of this size). */
const HEAD_SLICE_BYTES = 32 * 1024 * 1024;

export function chooseMode(params: {
  model: ForwardModel;
  shape: ActivationShape;
  budgetBytes: number;
  requested?: ForwardMode | "auto";
  needsHead: boolean;
}): ModeChoice {
  const { model, shape, budgetBytes, requested = "auto", needsHead } = params;
  const activations = activationBytes(model, shape);
  const largestLayer = Math.max(0, ...model.layerBytes);
  // The prompt pass reads each layer into one staging buffer (native/core/forward/staged_weights.h), panels about the
  // size of the stored bytes (padded to whole panels and depth blocks), and leaves the layers' mapped pages
  // untouched: a capture holds about the model at most, kept layers included (runForward's keepWeights). A
  // generation run packs every weight into panels that take the place of its mapped pages and stages each layer as
  // stored: at its peak it holds all of them plus one layer.
  const residentBytes = model.totalBytes + (shape.maxNewTokens > 0 ? largestLayer : 0) + activations;
  // One layer is held at a time: its staged copy, or the pages of its routed experts (the next layer is read ahead
  // into the page cache, which is reclaimable and not part of the process); embedding rows and an lm_head slice are
  // small.
  const streamedBytes = largestLayer + activations + (needsHead ? Math.min(HEAD_SLICE_BYTES, model.headBytes || model.embedBytes) : 0);
  // A streamed generation reads every layer again for each new token (all prompts' together), holding one at a time
  // beside the keys and values of every layer, which the activations count.
  const mode: ForwardMode = requested === "auto" ? (residentBytes <= budgetBytes ? "resident" : "streamed") : requested;
  return { mode, estimatedBytes: mode === "resident" ? residentBytes : streamedBytes, activationBytes: activations, residentBytes, streamedBytes };
}

/**
 * The part of the budget a streamed run's kept layers never take: what no estimate sees (what the caller allocates
 * between runs, the collector's garbage, the estimate's own error). The one command on the bench model at
 * --max-memory 0.8GB peaked at 845 MB without streamed kept layers; a tenth let them add 49 MB to that.
 */
export const STREAMED_KEPT_SLACK = 0.2;

/**
 * What kept layers may take. Resident: the budget less the run's activations and the embedding and head it reads
 * from the mapping; the run fits its stored layers in that; panels can take a little more (padded to whole panels
 * and depth blocks), and layers past it run without being kept. Streamed: what the budget leaves beside the run's
 * own peak (one layer, activations, a head slice), `heldBytes` (what the process holds beside the run and its kept
 * layers: runForward measures its resident set) and a fifth of the budget, so a model larger than its budget keeps
 * its first layers and reads only the rest again in each pass and for each new token.
 */
export function keptLayersBudget(model: ForwardModel, budget: number, choice: ModeChoice, heldBytes = 0): number {
  if (choice.mode === "streamed") return Math.max(0, Math.floor(budget * (1 - STREAMED_KEPT_SLACK) - choice.streamedBytes - heldBytes));
  return Math.max(0, Math.floor(budget - choice.activationBytes - model.embedBytes - model.headBytes));
}

/**
 * Tokens per MLP chunk. The [chunk, intermediate] buffers get about one layer's worth of bytes (at least 32 MB) and
 * never more than an eighth of the budget: bigger chunks hardly speed the GEMMs up, and a layer-streamed run
 * should hold little more than one layer plus the residual stream.
 */
export function mlpChunkTokensFor(model: ForwardModel, budgetBytes: number): number {
  const perToken = 4 * 3 * model.spec.intermediateSize;
  const share = Math.min(budgetBytes / 8, Math.max(32 * 2 ** 20, ...model.layerBytes));
  return Math.max(16, Math.min(4096, Math.floor(share / perToken)));
}
