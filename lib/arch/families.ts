/**
 * The one family table: one record per model_type family, holding both what surgery edits (which tensors write into
 * the residual stream, and how they are laid out) and how the forward engine runs it (`forward`, the builder of its
 * ForwardDescription). Every list of supported families (error messages, inspect, docs/architectures.md, the test
 * that checks the docs) is derived from this table.
 * Readers of the residual (q/k/v/gate/up, fused qkv/gate_up), norms, routers and an untied lm_head are never
 * listed, so they stay byte-identical. Layer-indexed rules capture the layer number in group 1.
 * Tensor names were checked against transformers' modeling_*.py (the module attribute paths); docs/architectures.md
 * has the per-family table and the reasoning.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import { describeGpt2, describeGptNeox } from "./describe-gpt.js";
import { describeGemma, describeMistral, describeMoe, describeOlmo2, describePhi3, describeQwen, llamaLike as llamaLikeForward } from "./describe-llama-like.js";
import { describeLlama4 } from "./describe-llama4.js";
import type { Config, ForwardDescription } from "./forward-description.js";

/** Builds the forward engine's description from a (text) config; `file` names config.json in errors. */
export type DescribeForward = (config: Config, file: string) => ForwardDescription;

/** Which kind of residual writer a tensor is; `--targets` selects among these. */
export type TargetKind = "embed" | "attn" | "mlp";

/**
 * Where d_model sits in the stored tensor (docs/surgery.md § The maths):
 * - linear: [out = d_model, in] (nn.Linear weight) — W ← W − α r (rᵀW)
 * - rows: [n, d_model] (embedding, learned positions, GPT-2 Conv1D [in, out]) — W ← W − α (W r) rᵀ
 * - bias: [d_model] — b ← b − α r (rᵀb)
 * - experts-linear: [E, d_model, in] — per expert as linear
 * - experts-rows: [E, in, d_model] — per expert as rows
 */
export type Orientation = "linear" | "rows" | "bias" | "experts-linear" | "experts-rows";

export interface TargetRule {
  kind: TargetKind;
  pattern: RegExp;
  orientation: Orientation;
  /**
   * For post-norm families: the RMSNorm weight applied to this writer's output before the residual add,
   * derived from the tensor name. The update then uses u = normalize(g ⊙ r) (docs/architectures.md § Post-norm families).
   */
  postNorm?: (tensorName: string) => string;
}

export interface FamilyDefinition {
  /** Name shown to users. */
  name: string;
  modelTypes: readonly string[];
  rules: readonly TargetRule[];
  /** RMSNorm scale is (1 + weight) instead of weight (Gemma). */
  normScalePlusOne?: boolean;
  /** The unembedding tensor, when it exists separately (untied checkpoints). */
  lmHead: RegExp;
  /** How the forward engine runs the family; absent for a family that can be edited but not run. */
  forward?: DescribeForward;
}

/** `(?:a|b)` from prefixes written as regex sources; every rule is anchored at the start of the name. */
function anyOf(prefixes: readonly string[]): string {
  return prefixes.length === 1 ? prefixes[0] : `(?:${prefixes.join("|")})`;
}

const LAYER = String.raw`layers\.(\d+)\.`;

/** Builds `^PREFIX<suffix>$`; suffix is a regex source. */
function rule(kind: TargetKind, orientation: Orientation, prefixes: readonly string[], suffix: string, postNorm?: (name: string) => string): TargetRule {
  return { kind, orientation, pattern: new RegExp(`^${anyOf(prefixes)}${suffix}$`), ...(postNorm ? { postNorm } : {}) };
}

/** Replaces the writer's module path (and .weight/.bias) with the norm that follows it in the block. */
function normAfter(writer: RegExp, norm: string): (name: string) => string {
  return (name) => name.replace(writer, `${norm}.weight`);
}

const POST_ATTENTION_NORM = normAfter(/self_attn\.o_proj\.(?:weight|bias)$/, "post_attention_layernorm");
const POST_FEEDFORWARD_NORM = normAfter(/mlp\.down_proj\.(?:weight|bias)$/, "post_feedforward_layernorm");

interface LlamaLikeOptions {
  /** Where the decoder lives: `model.` for *ForCausalLM, plus the multimodal nestings. */
  prefixes?: readonly string[];
  /** Post-norm families: o_proj → post_attention_layernorm, down_proj → post_feedforward_layernorm. */
  postNorms?: boolean;
  normScalePlusOne?: boolean;
  lmHead?: RegExp;
  forward?: DescribeForward;
}

