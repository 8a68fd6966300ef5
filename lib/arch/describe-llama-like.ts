/**
 * The RMSNorm + rotary + gated-MLP families: Llama, Mistral, Qwen 2/3, Gemma 1/2/3, OLMo-2, Phi-3, and their mixture-
 * of-experts siblings (Mixtral, Qwen2-MoE, Qwen3-MoE). Values are read as the transformers config classes read them;
 * names follow the module paths of transformers' modeling_<family>.py.
 */
import {
  activationOf,
  eosIds,
  f32,
  int,
  layerTypes,
  num,
  optionalNum,
  type Config,
  type ForwardDescription,
} from "./forward-description.js";
import { readRopeParameters } from "./read-rope-parameters.js";

/** The RMSNorm + rotary + gated-MLP layout shared by Llama, Mistral, Qwen, Gemma and Phi-3. */
export interface LlamaLikeDefaults {
  tieDefault: boolean;
  headDimDefault?: number;
  normEpsDefault?: number;
  /** The config key of the dense MLP's width (Llama 4: intermediate_size_mlp), and its default. */
  intermediateKey?: string;
  intermediateDefault?: number;
}

export function llamaLike(family: string, config: Config, file: string, overrides: LlamaLikeDefaults): ForwardDescription {
  const hidden = int(config, "hidden_size", file);
  const heads = int(config, "num_attention_heads", file);
  const numLayers = int(config, "num_hidden_layers", file);
  const layer = (i: number) => `layers.${i}.`;
  return {
    family,
    spec: {
      hiddenSize: hidden,
      numLayers,
      numHeads: heads,
      numKvHeads: int(config, "num_key_value_heads", file, heads),
      headDim: int(config, "head_dim", file, overrides.headDimDefault ?? Math.floor(hidden / heads)),
      intermediateSize: int(config, overrides.intermediateKey ?? "intermediate_size", file, overrides.intermediateDefault),
      normEps: num(config, "rms_norm_eps", overrides.normEpsDefault ?? 1e-6),
      normKind: "rms",
      normAddOne: false,
      gatedMlp: true,
      activation: activationOf(String(config.hidden_act ?? config.hidden_activation ?? "silu"), file),
      parallelResidual: false,
      qkvPerHead: false,
      embeddingScale: 1,
      attentionScale: 0,
      attnLogitSoftcap: 0,
      finalLogitSoftcap: 0,
      numExperts: 0,
      expertsPerToken: 0,
      moeIntermediateSize: 0,
      sharedIntermediateSize: 0,
      normTopkProb: false,
    },
    embed: "embed_tokens.weight",
    finalNorm: "norm.weight",
    lmHead: "lm_head.weight",
    tieWordEmbeddings: typeof config.tie_word_embeddings === "boolean" ? config.tie_word_embeddings : overrides.tieDefault,
    layerNames: (i) => ({
      inputNorm: `${layer(i)}input_layernorm.weight`,
      q: `${layer(i)}self_attn.q_proj.weight`,
      k: `${layer(i)}self_attn.k_proj.weight`,
      v: `${layer(i)}self_attn.v_proj.weight`,
      qBias: `${layer(i)}self_attn.q_proj.bias`,
      kBias: `${layer(i)}self_attn.k_proj.bias`,
      vBias: `${layer(i)}self_attn.v_proj.bias`,
      qNorm: `${layer(i)}self_attn.q_norm.weight`,
      kNorm: `${layer(i)}self_attn.k_norm.weight`,
      o: `${layer(i)}self_attn.o_proj.weight`,
      oBias: `${layer(i)}self_attn.o_proj.bias`,
      preMlpNorm: `${layer(i)}post_attention_layernorm.weight`,
      gate: `${layer(i)}mlp.gate_proj.weight`,
      up: `${layer(i)}mlp.up_proj.weight`,
      down: `${layer(i)}mlp.down_proj.weight`,
      gateBias: `${layer(i)}mlp.gate_proj.bias`,
      upBias: `${layer(i)}mlp.up_proj.bias`,
      downBias: `${layer(i)}mlp.down_proj.bias`,
    }),
    requiredRoles: ["inputNorm", "q", "k", "v", "o", "preMlpNorm", "gate", "up", "down"],
    slidingWindow: () => 0,
    rope: [readRopeParameters(config, file)],
    ropeTableOf: () => 0,
    maxPositionEmbeddings: num(config, "max_position_embeddings", 2048),
    prefixes: ["model.", "", "model.language_model.", "language_model.model."],
    eosTokenIds: eosIds(config),
  };
}

function positiveWindow(config: Config): number {
  return typeof config.sliding_window === "number" && config.sliding_window > 0 ? config.sliding_window : 0;
}

/** Mistral / Phi-3: one window on every layer when sliding_window is set. */
export function everyLayer(config: Config): (layer: number) => number {
  const window = positiveWindow(config);
  return () => window;
}

