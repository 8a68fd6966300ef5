/**
 * The bench's generated checkpoints: random BF16 weights of a fixed geometry, written once into the bench cache.
 * Llama-shaped (the forward, activation and selection benches) and a Mixtral-shaped mixture of experts (the
 * selection bench's streamed waves).
 */
import { closeSync, existsSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";

export const GEOMETRY = { hidden: 1024, heads: 16, kvHeads: 4, headDim: 64, intermediate: 4096, layers: 24, vocab: 32000 };

interface PlannedTensor {
  name: string;
  shape: number[];
  /** bf16 bit pattern generator: exponent of the magnitude range [2^e, 2^(e+1)). */
  exponent: number | "one";
}

function plannedTensors(): PlannedTensor[] {
  const { hidden: d, heads, kvHeads, headDim, intermediate, layers, vocab } = GEOMETRY;
  // Magnitudes near 1/√fan_in keep activations finite and attention non-uniform, like a trained model's scale.
  const tensors: PlannedTensor[] = [{ name: "model.embed_tokens.weight", shape: [vocab, d], exponent: -1 }];
  for (let l = 0; l < layers; l += 1) {
    const p = `model.layers.${l}.`;
    tensors.push(
      { name: `${p}input_layernorm.weight`, shape: [d], exponent: "one" },
      { name: `${p}self_attn.q_proj.weight`, shape: [heads * headDim, d], exponent: -6 },
      { name: `${p}self_attn.k_proj.weight`, shape: [kvHeads * headDim, d], exponent: -6 },
      { name: `${p}self_attn.v_proj.weight`, shape: [kvHeads * headDim, d], exponent: -6 },
      { name: `${p}self_attn.o_proj.weight`, shape: [d, heads * headDim], exponent: -7 },
      { name: `${p}post_attention_layernorm.weight`, shape: [d], exponent: "one" },
      { name: `${p}mlp.gate_proj.weight`, shape: [intermediate, d], exponent: -6 },
      { name: `${p}mlp.up_proj.weight`, shape: [intermediate, d], exponent: -6 },
      { name: `${p}mlp.down_proj.weight`, shape: [d, intermediate], exponent: -8 },
    );
  }
  tensors.push({ name: "model.norm.weight", shape: [d], exponent: "one" }, { name: "lm_head.weight", shape: [vocab, d], exponent: -6 });
  return tensors;
}

/** xorshift32 bf16 patterns: random sign and mantissa, exponent fixed per tensor. */
function fillBf16(out: Uint16Array, exponent: number | "one", state: { s: number }): void {
  if (exponent === "one") {
    out.fill(0x3f80);
    return;
  }
  const biased = (exponent + 127) << 7;
  let s = state.s;
  for (let i = 0; i < out.length; i += 1) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 16) & 0x8000) | biased | (s & 0x7f);
  }
  state.s = s;
}

/**
 * Writes BF16 tensors as a sharded checkpoint (shards of about 300 MB, an index, config.json) and marks it complete
 * last, so an interrupted write is redone. The bench writes its own bytes rather than loading torch for random
 * weights: generating ~1 GB through Python would take longer than the benches it feeds.
 */
function writeBf16Checkpoint(dir: string, tensors: PlannedTensor[], config: Record<string, unknown>, seed: number): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const shards: PlannedTensor[][] = [[]];
  let shardBytes = 0;
  for (const tensor of tensors) {
    const bytes = tensor.shape.reduce((a, b) => a * b, 1) * 2;
    if (shardBytes + bytes > 300e6 && shards[shards.length - 1].length > 0) {
      shards.push([]);
      shardBytes = 0;
    }
    shards[shards.length - 1].push(tensor);
    shardBytes += bytes;
  }
  const weightMap: Record<string, string> = {};
  const state = { s: seed };
  shards.forEach((shard, index) => {
    const name = `model-${String(index + 1).padStart(5, "0")}-of-${String(shards.length).padStart(5, "0")}.safetensors`;
    const header: Record<string, unknown> = {};
    let offset = 0;
    for (const tensor of shard) {
      const bytes = tensor.shape.reduce((a, b) => a * b, 1) * 2;
      header[tensor.name] = { dtype: "BF16", shape: tensor.shape, data_offsets: [offset, offset + bytes] };
      offset += bytes;
      weightMap[tensor.name] = name;
    }
    let json = JSON.stringify(header);
    json += " ".repeat((8 - ((json.length + 8) % 8)) % 8);
    const fd = openSync(join(dir, `${name}.partial`), "w");
    try {
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
      writeSync(fd, prefix);
      writeSync(fd, json);
      for (const tensor of shard) {
        const values = new Uint16Array(tensor.shape.reduce((a, b) => a * b, 1));
        fillBf16(values, tensor.exponent, state);
        writeSync(fd, new Uint8Array(values.buffer));
      }
    } finally {
      closeSync(fd);
    }
    renameSync(join(dir, `${name}.partial`), join(dir, name));
  });
  writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  writeFileSync(join(dir, "config.json"), JSON.stringify(config));
  writeFileSync(join(dir, "complete"), "");
}