/** Llama's layout: embed_tokens, self_attn.o_proj, mlp.down_proj (with optional biases). */
function llamaLikeRules(prefixes: readonly string[], postNorms: boolean): TargetRule[] {
  return [
    rule("embed", "rows", prefixes, String.raw`embed_tokens\.weight`),
    rule("attn", "linear", prefixes, String.raw`${LAYER}self_attn\.o_proj\.weight`, postNorms ? POST_ATTENTION_NORM : undefined),
    rule("attn", "bias", prefixes, String.raw`${LAYER}self_attn\.o_proj\.bias`, postNorms ? POST_ATTENTION_NORM : undefined),
    rule("mlp", "linear", prefixes, String.raw`${LAYER}mlp\.down_proj\.weight`, postNorms ? POST_FEEDFORWARD_NORM : undefined),
    rule("mlp", "bias", prefixes, String.raw`${LAYER}mlp\.down_proj\.bias`, postNorms ? POST_FEEDFORWARD_NORM : undefined),
  ];
}

function llamaLike(name: string, modelTypes: string[], options: LlamaLikeOptions = {}): FamilyDefinition {
  return {
    name,
    modelTypes,
    lmHead: options.lmHead ?? /^lm_head\.weight$/,
    ...(options.normScalePlusOne ? { normScalePlusOne: true } : {}),
    rules: llamaLikeRules(options.prefixes ?? [String.raw`model\.`], options.postNorms ?? false),
    ...(options.forward ? { forward: options.forward } : {}),
  };
}

const MODEL = String.raw`model\.`;
// Multimodal checkpoints nest the text decoder: transformers < 4.52 wrote language_model.model.*, newer versions
// write model.language_model.* (and keep lm_head at the top); text-only checkpoints use model.*.
const NESTED_TEXT = [String.raw`model\.language_model\.`, String.raw`language_model\.model\.`, MODEL];
const NESTED_LM_HEAD = /^(?:language_model\.)?lm_head\.weight$/;

/** Mixtral / Qwen-MoE: experts as separate Linear modules, or (transformers ≥ 5 layout) one fused [E, d, in] tensor. */
function moeExpertRules(prefixes: readonly string[], perExpert: string): TargetRule[] {
  return [
    rule("mlp", "linear", prefixes, String.raw`${LAYER}${perExpert}`),
    rule("mlp", "experts-linear", prefixes, String.raw`${LAYER}mlp\.experts\.down_proj`),
  ];
}

const GPT2_PREFIX = [String.raw`(?:transformer\.)?`];
const GPT_NEOX_PREFIX = [String.raw`gpt_neox\.`];

