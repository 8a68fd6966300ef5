import { AbliterateError, ErrorCodes } from "../errors.js";
import { describeJsonValue, isJsonObject, parseStrictJson, quoteForMessage, toPlainJson } from "./parse-strict-json.js";

export interface CheckpointIndex {
  /** tensor name → shard file name, in the index's order. */
  weightMap: Map<string, string>;
  metadata?: Record<string, unknown>;
}

export interface ParseCheckpointIndexParams {
  text: string;
  path: string;
}

/**
 * Parses `model.safetensors.index.json`. Duplicate keys are errors (JSON.parse would keep one mapping of a
 * tensor named twice and hide the other), and every shard name must be a plain file name inside the folder:
 * no separators of either kind, no "." or "..", no NUL, not absolute, so a hostile index cannot point outside.
 */
export function parseCheckpointIndex({ text, path }: ParseCheckpointIndexParams): CheckpointIndex {
  const invalid = (problem: string): never => {
    throw new AbliterateError(ErrorCodes.INDEX_INVALID, problem, { file: path });
  };
  const root = parseStrictJson({ text, file: path, code: ErrorCodes.INDEX_INVALID, what: "index" });
  if (!isJsonObject(root)) return invalid(`index is ${describeJsonValue(root)}, not a JSON object`);

  const rawWeightMap = root.get("weight_map");
  if (!isJsonObject(rawWeightMap)) return invalid(`weight_map is ${describeJsonValue(rawWeightMap)}, not an object`);
  if (rawWeightMap.size === 0) invalid("weight_map names no tensors");

  const weightMap = new Map<string, string>();
  for (const [tensor, file] of rawWeightMap) {
    if (typeof file !== "string") {
      invalid(`weight_map entry for ${quoteForMessage(tensor)} is ${describeJsonValue(file)}, not a file name`);
    }
    const problem = unsafeFileNameProblem(file as string);
    if (problem !== undefined) {
      invalid(`weight_map entry for ${quoteForMessage(tensor)} names ${quoteForMessage(file as string)}, which ${problem}`);
    }
    weightMap.set(tensor, file as string);
  }

  const rawMetadata = root.get("metadata");
  if (rawMetadata === undefined || rawMetadata === null) return { weightMap };
  if (!isJsonObject(rawMetadata)) return invalid(`metadata is ${describeJsonValue(rawMetadata)}, not an object`);
  return { weightMap, metadata: toPlainJson(rawMetadata) as Record<string, unknown> };
}

function unsafeFileNameProblem(name: string): string | undefined {
  if (name.length === 0) return "is empty";
  if (name.includes("/") || name.includes("\\")) return "is not a plain file name in the checkpoint folder (it has a path separator)";
  if (name === "." || name === "..") return "is not a file in the checkpoint folder";
  if (name.includes("\0")) return "contains a NUL byte";
  if (/^[A-Za-z]:/.test(name)) return "is an absolute (drive-letter) path";
  return undefined;
}
