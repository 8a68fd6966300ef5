/**
 * What the forward engine needs to know about a model family: the maths switches, per-layer attention settings and
 * the checkpoint name of every weight role, plus the helpers that read config.json values the way transformers'
 * config classes do. Each family record of families.ts carries the function that builds its description
 * (describe-llama-like.ts, describe-gpt.ts, describe-llama4.ts).
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { NativeForwardLayer, NativeModelSpec } from "../native/addon.js";
import type { RopeParameters } from "./read-rope-parameters.js";

/** Per-layer settings that are not tensors. */
export type LayerSetting = "slidingWindow" | "ropeTable" | "experts" | "attentionChunk" | "noRope" | "qkL2Norm" | "temperatureTuning";

export type LayerRole = Exclude<keyof NativeForwardLayer, LayerSetting>;

/** Mixture-of-experts layout: which layers are sparse, what they require, and each expert's tensor names. */
export interface SparseLayout {
  isSparse(layer: number): boolean;
  /** Required on sparse layers instead of the dense MLP roles. */
  requiredRoles: readonly LayerRole[];
  /** One tensor per expert and projection (Mixtral, Qwen-MoE). */
  expertNames?(layer: number, expert: number): { gate: string; up: string; down: string };
  /**
   * All experts in two fused tensors stored [in, out] per expert (Llama 4): gate_up [E, d, 2 · moe] (gate columns
   * first) and down [E, moe, d]. The engine reads expert e as a transposed slice of each.
   */
  fusedExperts?(layer: number): { gateUp: string; down: string };
}

export interface ForwardDescription {
  family: string;
  spec: Omit<NativeModelSpec, "vocabSize">;
  /** Suffixes below the decoder prefix (e.g. `embed_tokens.weight`). */
  embed: string;
  positionEmbed?: string;
  finalNorm: string;
  finalNormBias?: string;
  /** Full name (not below the prefix), for checkpoints with a separate unembedding. */
  lmHead: string;
  lmHeadBias?: string;
  tieWordEmbeddings: boolean;
  /** Suffix below the prefix of every role of layer i; roles absent from the checkpoint are skipped if optional. */
  layerNames(layer: number): Partial<Record<LayerRole, string>>;
  requiredRoles: readonly LayerRole[];
  /** Roles stored [in, out] (GPT-2's Conv1D). */
  transposedRoles?: ReadonlySet<LayerRole>;
  sparse?: SparseLayout;
  slidingWindow(layer: number): number;
  /** Llama 4's per-layer attention switches (chunked attention, NoPE, L2 q/k norm, temperature tuning). */
  layerOptions?(layer: number): Partial<Pick<NativeForwardLayer, "attentionChunk" | "noRope" | "qkL2Norm" | "temperatureTuning">>;
  /** Distinct RoPE settings (none for learned positions); ropeTableOf(i) indexes them. */
  rope: RopeParameters[];
  ropeTableOf(layer: number): number;
  maxPositionEmbeddings: number;
  /** Where the decoder may live, tried in order (the first holding the embedding wins). */
  prefixes: readonly string[];
  eosTokenIds: number[];
}

export type Config = Record<string, unknown>;

export function int(config: Config, key: string, file: string, fallback?: number): number {
  const value = config[key];
  if (typeof value === "number" && Number.isSafeInteger(value) && value > 0) return value;
  if ((value === undefined || value === null) && fallback !== undefined) return fallback;
  throw new AbliterateError(ErrorCodes.CONFIG_INVALID, `config.json needs a positive integer ${key} (got ${JSON.stringify(value)})`, { file });
}

export function num(config: Config, key: string, fallback: number): number {
  const value = config[key];
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}

/** A float config value that may be absent (default) or explicitly null (off). */
export function optionalNum(config: Config, key: string, fallback: number): number {
  if (!(key in config)) return fallback;
  const value = config[key];
  return typeof value === "number" && Number.isFinite(value) ? value : 0;
}

export function activationOf(name: string, file: string): NativeModelSpec["activation"] {
  if (name === "silu" || name === "swish") return "silu";
  if (name === "gelu_pytorch_tanh" || name === "gelu_new" || name === "gelu_fast") return "gelu_tanh";
  if (name === "gelu") return "gelu";
  throw new AbliterateError(ErrorCodes.CONFIG_INVALID, `activation "${name}" is not supported by the forward engine`, { file });
}

export function eosIds(config: Config): number[] {
  const value = config.eos_token_id;
  if (typeof value === "number") return [value];
  if (Array.isArray(value)) return value.filter((v): v is number => typeof v === "number");
  return [];
}

export function layerTypes(config: Config, numLayers: number): unknown[] | undefined {
  return Array.isArray(config.layer_types) && config.layer_types.length === numLayers ? (config.layer_types as unknown[]) : undefined;
}

export const f32 = Math.fround;