export const FAMILIES: readonly FamilyDefinition[] = [
  llamaLike("llama", ["llama"], { forward: (config, file) => llamaLikeForward("llama", config, file, { tieDefault: false }) }),
  llamaLike("mistral", ["mistral"], { forward: describeMistral }),
  llamaLike("qwen2", ["qwen2"], { forward: (config, file) => describeQwen("qwen2", config, file) }),
  llamaLike("qwen3", ["qwen3"], { forward: (config, file) => describeQwen("qwen3", config, file) }),
  // Gemma 1's post_attention_layernorm is the pre-MLP norm (as in Llama), so no γ-aware rule applies.
  llamaLike("gemma", ["gemma"], { normScalePlusOne: true, forward: (config, file) => describeGemma("gemma", config, file) }),
  llamaLike("gemma2", ["gemma2"], { postNorms: true, normScalePlusOne: true, forward: (config, file) => describeGemma("gemma2", config, file) }),
  // The multimodal gemma3 checkpoint's text_config is a gemma3_text config (model-config.ts reads it).
  llamaLike("gemma3", ["gemma3", "gemma3_text"], {
    prefixes: NESTED_TEXT,
    postNorms: true,
    normScalePlusOne: true,
    lmHead: NESTED_LM_HEAD,
    forward: (config, file) => describeGemma("gemma3_text", config, file),
  }),
  llamaLike("olmo2", ["olmo2"], { postNorms: true, forward: describeOlmo2 }),
  // Phi-3 fuses qkv_proj and gate_up_proj (readers); its writers o_proj and down_proj are separate, as in Llama.
  llamaLike("phi3", ["phi3"], { forward: describePhi3 }),
  {
    name: "gpt2",
    modelTypes: ["gpt2"],
    lmHead: /^lm_head\.weight$/,
    forward: describeGpt2,
    rules: [
      rule("embed", "rows", GPT2_PREFIX, String.raw`wte\.weight`),
      rule("embed", "rows", GPT2_PREFIX, String.raw`wpe\.weight`),
      // Conv1D stores [in, out]: d_model is the last axis, so every row is a written vector.
      rule("attn", "rows", GPT2_PREFIX, String.raw`h\.(\d+)\.attn\.c_proj\.weight`),
      rule("attn", "bias", GPT2_PREFIX, String.raw`h\.(\d+)\.attn\.c_proj\.bias`),
      rule("mlp", "rows", GPT2_PREFIX, String.raw`h\.(\d+)\.mlp\.c_proj\.weight`),
      rule("mlp", "bias", GPT2_PREFIX, String.raw`h\.(\d+)\.mlp\.c_proj\.bias`),
    ],
  },
  {
    name: "gpt_neox",
    modelTypes: ["gpt_neox"],
    lmHead: /^embed_out\.weight$/,
    forward: describeGptNeox,
    rules: [
      rule("embed", "rows", GPT_NEOX_PREFIX, String.raw`embed_in\.weight`),
      rule("attn", "linear", GPT_NEOX_PREFIX, String.raw`${LAYER}attention\.dense\.weight`),
      rule("attn", "bias", GPT_NEOX_PREFIX, String.raw`${LAYER}attention\.dense\.bias`),
      rule("mlp", "linear", GPT_NEOX_PREFIX, String.raw`${LAYER}mlp\.dense_4h_to_h\.weight`),
      rule("mlp", "bias", GPT_NEOX_PREFIX, String.raw`${LAYER}mlp\.dense_4h_to_h\.bias`),
    ],
  },
  {
    name: "mixtral",
    modelTypes: ["mixtral"],
    lmHead: /^lm_head\.weight$/,
    forward: (config, file) => describeMoe("mixtral", config, file),
    rules: [
      ...llamaLikeRules([MODEL], false).filter((candidate) => candidate.kind !== "mlp"),
      ...moeExpertRules([MODEL], String.raw`block_sparse_moe\.experts\.\d+\.w2\.weight`),
    ],
  },
  ...(["qwen2_moe", "qwen3_moe"] as const).map(
    (modelType): FamilyDefinition => ({
      name: modelType,
      modelTypes: [modelType],
      lmHead: /^lm_head\.weight$/,
      forward: (config, file) => describeMoe(modelType, config, file),
      rules: [
        // Dense layers (mlp_only_layers, decoder_sparse_step) keep a plain mlp.down_proj.
        ...llamaLikeRules([MODEL], false),
        ...moeExpertRules([MODEL], String.raw`mlp\.experts\.\d+\.down_proj\.weight`),
        rule("mlp", "linear", [MODEL], String.raw`${LAYER}mlp\.shared_expert\.down_proj\.weight`),
      ],
    }),
  ),
  {
    name: "llama4",
    modelTypes: ["llama4", "llama4_text"],
    lmHead: NESTED_LM_HEAD,
    forward: describeLlama4,
    rules: [
      ...llamaLikeRules(NESTED_TEXT, false).filter((candidate) => candidate.kind !== "mlp"),
      // Llama4TextExperts.down_proj is [E, intermediate, d] and is applied as bmm(h, down_proj): rows per expert.
      rule("mlp", "experts-rows", NESTED_TEXT, String.raw`${LAYER}feed_forward\.experts\.down_proj`),
      rule("mlp", "linear", NESTED_TEXT, String.raw`${LAYER}feed_forward\.shared_expert\.down_proj\.weight`),
      // Dense (non-MoE) layers interleaved with the MoE ones.
      rule("mlp", "linear", NESTED_TEXT, String.raw`${LAYER}feed_forward\.down_proj\.weight`),
    ],
  },
];

export function findFamily(modelType: string): FamilyDefinition | undefined {
  return FAMILIES.find((family) => family.modelTypes.includes(modelType));
}

/** Every model_type surgery can edit. */
export function supportedModelTypes(): string[] {
  return FAMILIES.flatMap((family) => [...family.modelTypes]).sort();
}

/** Every model_type the forward engine runs (direction finding, evaluation, activations). */
export function forwardModelTypes(): string[] {
  return FAMILIES.filter((family) => family.forward).flatMap((family) => [...family.modelTypes]).sort();
}

/** The forward engine's description of a model_type, from its (text) config, or UNSUPPORTED_FAMILY naming the list. */
export function describeForward(modelType: string, textConfig: Config, file: string): ForwardDescription {
  const describe = findFamily(modelType)?.forward;
  if (!describe) {
    throw new AbliterateError(
      ErrorCodes.UNSUPPORTED_FAMILY,
      `the forward engine does not support model_type "${modelType}" (supported: ${forwardModelTypes().join(", ")})`,
      { file },
    );
  }
  return describe(textConfig, file);
}
