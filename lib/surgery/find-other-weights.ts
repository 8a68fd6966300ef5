/**
 * Weight files in the model folder besides the checkpoint being edited. apply carries every other file into its
 * output unchanged, so each of these would ship unedited beside the edited shards, and a loader that picks it gets
 * the original model: transformers loads `model.safetensors` before a sharded index; vLLM loads every
 * `*.safetensors` of a folder without an index, and its Mistral loader reads `consolidated*.safetensors`; pickled,
 * TF and Flax weights under transformers' own names load with use_safetensors=False or when the tool prefers them;
 * Meta's `consolidated.NN.pth` in Meta's own code; ONNX exports in optimum. abliterate edits one safetensors
 * checkpoint, so such a folder is refused, naming the files (docs/reliability.md § Reliability II).
 *
 * What counts: a safetensors file that holds any of the checkpoint's tensors (a second copy or a variant), any
 * `consolidated*` file (Mistral's and Meta's formats name the tensors differently), and the loaders' file names for
 * the other formats. Other safetensors files (a direction, activations, test data) and other pickles (a `.pt`
 * direction, trainer state) are not weights of this model and are copied like any other file.
 */
import { basename, relative } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { Checkpoint } from "../safetensors/read-checkpoint.js";
import { INDEX_FILE_NAME, SINGLE_FILE_NAME } from "../safetensors/read-checkpoint.js";
import { readSafetensorsHeader } from "../safetensors/read-header.js";
import { listFolderFiles } from "./model-folder-files.js";

/** Weight files by the names their loaders look for (transformers, Mistral/Meta, optimum), and their indexes. */
const LOADER_FILE_NAMES = /^(?:pytorch_model.*\.bin|tf_model.*\.h5|flax_model.*\.msgpack|consolidated.*\.(?:pth?|safetensors)|.*\.onnx(?:_data)?|(?:pytorch_model|tf_model|flax_model|model).*\.(?:bin|h5|msgpack|safetensors)\.index\.json)$/i;

export interface OtherWeightFile {
  /** Relative to the model folder. */
  file: string;
  /** Which loader would take it. */
  why: string;
}

function reasonFor(file: string, checkpoint: Checkpoint, sharedTensors: number): string {
  const name = basename(file).toLowerCase();
  const nested = file.includes("/") ? "in a subfolder, " : "";
  if (name.startsWith("consolidated")) {
    return name.endsWith(".safetensors")
      ? `${nested}Mistral's own format, which vLLM's mistral loader and mistral-inference read`
      : `${nested}Meta's or Mistral's own format, read by their reference code`;
  }
  if (name.endsWith(".safetensors")) {
    if (name === SINGLE_FILE_NAME && checkpoint.indexPath && !nested) return `transformers loads it instead of the sharded ${INDEX_FILE_NAME}`;
    if (!checkpoint.indexPath && !nested) return `it holds ${sharedTensors} of the checkpoint's tensors, and vLLM loads every *.safetensors file of a folder that has no index`;
    return `${nested}it holds ${sharedTensors} of the checkpoint's tensors: a second copy or a variant`;
  }
  if (name.endsWith(".index.json")) return `${nested}another index, of weights in a second format or variant`;
  if (name.endsWith(".bin")) return `${nested}PyTorch pickle weights (transformers loads them with use_safetensors=False, and tools that prefer them)`;
  if (name.endsWith(".h5")) return `${nested}TensorFlow weights`;
  if (name.endsWith(".msgpack")) return `${nested}Flax weights`;
  return `${nested}ONNX weights, which optimum loads`;
}

/** How many of the checkpoint's tensor names a safetensors file holds; 0 for a file that is not safetensors at all. */
async function sharedTensorCount(path: string, checkpoint: Checkpoint): Promise<number> {
  try {
    const header = await readSafetensorsHeader(path);
    return header.tensors.filter((tensor) => checkpoint.tensorLocations.has(tensor.name)).length;
  } catch {
    // Not a readable safetensors file: no loader gets the model's weights from it.
    return 0;
  }
}

export interface FindOtherWeightsParams {
  dir: string;
  checkpoint: Checkpoint;
  /** Absolute paths not part of the model (an output folder inside it, left from an older version). */
  skipPath?: (absolutePath: string) => boolean;
}

export async function findOtherWeights(params: FindOtherWeightsParams): Promise<OtherWeightFile[]> {
  const { checkpoint } = params;
  const own = new Set(checkpoint.shards.map((shard) => relative(checkpoint.dir, shard.path)));
  if (checkpoint.indexPath) own.add(relative(checkpoint.dir, checkpoint.indexPath));
  const files = await listFolderFiles({ dir: params.dir, skipTopLevel: own, skipPath: params.skipPath });
  const others: OtherWeightFile[] = [];
  for (const entry of files) {
    if (entry.special) continue;
    const name = basename(entry.relative);
    const byName = LOADER_FILE_NAMES.test(name);
    const shared = name.toLowerCase().endsWith(".safetensors") ? await sharedTensorCount(entry.path, checkpoint) : 0;
    if (byName || shared > 0) others.push({ file: entry.relative, why: reasonFor(entry.relative, checkpoint, shared) });
  }
  return others;
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
