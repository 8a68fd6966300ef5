/**
 * model_type → which tensors write into the residual stream, and how they are laid out.
 * Readers of the residual (q/k/v/gate/up), norms, routers and an untied lm_head are never listed, so they stay
 * byte-identical. Layer-indexed rules capture the layer number in group 1.
 */

/** Which kind of residual writer a tensor is; `--targets` selects among these. */
export type TargetKind = "embed" | "attn" | "mlp";

/**
 * Where d_model sits in the stored tensor (DESIGN.md § The maths):
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
   * derived from the tensor name. The update then uses u = normalize(g ⊙ r) (DESIGN.md, Gemma's norms).
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
}

const LLAMA_PREFIX = String.raw`^model\.`;

function llamaLike(name: string, modelTypes: string[]): FamilyDefinition {
  return {
    name,
    modelTypes,
    lmHead: /^lm_head\.weight$/,
    rules: [
      { kind: "embed", orientation: "rows", pattern: new RegExp(`${LLAMA_PREFIX}embed_tokens\\.weight$`) },
      { kind: "attn", orientation: "linear", pattern: new RegExp(`${LLAMA_PREFIX}layers\\.(\\d+)\\.self_attn\\.o_proj\\.weight$`) },
      { kind: "attn", orientation: "bias", pattern: new RegExp(`${LLAMA_PREFIX}layers\\.(\\d+)\\.self_attn\\.o_proj\\.bias$`) },
      { kind: "mlp", orientation: "linear", pattern: new RegExp(`${LLAMA_PREFIX}layers\\.(\\d+)\\.mlp\\.down_proj\\.weight$`) },
      { kind: "mlp", orientation: "bias", pattern: new RegExp(`${LLAMA_PREFIX}layers\\.(\\d+)\\.mlp\\.down_proj\\.bias$`) },
    ],
  };
}

export const FAMILIES: readonly FamilyDefinition[] = [
  llamaLike("llama", ["llama"]),
  llamaLike("mistral", ["mistral"]),
  llamaLike("qwen2", ["qwen2"]),
  llamaLike("qwen3", ["qwen3"]),
];

export function findFamily(modelType: string): FamilyDefinition | undefined {
  return FAMILIES.find((family) => family.modelTypes.includes(modelType));
}

export function supportedModelTypes(): string[] {
  return FAMILIES.flatMap((family) => [...family.modelTypes]).sort();
}
