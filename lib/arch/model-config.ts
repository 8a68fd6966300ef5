/**
 * The few config.json facts surgery needs, read the way transformers reads them:
 * per-family attribute aliases (GPT-2's n_embd, n_layer) and multimodal nesting (text_config).
 */
import { readRegularFile } from "../fs/read-regular-file.js";
import { join } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";

export interface ModelConfig {
  /** config.json's model_type as written. */
  modelType: string;
  hiddenSize: number;
  numLayers: number;
  /** Whether lm_head shares the embedding matrix (transformers' tie_word_embeddings, with per-family defaults). */
  tieWordEmbeddings: boolean;
  /** The raw object, for family-specific fields. */
  raw: Record<string, unknown>;
  /** The text sub-config for multimodal checkpoints (gemma3 has text_config), else raw. */
  text: Record<string, unknown>;
}

// transformers' PretrainedConfig defaults tie_word_embeddings to true; these families override it to false.
const UNTIED_BY_DEFAULT = new Set(["llama", "mistral", "qwen2", "qwen3", "qwen2_moe", "qwen3_moe", "mixtral", "phi3", "olmo2", "gpt_neox", "llama4", "llama4_text"]);

function positiveInteger(value: unknown): number | undefined {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0 ? value : undefined;
}

export function parseModelConfig(raw: unknown, file: string): ModelConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new AbliterateError(ErrorCodes.CONFIG_INVALID, "config.json is not a JSON object", { file });
  }
  const config = raw as Record<string, unknown>;
  const modelType = config.model_type;
  if (typeof modelType !== "string" || modelType.length === 0) {
    throw new AbliterateError(ErrorCodes.CONFIG_INVALID, "config.json has no model_type", { file });
  }
  const nested = config.text_config;
  const text = typeof nested === "object" && nested !== null && !Array.isArray(nested) ? (nested as Record<string, unknown>) : config;
  const hiddenSize = positiveInteger(text.hidden_size) ?? positiveInteger(text.n_embd) ?? positiveInteger(text.d_model);
  const numLayers = positiveInteger(text.num_hidden_layers) ?? positiveInteger(text.n_layer) ?? positiveInteger(text.num_layers);
  if (hiddenSize === undefined) {
    throw new AbliterateError(ErrorCodes.CONFIG_INVALID, "config.json has no positive integer hidden_size (or n_embd)", { file });
  }
  if (numLayers === undefined) {
    throw new AbliterateError(ErrorCodes.CONFIG_INVALID, "config.json has no positive integer num_hidden_layers (or n_layer)", { file });
  }
  const tieField = config.tie_word_embeddings ?? text.tie_word_embeddings;
  const tieWordEmbeddings = typeof tieField === "boolean" ? tieField : !UNTIED_BY_DEFAULT.has(modelType);
  return { modelType, hiddenSize, numLayers, tieWordEmbeddings, raw: config, text };
}

export async function readModelConfig(dir: string): Promise<ModelConfig> {
  const file = join(dir, "config.json");
  let text: string;
  try {
    text = (await readRegularFile(file)).toString("utf8");
  } catch (error) {
    throw new AbliterateError(ErrorCodes.CONFIG_INVALID, "config.json is missing or unreadable", { file, cause: error });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new AbliterateError(ErrorCodes.CONFIG_INVALID, `config.json is not valid JSON (${(error as Error).message})`, { file, cause: error });
  }
  return parseModelConfig(parsed, file);
}
