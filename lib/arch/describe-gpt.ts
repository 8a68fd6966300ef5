/**
 * The LayerNorm families: GPT-2 (Conv1D weights stored [in, out], learned positions) and GPT-NeoX (per-head fused
 * query_key_value, partial rotary, parallel residual). Values and names as in transformers' GPT2Config /
 * GPTNeoXConfig and modeling files.
 */
import { activationOf, eosIds, int, num, type Config, type ForwardDescription, type LayerRole } from "./forward-description.js";
import { readRopeParameters } from "./read-rope-parameters.js";

export function describeGpt2(config: Config, file: string): ForwardDescription {
  const hidden = int(config, "n_embd", file);
  const heads = int(config, "n_head", file);
  const numLayers = int(config, "n_layer", file);
  const h = (i: number) => `h.${i}.`;
  return {
    family: "gpt2",
    spec: {
      hiddenSize: hidden,
      numLayers,
      numHeads: heads,
      numKvHeads: heads,
      headDim: Math.floor(hidden / heads),
      intermediateSize: int(config, "n_inner", file, 4 * hidden),
      normEps: num(config, "layer_norm_epsilon", 1e-5),
      normKind: "layer",
      normAddOne: false,
      gatedMlp: false,
      activation: activationOf(String(config.activation_function ?? "gelu_new"), file),
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
    embed: "wte.weight",
    positionEmbed: "wpe.weight",
    finalNorm: "ln_f.weight",
    finalNormBias: "ln_f.bias",
    lmHead: "lm_head.weight",
    tieWordEmbeddings: typeof config.tie_word_embeddings === "boolean" ? config.tie_word_embeddings : true,
    layerNames: (i) => ({
      inputNorm: `${h(i)}ln_1.weight`,
      inputNormBias: `${h(i)}ln_1.bias`,
      qkv: `${h(i)}attn.c_attn.weight`,
      qkvBias: `${h(i)}attn.c_attn.bias`,
      o: `${h(i)}attn.c_proj.weight`,
      oBias: `${h(i)}attn.c_proj.bias`,
      preMlpNorm: `${h(i)}ln_2.weight`,
      preMlpNormBias: `${h(i)}ln_2.bias`,
      up: `${h(i)}mlp.c_fc.weight`,
      upBias: `${h(i)}mlp.c_fc.bias`,
      down: `${h(i)}mlp.c_proj.weight`,
      downBias: `${h(i)}mlp.c_proj.bias`,
    }),
    requiredRoles: ["inputNorm", "inputNormBias", "qkv", "o", "preMlpNorm", "preMlpNormBias", "up", "down"],
    transposedRoles: new Set<LayerRole>(["qkv", "o", "up", "down"]),
    slidingWindow: () => 0,
    rope: [],
    ropeTableOf: () => 0,
    maxPositionEmbeddings: int(config, "n_positions", file, 1024),
    prefixes: ["transformer.", ""],
    eosTokenIds: eosIds(config),
  };
}

export function describeGptNeox(config: Config, file: string): ForwardDescription {
  const hidden = int(config, "hidden_size", file);
  const heads = int(config, "num_attention_heads", file);
  const numLayers = int(config, "num_hidden_layers", file);
  const layer = (i: number) => `layers.${i}.`;
  // GPT-NeoX names its rope settings rotary_emb_base / rotary_pct (default 0.25) outside rope_parameters.
  const rope = readRopeParameters(config, file, num(config, "rotary_emb_base", 10000));
  const modern = config.rope_parameters as Config | undefined;
  if (!(modern && typeof modern === "object" && typeof modern.partial_rotary_factor === "number") && typeof config.partial_rotary_factor !== "number") {
    rope.partialRotaryFactor = num(config, "rotary_pct", 0.25);
  }
  return {
    family: "gpt_neox",
    spec: {
      hiddenSize: hidden,
      numLayers,
      numHeads: heads,
      numKvHeads: heads,
      headDim: Math.floor(hidden / heads),
      intermediateSize: int(config, "intermediate_size", file),
      normEps: num(config, "layer_norm_eps", 1e-5),
      normKind: "layer",
      normAddOne: false,
      gatedMlp: false,
      activation: activationOf(String(config.hidden_act ?? "gelu"), file),
      parallelResidual: config.use_parallel_residual !== false,
      qkvPerHead: true,
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
    embed: "embed_in.weight",
    finalNorm: "final_layer_norm.weight",
    finalNormBias: "final_layer_norm.bias",
    lmHead: "embed_out.weight",
    tieWordEmbeddings: typeof config.tie_word_embeddings === "boolean" ? config.tie_word_embeddings : false,
    layerNames: (i) => ({
      inputNorm: `${layer(i)}input_layernorm.weight`,
      inputNormBias: `${layer(i)}input_layernorm.bias`,
      qkv: `${layer(i)}attention.query_key_value.weight`,
      qkvBias: `${layer(i)}attention.query_key_value.bias`,
      o: `${layer(i)}attention.dense.weight`,
      oBias: `${layer(i)}attention.dense.bias`,
      preMlpNorm: `${layer(i)}post_attention_layernorm.weight`,
      preMlpNormBias: `${layer(i)}post_attention_layernorm.bias`,
      up: `${layer(i)}mlp.dense_h_to_4h.weight`,
      upBias: `${layer(i)}mlp.dense_h_to_4h.bias`,
      down: `${layer(i)}mlp.dense_4h_to_h.weight`,
      downBias: `${layer(i)}mlp.dense_4h_to_h.bias`,
    }),
    requiredRoles: ["inputNorm", "inputNormBias", "qkv", "o", "preMlpNorm", "preMlpNormBias", "up", "down"],
    slidingWindow: () => 0,
    rope: [rope],
    ropeTableOf: () => 0,
    maxPositionEmbeddings: num(config, "max_position_embeddings", 2048),
    prefixes: ["gpt_neox.", ""],
    eosTokenIds: eosIds(config),
  };
}