/** Qwen 2/3: layer_types, or use_sliding_window with max_window_layers. */
export function qwenWindows(config: Config, numLayers: number): (layer: number) => number {
  const window = positiveWindow(config);
  if (config.use_sliding_window !== true || window === 0) return () => 0;
  const types = layerTypes(config, numLayers);
  if (types) return (i) => (types[i] === "sliding_attention" ? window : 0);
  const maxWindowLayers = num(config, "max_window_layers", numLayers);
  return (i) => (i >= maxWindowLayers ? window : 0);
}

/** Mistral: Llama plus one sliding window on every layer when sliding_window is set. */
export function describeMistral(config: Config, file: string): ForwardDescription {
  const base = llamaLike("mistral", config, file, { tieDefault: false });
  base.slidingWindow = everyLayer(config);
  return base;
}

/** Qwen 2/3: Llama (Qwen 3 with per-head q/k norms, found by name) plus Qwen's sliding-window layers. */
export function describeQwen(family: "qwen2" | "qwen3", config: Config, file: string): ForwardDescription {
  const base = llamaLike(family, config, file, { tieDefault: false });
  base.slidingWindow = qwenWindows(config, base.spec.numLayers);
  return base;
}

/** Gemma 2/3: layer_types, else every `pattern`-th layer is global and the others slide. */
function gemmaIsSliding(config: Config, numLayers: number, pattern: number): (layer: number) => boolean {
  const types = layerTypes(config, numLayers);
  if (types) return (i) => types[i] === "sliding_attention";
  return (i) => (i + 1) % pattern !== 0;
}

export function describeGemma(modelType: string, config: Config, file: string): ForwardDescription {
  const base = llamaLike(modelType, config, file, { tieDefault: true, headDimDefault: 256 });
  const hidden = base.spec.hiddenSize;
  // GemmaConfig maps the legacy hidden_act "gelu" of the first releases to the tanh approximation.
  const act = String(config.hidden_activation ?? config.hidden_act ?? "gelu_pytorch_tanh");
  base.spec.activation = activationOf(modelType === "gemma" && act === "gelu" ? "gelu_pytorch_tanh" : act, file);
  base.spec.normAddOne = true;
  // transformers multiplies by sqrt(hidden_size) as a tensor of the compute dtype (fp32 here).
  base.spec.embeddingScale = f32(Math.sqrt(hidden));
  if (modelType === "gemma") return base;

  const numLayers = base.spec.numLayers;
  base.spec.attentionScale = f32(Math.pow(num(config, "query_pre_attn_scalar", 256), -0.5));
  base.spec.attnLogitSoftcap = optionalNum(config, "attn_logit_softcapping", modelType === "gemma2" ? 50 : 0);
  base.spec.finalLogitSoftcap = optionalNum(config, "final_logit_softcapping", modelType === "gemma2" ? 30 : 0);
  const window = typeof config.sliding_window === "number" && config.sliding_window > 0 ? config.sliding_window : 4096;
  const sliding = gemmaIsSliding(config, numLayers, modelType === "gemma2" ? 2 : num(config, "sliding_window_pattern", 6));
  base.slidingWindow = (i) => (sliding(i) ? window : 0);
  const names = base.layerNames;
  base.layerNames = (i) => ({
    ...names(i),
    postAttentionNorm: `layers.${i}.post_attention_layernorm.weight`,
    preMlpNorm: `layers.${i}.pre_feedforward_layernorm.weight`,
    postMlpNorm: `layers.${i}.post_feedforward_layernorm.weight`,
  });
  base.requiredRoles = [...base.requiredRoles, "postAttentionNorm", "postMlpNorm"];
  if (modelType === "gemma2") return base;

  // Gemma 3: global layers use rope_theta (+ rope_scaling), sliding layers rope_local_base_freq; transformers 5
  // nests both under rope_parameters by layer type.
  const nested = config.rope_parameters as Record<string, unknown> | undefined;
  const perType = (type: "full_attention" | "sliding_attention") => {
    const entry = nested && typeof nested === "object" ? (nested[type] as Config | undefined) : undefined;
    if (entry && typeof entry === "object") return readRopeParameters({ rope_parameters: entry }, file, type === "full_attention" ? 1e6 : 1e4);
    if (type === "full_attention") {
      return readRopeParameters({ rope_theta: config.rope_theta, rope_scaling: config.rope_scaling }, file, 1e6);
    }
    return readRopeParameters({ rope_theta: config.rope_local_base_freq }, file, 1e4);
  };
  base.rope = [perType("full_attention"), perType("sliding_attention")];
  base.ropeTableOf = (i) => (sliding(i) ? 1 : 0);
  return base;
}

/**
 * OLMo-2 (modeling_olmo2.py): Llama's blocks without the norms in front of attention and MLP; instead RMSNorm after
 * each (post_attention_layernorm on the attention output, post_feedforward_layernorm on the MLP output) before the
 * residual add, and q_norm / k_norm over the whole q / k projection (not per head), before RoPE.
 */
