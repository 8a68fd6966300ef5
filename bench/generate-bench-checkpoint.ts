/**
 * The benchmark workload: a Llama-shaped BF16 checkpoint (TinyLlama-1.1B geometry: hidden 2048, intermediate 5632,
 * 22 layers, vocab 32000) in 5 shards of about 450 MB, random values, generated once into a cache folder.
 * Shards are streamed to disk tensor by tensor so generation itself stays small in memory.
 */
import { randomFillSync } from "node:crypto";
import { closeSync, existsSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";

export const BENCH_GEOMETRY = { hidden: 2048, intermediate: 5632, layers: 22, vocab: 32000, kvHidden: 256, shards: 5 };

interface PlannedTensor {
  name: string;
  shape: number[];
}

function plannedTensors(): PlannedTensor[] {
  const { hidden, intermediate, layers, vocab, kvHidden } = BENCH_GEOMETRY;
  const tensors: PlannedTensor[] = [{ name: "model.embed_tokens.weight", shape: [vocab, hidden] }];
  for (let layer = 0; layer < layers; layer += 1) {
    const p = `model.layers.${layer}`;
    tensors.push(
      { name: `${p}.input_layernorm.weight`, shape: [hidden] },
      { name: `${p}.self_attn.q_proj.weight`, shape: [hidden, hidden] },
      { name: `${p}.self_attn.k_proj.weight`, shape: [kvHidden, hidden] },
      { name: `${p}.self_attn.v_proj.weight`, shape: [kvHidden, hidden] },
      { name: `${p}.self_attn.o_proj.weight`, shape: [hidden, hidden] },
      { name: `${p}.post_attention_layernorm.weight`, shape: [hidden] },
      { name: `${p}.mlp.gate_proj.weight`, shape: [intermediate, hidden] },
      { name: `${p}.mlp.up_proj.weight`, shape: [intermediate, hidden] },
      { name: `${p}.mlp.down_proj.weight`, shape: [hidden, intermediate] },
    );
  }
  tensors.push({ name: "model.norm.weight", shape: [hidden] }, { name: "lm_head.weight", shape: [vocab, hidden] });
  return tensors;
}

const bytesOf = (tensor: PlannedTensor) => tensor.shape.reduce((a, b) => a * b, 1) * 2;

/** Random BF16 with exponents in [2^-8, 2^0): finite, weight-like magnitudes. */
function fillRandomBf16(target: Uint16Array): void {
  randomFillSync(target);
  for (let i = 0; i < target.length; i += 1) {
    const bits = target[i];
    target[i] = (bits & 0x807f) | ((119 + ((bits >> 7) & 7)) << 7);
  }
}

function writeShard(path: string, tensors: PlannedTensor[]): void {
  const header: Record<string, unknown> = { __metadata__: { format: "pt" } };
  let offset = 0;
  for (const tensor of tensors) {
    header[tensor.name] = { dtype: "BF16", shape: tensor.shape, data_offsets: [offset, offset + bytesOf(tensor)] };
    offset += bytesOf(tensor);
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  const fd = openSync(path, "w");
  try {
    writeSync(fd, prefix);
    writeSync(fd, Buffer.from(json));
    const chunk = new Uint16Array(8 * 1024 * 1024);
    for (const tensor of tensors) {
      let remaining = bytesOf(tensor) / 2;
      while (remaining > 0) {
        const count = Math.min(remaining, chunk.length);
        const view = chunk.subarray(0, count);
        fillRandomBf16(view);
        writeSync(fd, new Uint8Array(view.buffer, 0, count * 2));
        remaining -= count;
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** Returns the folder, generating it first if the cache does not hold a complete one. */
export function ensureBenchCheckpoint(cacheRoot: string): string {
  const dir = join(cacheRoot, "llama-2048x22-bf16");
  if (existsSync(join(dir, "config.json"))) return dir;
  const partial = `${dir}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  const tensors = plannedTensors();
  const totalBytes = tensors.reduce((sum, tensor) => sum + bytesOf(tensor), 0);
  const target = totalBytes / BENCH_GEOMETRY.shards;
  const shards: PlannedTensor[][] = [[]];
  let size = 0;
  for (const tensor of tensors) {
    if (size >= target && shards.length < BENCH_GEOMETRY.shards) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(tensor);
    size += bytesOf(tensor);
  }
  const weightMap: Record<string, string> = {};
  shards.forEach((shardTensors, index) => {
    const file = `model-${String(index + 1).padStart(5, "0")}-of-${String(shards.length).padStart(5, "0")}.safetensors`;
    writeShard(join(partial, file), shardTensors);
    for (const tensor of shardTensors) weightMap[tensor.name] = file;
  });
  writeFileSync(join(partial, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }, null, 2));
  const { hidden, intermediate, layers, vocab } = BENCH_GEOMETRY;
  writeFileSync(
    join(partial, "config.json"),
    JSON.stringify({ model_type: "llama", hidden_size: hidden, intermediate_size: intermediate, num_hidden_layers: layers, num_attention_heads: 32, num_key_value_heads: 4, vocab_size: vocab, tie_word_embeddings: false, torch_dtype: "bfloat16" }, null, 2),
  );
  renameSync(partial, dir);
  return dir;
}

export function writeBenchDirection(path: string): void {
  const values = new Float32Array(BENCH_GEOMETRY.hidden).map((_, i) => Math.sin(i * 12.9898) * 43758.5453 % 1);
  const json = JSON.stringify({ direction: { dtype: "F32", shape: [values.length], data_offsets: [0, values.byteLength] } });
  const padded = json + " ".repeat((8 - (json.length % 8)) % 8);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(padded.length));
  writeFileSync(path, Buffer.concat([prefix, Buffer.from(padded), Buffer.from(values.buffer)]));
}
