/**
 * The candidate-directions file `abliterate direction` writes and the one command keeps in its work dir:
 * - `directions` [L+1, d]: mean(positive) − mean(negative) per layer index, not normalized (the norms are kept);
 * - `harmful_mean`, `harmless_mean` [L+1, d]: the two means, for the projected variants and the report;
 * - __metadata__: format, the prompts' sha256 and origins, the model and its revision, the positions and template used.
 * Stored as F64: the accumulation is fp64 and nothing is gained by rounding it.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { parseSafetensorsHeader } from "../safetensors/parse-header.js";
import { safetensorsParts } from "../safetensors/index.js";
import { writeOutputFile } from "../fs/write-output-file.js";
import type { OutputInput } from "../fs/refuse-output-overlap.js";
import { TOOL_VERSION } from "../version.js";
import { decodeFloats, type FloatDtype } from "./decode-floats.js";

export const CANDIDATES_FORMAT = "abliterate-direction-candidates";

/** sha256 of a prompt list, independent of how it was stored: the prompts joined by "\n" after trimming. */
export function promptsSha256(prompts: readonly string[]): string {
  return createHash("sha256").update(prompts.map((prompt) => prompt.trim()).join("\n")).digest("hex");
}

export interface CandidateMetadata {
  model: string;
  modelRevision?: string;
  positivePrompts: readonly string[];
  negativePrompts: readonly string[];
  positiveLabel: string;
  negativeLabel: string;
  /** Where each set was read from (a path, `hub:org/name:split[slice]@commit`, or the built-in set). */
  positiveOrigin?: string;
  negativeOrigin?: string;
  positions: number;
  chatTemplate: boolean;
  systemPrompt?: string;
}

function matrix(name: string, rows: Float64Array[]) {
  const d = rows[0].length;
  const values = new Float64Array(rows.length * d);
  rows.forEach((row, i) => values.set(row, i * d));
  return { name, dtype: "F64" as const, shape: [rows.length, d], data: new Uint8Array(values.buffer) };
}

/** Per-layer means of the two prompt sets and their difference, as the candidates file stores them. */
export interface ContrastMeans {
  /** mean(positive) − mean(negative), L + 1 rows, not normalized. */
  directions: Float64Array[];
  positiveMean: Float64Array[];
  negativeMean: Float64Array[];
  positiveRows: number;
  negativeRows: number;
}

export interface WriteDirectionCandidatesParams {
  path: string;
  means: ContrastMeans;
  metadata: CandidateMetadata;
  /** Replace an existing file (default: refuse it, OUTPUT_EXISTS). */
  force?: boolean;
  /** What the run read (the model folder, prompt files): the file may not overlap any of them. */
  inputs?: readonly OutputInput[];
}

/** Writes the candidates file atomically (lib/fs/write-output-file.ts): never over an input, an existing file only with `force`. */
export async function writeDirectionCandidates(params: WriteDirectionCandidatesParams): Promise<void> {
  const { means, metadata } = params;
  const parts = safetensorsParts({
    tensors: [matrix("directions", means.directions), matrix("harmful_mean", means.positiveMean), matrix("harmless_mean", means.negativeMean)],
    metadata: {
      format: CANDIDATES_FORMAT,
      tool_version: TOOL_VERSION,
      model: metadata.model,
      ...(metadata.modelRevision ? { model_revision: metadata.modelRevision } : {}),
      positive: metadata.positiveLabel,
      negative: metadata.negativeLabel,
      positive_prompts: String(metadata.positivePrompts.length),
      negative_prompts: String(metadata.negativePrompts.length),
      positive_prompts_sha256: promptsSha256(metadata.positivePrompts),
      negative_prompts_sha256: promptsSha256(metadata.negativePrompts),
      ...(metadata.positiveOrigin !== undefined ? { positive_origin: metadata.positiveOrigin } : {}),
      ...(metadata.negativeOrigin !== undefined ? { negative_origin: metadata.negativeOrigin } : {}),
      positive_rows: String(means.positiveRows),
      negative_rows: String(means.negativeRows),
      positions: `last ${metadata.positions} token(s) of each prompt`,
      chat_template: String(metadata.chatTemplate),
      ...(metadata.systemPrompt !== undefined ? { system_prompt: metadata.systemPrompt } : {}),
      layers: "row i = residual stream entering decoder layer i; row L = output of the last layer, before the final norm",
      harmful_mean: "mean of the positive set",
      harmless_mean: "mean of the negative set",
    },
  });
  await writeOutputFile({ path: params.path, data: parts, force: params.force, inputs: params.inputs });
}

export interface DirectionCandidates extends ContrastMeans {
  metadata: Record<string, string>;
}

export async function readDirectionCandidates(path: string): Promise<DirectionCandidates> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `cannot read the candidates file (${(error as NodeJS.ErrnoException).code ?? String(error)})`, { file: path, cause: error });
  }
  const header = parseSafetensorsHeader({ bytes, fileSize: bytes.length, path });
  const rowsOf = (name: string): Float64Array[] => {
    const info = header.byName.get(name);
    if (!info || info.shape.length !== 2) throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `has no 2-D tensor "${name}"; not a candidates file`, { file: path });
    const [n, d] = info.shape;
    const values = decodeFloats(bytes, info.dtype as FloatDtype, info.byteOffset, n * d);
    return Array.from({ length: n }, (_, i) => values.slice(i * d, (i + 1) * d));
  };
  const metadata = header.metadata ?? {};
  return {
    directions: rowsOf("directions"),
    positiveMean: rowsOf("harmful_mean"),
    negativeMean: rowsOf("harmless_mean"),
    positiveRows: Number(metadata.positive_rows ?? 0),
    negativeRows: Number(metadata.negative_rows ?? 0),
    metadata,
  };
}
