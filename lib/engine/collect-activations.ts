/**
 * Residual-stream activations of text prompts, and the safetensors file `abliterate activations` writes.
 *
 * File layout (all little-endian; index i of the second axis is the stream entering decoder layer i, index L the
 * output of the last layer before the final norm):
 * - positions "last": `activations` F32 [prompts, L + 1, d] at each prompt's last token; `input_lengths` I64 [prompts].
 * - positions "all":  `activations` F32 [tokens, L + 1, d] for every token of every prompt, prompt after prompt;
 *   `prompt_offsets` I64 [prompts + 1] (prompt p is rows offsets[p] .. offsets[p+1] - 1); `input_ids` I64 [tokens].
 * __metadata__ records the model folder, the positions, whether the chat template was used, and the layer convention.
 */
import type { ForwardProgress } from "../native/addon.js";
import { safetensorsParts, type SerializableTensor } from "../safetensors/index.js";
import { writeOutputFile } from "../fs/write-output-file.js";
import type { OutputInput } from "../fs/refuse-output-overlap.js";
import { loadPromptTokenizer } from "../tokenize/load-prompt-tokenizer.js";
import { TOOL_VERSION } from "../version.js";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { loadForwardModel } from "./load-forward-model.js";
import type { ForwardMode } from "./memory-budget.js";
import { runForward, type ForwardCompute, type ForwardOutput } from "./run-forward.js";

export interface CollectActivationsParams {
  modelDir: string;
  prompts: string[];
  positions: "last" | "all";
  /** true: required; false: never; undefined: when the tokenizer has one. */
  chatTemplate?: boolean;
  maxMemoryBytes?: number;
  mode?: ForwardMode | "auto";
  threads?: number;
  /** Arithmetic of the projections (default "fp32", the reference; docs/precision.md). */
  compute?: ForwardCompute;
  onProgress?: (progress: ForwardProgress) => void;
}

export interface CollectedActivations {
  output: ForwardOutput;
  tokenIds: number[][];
  usedChatTemplate: boolean;
}

export async function collectActivations(params: CollectActivationsParams): Promise<CollectedActivations> {
  const tokenizer = loadPromptTokenizer({ dir: params.modelDir });
  if (params.chatTemplate === true && !tokenizer.chatTemplate) {
    throw new AbliterateError(ErrorCodes.CONFIG_INVALID, "--chat-template was given but the tokenizer has no chat template", { file: params.modelDir });
  }
  const usedChatTemplate = params.chatTemplate !== false && tokenizer.chatTemplate !== undefined;
  const tokenIds = params.prompts.map((prompt) => tokenizer.encodePrompt(prompt, usedChatTemplate));
  const model = await loadForwardModel(params.modelDir);
  const output = await runForward({
    model,
    prompts: tokenIds,
    positions: params.positions,
    mode: params.mode,
    maxMemoryBytes: params.maxMemoryBytes,
    threads: params.threads,
    compute: params.compute,
    onProgress: params.onProgress,
  });
  return { output, tokenIds, usedChatTemplate };
}

function int64Tensor(name: string, values: number[]): SerializableTensor {
  return { name, dtype: "I64", shape: [values.length], data: new Uint8Array(BigInt64Array.from(values, (v) => BigInt(v)).buffer) };
}

export interface WriteActivationsFileParams {
  path: string;
  collected: CollectedActivations;
  positions: "last" | "all";
  modelDir: string;
  /** Replace an existing file (default: refuse it). */
  force?: boolean;
  /** Inputs besides the model folder that the file may not overlap (the prompts file). */
  otherInputs?: readonly OutputInput[];
}

/** Writes the activations file atomically (lib/fs/write-output-file.ts): never over an input, an existing file only with `force`. */
export async function writeActivationsFile(params: WriteActivationsFileParams): Promise<void> {
  const { collected, positions } = params;
  const { output, tokenIds } = collected;
  const points = output.numLayers + 1;
  const rows = output.hidden.length / (points * output.hiddenSize);
  const tensors: SerializableTensor[] = [
    {
      name: "activations",
      dtype: "F32",
      shape: [rows, points, output.hiddenSize],
      data: new Uint8Array(output.hidden.buffer, output.hidden.byteOffset, output.hidden.byteLength),
    },
  ];
  if (positions === "all") {
    const offsets = [0];
    for (const ids of tokenIds) offsets.push(offsets[offsets.length - 1] + ids.length);
    tensors.push(int64Tensor("prompt_offsets", offsets), int64Tensor("input_ids", tokenIds.flat()));
  } else {
    tensors.push(int64Tensor("input_lengths", tokenIds.map((ids) => ids.length)));
  }
  const parts = safetensorsParts({
    tensors,
    metadata: {
      format: "abliterate-activations",
      model: params.modelDir,
      positions,
      chat_template: String(collected.usedChatTemplate),
      kernels: collected.output.kernels,
      layers: "index i = residual stream entering decoder layer i; index L = output of the last layer, before the final norm",
      tool_version: TOOL_VERSION,
    },
  });
  await writeOutputFile({ path: params.path, data: parts, force: params.force, inputs: [{ path: params.modelDir, label: "the model" }, ...(params.otherInputs ?? [])] });
}
