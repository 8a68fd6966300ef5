/**
 * Llama 4's text decoder (transformers' modeling_llama4.py, Llama4TextConfig), for llama4_text checkpoints and the
 * text half of multimodal llama4 ones:
 * - attention: q/k/v/o as in Llama; RoPE on most layers, rotating adjacent pairs (a complex product) with Llama 3
 *   scaling; the other layers ("NoPE", no_rope_layers[i] = 0) use no positions at all and scale q by the
 *   temperature log1p(⌊(pos + 1) / floor_scale⌋) · attn_scale + 1; RoPE layers L2-normalize q and k per head after
 *   RoPE (use_qk_norm) and attend within chunks of attention_chunk_size positions;
 * - feed-forward: on MoE layers (moe_layers, else every interleave_moe_layer_step-th) a router picks the top
 *   num_experts_per_tok experts by logit, weights each by sigmoid(logit) *on its input*, and a shared expert always
 *   runs; experts are two fused tensors [E, d, 2 · intermediate_size] and [E, intermediate_size, d] applied as
 *   bmm (stored [in, out]); the other layers are a dense gated MLP of intermediate_size_mlp.
 */
import { llamaLike } from "./describe-llama-like.js";
import { int, layerTypes, num, type Config, type ForwardDescription } from "./forward-description.js";
import { readRopeParameters } from "./read-rope-parameters.js";

function flagList(value: unknown, numLayers: number): number[] | undefined {
  return Array.isArray(value) && value.length >= numLayers && value.every((v) => typeof v === "number" || typeof v === "boolean")
    ? value.map((v) => Number(v))
    : undefined;
}

export function describeLlama4(config: Config, file: string): ForwardDescription {
  const base = llamaLike("llama4", config, file, { tieDefault: false, headDimDefault: 128, normEpsDefault: 1e-5, intermediateKey: "intermediate_size_mlp", intermediateDefault: 16384 });
  const numLayers = base.spec.numLayers;
  const interval = num(config, "no_rope_layer_interval", 4);
  const noRopeFlags = flagList(config.no_rope_layers, numLayers);
  const usesRope = (i: number) => (noRopeFlags ? noRopeFlags[i] !== 0 : (i + 1) % interval !== 0);
  const types = layerTypes(config, numLayers);
  const chunkSize = typeof config.attention_chunk_size === "number" && config.attention_chunk_size > 0 ? config.attention_chunk_size : 0;
  const chunked = (i: number) => (types ? types[i] === "chunked_attention" : usesRope(i));
  const qkNorm = config.use_qk_norm !== false;
  const temperature = config.attn_temperature_tuning !== false;
  const step = num(config, "interleave_moe_layer_step", 1);
  const moeLayers = new Set<number>(
    Array.isArray(config.moe_layers)
      ? (config.moe_layers as unknown[]).filter((v): v is number => typeof v === "number")
      : Array.from({ length: numLayers }, (_, i) => i).filter((i) => i >= step - 1 && (i - (step - 1)) % step === 0),
  );

  const expertSize = int(config, "intermediate_size", file, 8192);
  base.spec.numExperts = int(config, "num_local_experts", file, 16);
  base.spec.expertsPerToken = int(config, "num_experts_per_tok", file, 1);
  base.spec.moeIntermediateSize = expertSize;
  base.spec.sharedIntermediateSize = expertSize;
  base.spec.routerSigmoid = true;
  base.spec.ropeInterleaved = true;
  base.spec.temperatureFloorScale = num(config, "floor_scale", 8192);
  base.spec.temperatureScale = num(config, "attn_scale", 0.1);
  base.rope = [readRopeParameters(config, file, 500000)];
  base.maxPositionEmbeddings = num(config, "max_position_embeddings", 4096 * 32);
  base.layerOptions = (i) => ({
    ...(usesRope(i) ? {} : { noRope: true }),
    ...(usesRope(i) && qkNorm ? { qkL2Norm: true } : {}),
    ...(!usesRope(i) && temperature ? { temperatureTuning: true } : {}),
    ...(chunked(i) && chunkSize > 0 ? { attentionChunk: chunkSize } : {}),
  });

  const names = base.layerNames;
  const ff = (i: number) => `layers.${i}.feed_forward.`;
  base.layerNames = (i) => {
    const { gate, up, down, gateBias, upBias, downBias, ...attention } = names(i);
    void gate, up, down, gateBias, upBias, downBias;
    if (!moeLayers.has(i)) {
      return { ...attention, gate: `${ff(i)}gate_proj.weight`, up: `${ff(i)}up_proj.weight`, down: `${ff(i)}down_proj.weight` };
    }
    return {
      ...attention,
      router: `${ff(i)}router.weight`,
      sharedGate: `${ff(i)}shared_expert.gate_proj.weight`,
      sharedUp: `${ff(i)}shared_expert.up_proj.weight`,
      sharedDown: `${ff(i)}shared_expert.down_proj.weight`,
    };
  };
  base.sparse = {
    isSparse: (i) => moeLayers.has(i),
    requiredRoles: ["inputNorm", "q", "k", "v", "o", "preMlpNorm", "router", "sharedGate", "sharedUp", "sharedDown"],
    fusedExperts: (i) => ({ gateUp: `${ff(i)}experts.gate_up_proj`, down: `${ff(i)}experts.down_proj` }),
  };
  return base;
}
