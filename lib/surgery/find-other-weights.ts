/**
 * Weight files in the model folder besides the checkpoint being edited. apply carries every other file into its
 * output unchanged, so each of these would ship unedited beside the edited shards, and a loader may pick it:
 * transformers loads `model.safetensors` before a sharded index, vLLM loads every `*.safetensors` of a folder
 * without an index and its Mistral loader reads `consolidated.safetensors`, and pickles, TF, Flax and GGUF
 * weights are loaded by the tools that prefer them. The model that looked abliterated would be the original.
 * abliterate edits one safetensors checkpoint, so such a folder is refused, naming the files (docs/reliability.md).
 * Trainer state saved next to the weights (optimizer, scheduler, RNG state, training args) is not a model.
 */
import { basename, relative } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { Checkpoint } from "../safetensors/read-checkpoint.js";
import { INDEX_FILE_NAME, SINGLE_FILE_NAME } from "../safetensors/read-checkpoint.js";
import { listFolderFiles } from "./model-folder-files.js";

const WEIGHT_FILE = /\.(?:safetensors|bin|pt|pth|ckpt|h5|msgpack|gguf|ggml|onnx|onnx_data|tflite)$|\.(?:safetensors|bin|h5|msgpack)\.index\.json$/i;
/** What vLLM's filter_files_not_needed_for_inference drops, and Trainer's per-process RNG states. */
const TRAINER_STATE = /^(?:training_args\.bin|optimizer\.(?:pt|bin)|scheduler\.(?:pt|bin)|scaler\.pt|rng_state(?:_\d+)?\.pth)$/;

export interface OtherWeightFile {
  /** Relative to the model folder. */
  file: string;
  /** Which loader would take it. */
  why: string;
}

function reasonFor(file: string, checkpoint: Checkpoint): string {
  const name = basename(file).toLowerCase();
  const nested = file.includes("/") ? "in a subfolder, " : "";
  if (name.endsWith(".safetensors")) {
    if (name === SINGLE_FILE_NAME && checkpoint.indexPath) return `${nested}transformers loads it instead of the sharded ${INDEX_FILE_NAME}`;
    if (name.startsWith("consolidated")) return `${nested}Mistral's own format, which vLLM's mistral loader and mistral-inference read`;
    if (!checkpoint.indexPath && !nested) return "vLLM loads every *.safetensors file of a folder that has no index";
    return `${nested}a safetensors file the checkpoint does not include`;
  }
  if (name.endsWith(".index.json")) return `${nested}another index, of weights in a second format or variant`;
  if (/\.(?:bin|pt|pth|ckpt)$/.test(name)) return `${nested}PyTorch pickle weights (transformers with use_safetensors=False, and tools that prefer them, load these)`;
  if (name.endsWith(".h5")) return `${nested}TensorFlow weights`;
  if (name.endsWith(".msgpack")) return `${nested}Flax weights`;
  if (/\.(?:gguf|ggml)$/.test(name)) return `${nested}llama.cpp weights`;
  return `${nested}exported weights (ONNX / TFLite)`;
}

export interface FindOtherWeightsParams {
  dir: string;
  checkpoint: Checkpoint;
  /** Absolute paths not part of the model (an output folder inside it, left from an older version). */
  skipPath?: (absolutePath: string) => boolean;
}

export async function findOtherWeights(params: FindOtherWeightsParams): Promise<OtherWeightFile[]> {
  const own = new Set(params.checkpoint.shards.map((shard) => relative(params.checkpoint.dir, shard.path)));
  if (params.checkpoint.indexPath) own.add(relative(params.checkpoint.dir, params.checkpoint.indexPath));
  const files = await listFolderFiles({ dir: params.dir, skipTopLevel: own, skipPath: params.skipPath });
  return files
    .filter((entry) => WEIGHT_FILE.test(entry.relative) && !TRAINER_STATE.test(basename(entry.relative)))
    .map((entry) => ({ file: entry.relative, why: reasonFor(entry.relative, params.checkpoint) }));
}

/** Throws OTHER_WEIGHTS naming every weight file besides the checkpoint (at most 8 listed). */
export async function refuseOtherWeights(params: FindOtherWeightsParams): Promise<void> {
  const others = await findOtherWeights(params);
  if (others.length === 0) return;
  const listed = others.slice(0, 8).map((other) => `${other.file} (${other.why})`);
  if (others.length > 8) listed.push(`… ${others.length - 8} more`);
  const what = params.checkpoint.indexPath ? `the checkpoint of ${basename(params.checkpoint.indexPath)}` : basename(params.checkpoint.shards[0].path);
  throw new AbliterateError(
    ErrorCodes.OTHER_WEIGHTS,
    `the folder holds weights besides ${what}, which abliterate edits: ${listed.join("; ")}. ` +
      "They would be carried into the output unedited, and a loader that picks them would get the original model. " +
      "Move them out of the folder (a Hub download leaves them out), then run again",
    { file: params.dir },
  );
}