export function ensureCheckpoint(cache: string): string {
  const dir = join(cache, "forward-llama-0.43b");
  if (existsSync(join(dir, "complete"))) return dir;
  const { hidden, heads, kvHeads, headDim, intermediate, layers, vocab } = GEOMETRY;
  writeBf16Checkpoint(dir, plannedTensors(), {
    architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: hidden, num_attention_heads: heads,
    num_key_value_heads: kvHeads, head_dim: headDim, intermediate_size: intermediate, num_hidden_layers: layers,
    vocab_size: vocab, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 2048, tie_word_embeddings: false,
    hidden_act: "silu", torch_dtype: "bfloat16",
  }, 0x2545f491);
  return dir;
}

/**
 * A Mixtral-shaped mixture of experts (hidden 512, 8 layers of 64 experts, 2 per token, vocab 32000; ~0.85 GB of
 * BF16): most of its bytes are experts a token does not use, so a pass over a few hundred tokens computes little
 * and reads every expert. It stands for the sparse models (Mixtral, Qwen-MoE, Llama 4) whose passes, once the model
 * is larger than memory, cost what reading it costs.
 */
export const MOE_GEOMETRY = { hidden: 512, heads: 8, kvHeads: 2, headDim: 64, intermediate: 640, layers: 8, vocab: 32000, experts: 64, perToken: 2 };

export function ensureMoeCheckpoint(cache: string): string {
  const dir = join(cache, "forward-mixtral-moe-0.4b");
  if (existsSync(join(dir, "complete"))) return dir;
  const { hidden: d, heads, kvHeads, headDim, intermediate, layers, vocab, experts, perToken } = MOE_GEOMETRY;
  const tensors: PlannedTensor[] = [{ name: "model.embed_tokens.weight", shape: [vocab, d], exponent: -1 }];
  for (let l = 0; l < layers; l += 1) {
    const p = `model.layers.${l}.`;
    tensors.push(
      { name: `${p}input_layernorm.weight`, shape: [d], exponent: "one" },
      { name: `${p}self_attn.q_proj.weight`, shape: [heads * headDim, d], exponent: -5 },
      { name: `${p}self_attn.k_proj.weight`, shape: [kvHeads * headDim, d], exponent: -5 },
      { name: `${p}self_attn.v_proj.weight`, shape: [kvHeads * headDim, d], exponent: -5 },
      { name: `${p}self_attn.o_proj.weight`, shape: [d, heads * headDim], exponent: -6 },
      { name: `${p}post_attention_layernorm.weight`, shape: [d], exponent: "one" },
      { name: `${p}block_sparse_moe.gate.weight`, shape: [experts, d], exponent: -5 },
    );
    for (let e = 0; e < experts; e += 1) {
      const x = `${p}block_sparse_moe.experts.${e}.`;
      tensors.push(
        { name: `${x}w1.weight`, shape: [intermediate, d], exponent: -5 },
        { name: `${x}w2.weight`, shape: [d, intermediate], exponent: -6 },
        { name: `${x}w3.weight`, shape: [intermediate, d], exponent: -5 },
      );
    }
  }
  tensors.push({ name: "model.norm.weight", shape: [d], exponent: "one" }, { name: "lm_head.weight", shape: [vocab, d], exponent: -5 });
  writeBf16Checkpoint(dir, tensors, {
    architectures: ["MixtralForCausalLM"], model_type: "mixtral", hidden_size: d, num_attention_heads: heads,
    num_key_value_heads: kvHeads, head_dim: headDim, intermediate_size: intermediate, num_hidden_layers: layers,
    num_local_experts: experts, num_experts_per_tok: perToken, vocab_size: vocab, rms_norm_eps: 1e-5, rope_theta: 1e6,
    max_position_embeddings: 2048, tie_word_embeddings: false, hidden_act: "silu", torch_dtype: "bfloat16", sliding_window: null,
  }, 0x7f4a7c15);
  return dir;
}