export function describeOlmo2(config: Config, file: string): ForwardDescription {
  const base = llamaLike("olmo2", config, file, { tieDefault: false, normEpsDefault: 1e-5 });
  base.spec.qkNormWhole = true;
  const names = base.layerNames;
  base.layerNames = (i) => {
    const { inputNorm, preMlpNorm, ...rest } = names(i);
    void inputNorm, preMlpNorm;
    return { ...rest, postAttentionNorm: `layers.${i}.post_attention_layernorm.weight`, postMlpNorm: `layers.${i}.post_feedforward_layernorm.weight` };
  };
  base.requiredRoles = ["q", "k", "v", "qNorm", "kNorm", "o", "postAttentionNorm", "gate", "up", "down", "postMlpNorm"];
  return base;
}

export function describePhi3(config: Config, file: string): ForwardDescription {
  const base = llamaLike("phi3", config, file, { tieDefault: false, normEpsDefault: 1e-5 });
  base.slidingWindow = everyLayer(config);
  const layer = (i: number) => `layers.${i}.`;
  base.layerNames = (i) => ({
    inputNorm: `${layer(i)}input_layernorm.weight`,
    qkv: `${layer(i)}self_attn.qkv_proj.weight`,
    qkvBias: `${layer(i)}self_attn.qkv_proj.bias`,
    o: `${layer(i)}self_attn.o_proj.weight`,
    oBias: `${layer(i)}self_attn.o_proj.bias`,
    preMlpNorm: `${layer(i)}post_attention_layernorm.weight`,
    gateUp: `${layer(i)}mlp.gate_up_proj.weight`,
    down: `${layer(i)}mlp.down_proj.weight`,
  });
  base.requiredRoles = ["inputNorm", "qkv", "o", "preMlpNorm", "gateUp", "down"];
  return base;
}

/** Mixtral, Qwen2-MoE, Qwen3-MoE: the attention of their dense sibling, a routed MLP on sparse layers. */
export function describeMoe(modelType: string, config: Config, file: string): ForwardDescription {
  const base = llamaLike(modelType, config, file, { tieDefault: false });
  const numLayers = base.spec.numLayers;
  const mixtral = modelType === "mixtral";
  // transformers maps num_experts and num_local_experts onto each other (attribute_map); configs carry either.
  const expertsKey = "num_local_experts" in config ? "num_local_experts" : "num_experts";
  base.spec.numExperts = int(config, expertsKey, file, mixtral ? 8 : undefined);
  base.spec.expertsPerToken = int(config, "num_experts_per_tok", file, 2);
  base.spec.moeIntermediateSize = mixtral ? base.spec.intermediateSize : int(config, "moe_intermediate_size", file);
  base.spec.normTopkProb = mixtral ? true : config.norm_topk_prob === true;
  const shared = modelType === "qwen2_moe";
  if (shared) base.spec.sharedIntermediateSize = int(config, "shared_expert_intermediate_size", file);
  base.slidingWindow = mixtral ? everyLayer(config) : qwenWindows(config, numLayers);
  const mlpOnly = new Set(Array.isArray(config.mlp_only_layers) ? (config.mlp_only_layers as number[]) : []);
  const step = num(config, "decoder_sparse_step", 1);
  const isSparse = (i: number) => mixtral || (!mlpOnly.has(i) && base.spec.numExperts > 0 && (i + 1) % step === 0);
  const block = mixtral ? "block_sparse_moe" : "mlp";
  const names = base.layerNames;
  base.layerNames = (i) => {
    if (!isSparse(i)) return names(i);
    const { gate, up, down, gateBias, upBias, downBias, ...attention } = names(i);
    void gate, up, down, gateBias, upBias, downBias;
    return {
      ...attention,
      router: `layers.${i}.${block}.gate.weight`,
      ...(shared
        ? {
            sharedGate: `layers.${i}.mlp.shared_expert.gate_proj.weight`,
            sharedUp: `layers.${i}.mlp.shared_expert.up_proj.weight`,
            sharedDown: `layers.${i}.mlp.shared_expert.down_proj.weight`,
            sharedExpertGate: `layers.${i}.mlp.shared_expert_gate.weight`,
          }
        : {}),
    };
  };
  base.sparse = {
    isSparse,
    requiredRoles: ["inputNorm", "q", "k", "v", "o", "preMlpNorm", "router", ...(shared ? (["sharedGate", "sharedUp", "sharedDown"] as const) : [])],
    expertNames: (i, e) =>
      mixtral
        ? {
            gate: `layers.${i}.block_sparse_moe.experts.${e}.w1.weight`,
            up: `layers.${i}.block_sparse_moe.experts.${e}.w3.weight`,
            down: `layers.${i}.block_sparse_moe.experts.${e}.w2.weight`,
          }
        : {
            gate: `layers.${i}.mlp.experts.${e}.gate_proj.weight`,
            up: `layers.${i}.mlp.experts.${e}.up_proj.weight`,
            down: `layers.${i}.mlp.experts.${e}.down_proj.weight`,
          },
  };
  return base;
}
