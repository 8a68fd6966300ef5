/**
 * The tiny Llama of the direction golden, drawn from an integer generator that generate-directions-golden.py
 * reproduces bit for bit (mulberry32 → uniform → float32), so the checkpoint is rebuilt here instead of committed.
 * Vocabulary and tokenizer: SmolLM-360M-Instruct's (test/fixtures/tokenizers), with its chat template.
 */
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeSafetensorsFile, type SerializableTensor } from "../../../lib/safetensors/index.js";

export const GOLDEN_LLAMA = { hidden: 32, intermediate: 64, layers: 3, heads: 4, kvHeads: 2, headDim: 8, vocab: 49152, seed: 12345 };

function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Tensor names, shapes and scales in draw order (the Python script lists the same). */
export function goldenLlamaLayout(): { name: string; shape: number[]; scale: number; offset: number }[] {
  const { hidden: d, intermediate, layers, heads, kvHeads, headDim, vocab } = GOLDEN_LLAMA;
  const out: { name: string; shape: number[]; scale: number; offset: number }[] = [{ name: "model.embed_tokens.weight", shape: [vocab, d], scale: 1, offset: 0 }];
  for (let l = 0; l < layers; l += 1) {
    const p = `model.layers.${l}.`;
    out.push(
      { name: `${p}input_layernorm.weight`, shape: [d], scale: 0.2, offset: 1 },
      { name: `${p}self_attn.q_proj.weight`, shape: [heads * headDim, d], scale: 2 / Math.sqrt(d), offset: 0 },
      { name: `${p}self_attn.k_proj.weight`, shape: [kvHeads * headDim, d], scale: 2 / Math.sqrt(d), offset: 0 },
      { name: `${p}self_attn.v_proj.weight`, shape: [kvHeads * headDim, d], scale: 2 / Math.sqrt(d), offset: 0 },
      { name: `${p}self_attn.o_proj.weight`, shape: [d, heads * headDim], scale: 2 / Math.sqrt(heads * headDim), offset: 0 },
      { name: `${p}post_attention_layernorm.weight`, shape: [d], scale: 0.2, offset: 1 },
      { name: `${p}mlp.gate_proj.weight`, shape: [intermediate, d], scale: 2 / Math.sqrt(d), offset: 0 },
      { name: `${p}mlp.up_proj.weight`, shape: [intermediate, d], scale: 2 / Math.sqrt(d), offset: 0 },
      { name: `${p}mlp.down_proj.weight`, shape: [d, intermediate], scale: 2 / Math.sqrt(intermediate), offset: 0 },
    );
  }
  out.push({ name: "model.norm.weight", shape: [d], scale: 0.2, offset: 1 });
  return out;
}

export async function writeGoldenLlama(dir: string, tokenizerDir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const uniform = mulberry32(GOLDEN_LLAMA.seed);
  const tensors: SerializableTensor[] = goldenLlamaLayout().map(({ name, shape, scale, offset }) => {
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < values.length; i += 1) values[i] = offset + (2 * uniform() - 1) * scale;
    return { name, dtype: "F32", shape, data: new Uint8Array(values.buffer) };
  });
  await writeSafetensorsFile(join(dir, "model.safetensors"), { tensors });
  const { hidden, intermediate, layers, heads, kvHeads, headDim, vocab } = GOLDEN_LLAMA;
  writeFileSync(
    join(dir, "config.json"),
    JSON.stringify({
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      hidden_size: hidden,
      intermediate_size: intermediate,
      num_hidden_layers: layers,
      num_attention_heads: heads,
      num_key_value_heads: kvHeads,
      head_dim: headDim,
      vocab_size: vocab,
      max_position_embeddings: 2048,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: true,
      bos_token_id: 1,
      eos_token_id: 2,
      torch_dtype: "float32",
    }),
  );
  for (const file of ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]) copyFileSync(join(tokenizerDir, file), join(dir, file));
}
