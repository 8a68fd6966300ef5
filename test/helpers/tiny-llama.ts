/**
 * Tiny Llama-shaped checkpoints for end-to-end tests: real tensor names, sharded with an index, tied or untied,
 * BF16/F16/F32. Values are random but exactly representable in the dtype (random sign/exponent/mantissa bits), so
 * the generator needs no float encoder and the data has the spread of real weights.
 */
import type { SafetensorsDtype } from "../../lib/safetensors/dtypes.js";
import { serializeSafetensors } from "../../lib/safetensors/serialize-safetensors.js";
import { writeShardedCheckpoint, type FixtureTensor } from "./safetensors-fixtures.js";
import { writeFileSync } from "node:fs";

export type FloatDtype = "F32" | "F16" | "BF16" | "F64";

export interface TinyLlamaParams {
  dir: string;
  dtype: FloatDtype;
  tied: boolean;
  hidden?: number;
  intermediate?: number;
  layers?: number;
  vocab?: number;
  shards?: number;
  seed?: number;
  modelType?: string;
}

/** Deterministic xorshift32: tests are reproducible without a seeded-RNG dependency. */
export function makeRandom(seed: number): () => number {
  let state = seed >>> 0 || 0x9e3779b9;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x1_0000_0000;
  };
}

/** Random values in ±[2^-7, 2), exactly representable in `dtype`, as little-endian bytes. */
export function randomFloatBytes(dtype: FloatDtype, count: number, random: () => number): Uint8Array {
  const bytes = new Uint8Array(count * { F64: 8, F32: 4, F16: 2, BF16: 2 }[dtype]);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < count; i += 1) {
    const sign = random() < 0.5 ? 1 : 0;
    const exponentOffset = Math.floor(random() * 8) - 7; // 2^-7 .. 2^0
    const fraction = random();
    if (dtype === "BF16") view.setUint16(i * 2, (sign << 15) | ((127 + exponentOffset) << 7) | Math.floor(fraction * 128), true);
    else if (dtype === "F16") view.setUint16(i * 2, (sign << 15) | ((15 + exponentOffset) << 10) | Math.floor(fraction * 1024), true);
    else {
      const value = (sign ? -1 : 1) * 2 ** exponentOffset * (1 + fraction);
      if (dtype === "F32") view.setFloat32(i * 4, value, true);
      else view.setFloat64(i * 8, value, true);
    }
  }
  return bytes;
}

export function tinyLlamaTensors(params: Required<Omit<TinyLlamaParams, "dir" | "shards" | "modelType">>): FixtureTensor[] {
  const { dtype, tied, hidden, intermediate, layers, vocab, seed } = params;
  const random = makeRandom(seed);
  const tensor = (name: string, shape: number[]): FixtureTensor => ({
    name,
    dtype: dtype as SafetensorsDtype,
    shape,
    data: randomFloatBytes(dtype, shape.reduce((a, b) => a * b, 1), random),
  });
  const kvHidden = hidden / 2;
  const tensors = [tensor("model.embed_tokens.weight", [vocab, hidden])];
  for (let layer = 0; layer < layers; layer += 1) {
    const prefix = `model.layers.${layer}`;
    tensors.push(
      tensor(`${prefix}.input_layernorm.weight`, [hidden]),
      tensor(`${prefix}.self_attn.q_proj.weight`, [hidden, hidden]),
      tensor(`${prefix}.self_attn.k_proj.weight`, [kvHidden, hidden]),
      tensor(`${prefix}.self_attn.v_proj.weight`, [kvHidden, hidden]),
      tensor(`${prefix}.self_attn.o_proj.weight`, [hidden, hidden]),
      tensor(`${prefix}.post_attention_layernorm.weight`, [hidden]),
      tensor(`${prefix}.mlp.gate_proj.weight`, [intermediate, hidden]),
      tensor(`${prefix}.mlp.up_proj.weight`, [intermediate, hidden]),
      tensor(`${prefix}.mlp.down_proj.weight`, [hidden, intermediate]),
    );
  }
  tensors.push(tensor("model.norm.weight", [hidden]));
  if (!tied) tensors.push(tensor("lm_head.weight", [vocab, hidden]));
  return tensors;
}

export const TINY_EXTRA_FILES: Record<string, string> = {
  "generation_config.json": `${JSON.stringify({ bos_token_id: 1, eos_token_id: 2 }, null, 2)}\n`,
  "tokenizer_config.json": `${JSON.stringify({ chat_template: "{% for m in messages %}{{ m.content }}{% endfor %}" })}\n`,
  "README.md": "---\nlicense: apache-2.0\n---\n# tiny\n",
  "chat_template.jinja": "{% for m in messages %}{{ m.content }}{% endfor %}\n",
};

/** Writes the checkpoint and returns the tensor list (in file order) for independent checks. */
export function writeTinyLlama(params: TinyLlamaParams): FixtureTensor[] {
  const full = {
    dtype: params.dtype,
    tied: params.tied,
    hidden: params.hidden ?? 16,
    intermediate: params.intermediate ?? 24,
    layers: params.layers ?? 3,
    vocab: params.vocab ?? 40,
    seed: params.seed ?? 1234,
  };
  const tensors = tinyLlamaTensors(full);
  const shardCount = params.shards ?? 3;
  const perShard = Math.ceil(tensors.length / shardCount);
  const shards = Array.from({ length: shardCount }, (_, index) => ({
    file: shardCount === 1 ? "model.safetensors" : `model-${String(index + 1).padStart(5, "0")}-of-${String(shardCount).padStart(5, "0")}.safetensors`,
    tensors: tensors.slice(index * perShard, (index + 1) * perShard),
  }));
  writeShardedCheckpoint({
    dir: params.dir,
    shards,
    config: {
      architectures: ["LlamaForCausalLM"],
      model_type: params.modelType ?? "llama",
      hidden_size: full.hidden,
      intermediate_size: full.intermediate,
      num_hidden_layers: full.layers,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      vocab_size: full.vocab,
      rms_norm_eps: 1e-5,
      tie_word_embeddings: full.tied,
      torch_dtype: { F32: "float32", F16: "float16", BF16: "bfloat16", F64: "float64" }[params.dtype],
    },
    extraFiles: TINY_EXTRA_FILES,
  });
  return tensors;
}

/** A direction file with `direction` [d] (F32), or any other tensors given. */
export function writeDirectionFile(path: string, tensors: { name: string; shape: number[]; values: ArrayLike<number>; dtype?: "F32" | "F64" }[]): void {
  writeFileSync(
    path,
    serializeSafetensors({
      tensors: tensors.map(({ name, shape, values, dtype }) => ({
        name,
        dtype: dtype ?? "F32",
        shape,
        data: new Uint8Array((dtype === "F64" ? Float64Array.from(values) : Float32Array.from(values)).buffer),
      })),
    }),
  );
}

export function randomDirection(dimension: number, seed: number): number[] {
  const random = makeRandom(seed);
  return Array.from({ length: dimension }, () => random() * 2 - 1);
}

