/**
 * A random Llama-family checkpoint written in code (no Python), plus an independent fp64 reference forward pass
 * written from the architecture's equations. Used where the committed HF goldens are too small to reach a code path
 * (long prompts, deep GEMM blocks) and by the surgery-vs-hook tests.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeSafetensorsFile } from "../../lib/safetensors/index.js";

export interface RandomLlamaOptions {
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  layers: number;
  vocab: number;
  dtype: "F32" | "BF16";
  tie: boolean;
  /** Biases on q/k/v/o and the MLP (Llama's attention_bias / mlp_bias). */
  bias: boolean;
  seed: number;
  ropeTheta?: number;
  /** Tensors per shard file; everything in one file when absent. */
  shardSize?: number;
}

export interface RandomLlama {
  dir: string;
  options: RandomLlamaOptions;
  /** Every tensor's stored values, exactly (bf16 values are what the file holds). */
  tensors: Map<string, { shape: number[]; values: Float64Array }>;
}

/** mulberry32 + Box–Muller: reproducible normals without dependencies. */
export function normalGenerator(seed: number): () => number {
  let state = seed >>> 0;
  const uniform = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

function roundToBf16(value: number): number {
  const f = new Float32Array([value]);
  const bits = new Uint32Array(f.buffer);
  const lsb = (bits[0] >>> 16) & 1;
  bits[0] = ((bits[0] + 0x7fff + lsb) >>> 16) << 16;
  return f[0];
}

export function encodeTensor(values: Float64Array, dtype: "F32" | "BF16"): Uint8Array {
  const f32 = Float32Array.from(values);
  if (dtype === "F32") return new Uint8Array(f32.buffer);
  const out = new Uint16Array(values.length);
  const bits = new Uint32Array(f32.buffer);
  for (let i = 0; i < values.length; i += 1) out[i] = bits[i] >>> 16;
  return new Uint8Array(out.buffer);
}

export function writeRandomLlama(dir: string, options: RandomLlamaOptions): RandomLlama {
  mkdirSync(dir, { recursive: true });
  const normal = normalGenerator(options.seed);
  const { hidden: d, heads, kvHeads, headDim, intermediate, layers, vocab, dtype } = options;
  const tensors = new Map<string, { shape: number[]; values: Float64Array }>();
  const store = (v: number) => (dtype === "BF16" ? roundToBf16(v) : Math.fround(v));
  const add = (name: string, shape: number[], draw: () => number) => {
    const values = new Float64Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < values.length; i += 1) values[i] = store(draw());
    tensors.set(name, { shape, values });
  };
  const weight = (fanIn: number) => () => (1.5 / Math.sqrt(fanIn)) * normal();
  add("model.embed_tokens.weight", [vocab, d], normal);
  for (let l = 0; l < layers; l += 1) {
    const p = `model.layers.${l}.`;
    add(`${p}input_layernorm.weight`, [d], () => 1 + 0.2 * normal());
    add(`${p}self_attn.q_proj.weight`, [heads * headDim, d], weight(d));
    add(`${p}self_attn.k_proj.weight`, [kvHeads * headDim, d], weight(d));
    add(`${p}self_attn.v_proj.weight`, [kvHeads * headDim, d], weight(d));
    add(`${p}self_attn.o_proj.weight`, [d, heads * headDim], weight(heads * headDim));
    add(`${p}post_attention_layernorm.weight`, [d], () => 1 + 0.2 * normal());
    add(`${p}mlp.gate_proj.weight`, [intermediate, d], weight(d));
    add(`${p}mlp.up_proj.weight`, [intermediate, d], weight(d));
    add(`${p}mlp.down_proj.weight`, [d, intermediate], weight(intermediate));
    if (options.bias) {
      for (const [name, size] of [
        ["self_attn.q_proj", heads * headDim],
        ["self_attn.k_proj", kvHeads * headDim],
        ["self_attn.v_proj", kvHeads * headDim],
        ["self_attn.o_proj", d],
        ["mlp.gate_proj", intermediate],
        ["mlp.up_proj", intermediate],
        ["mlp.down_proj", d],
      ] as const) {
        add(`${p}${name}.bias`, [size], () => 0.1 * normal());
      }
    }
  }
  add("model.norm.weight", [d], () => 1 + 0.2 * normal());
  if (!options.tie) add("lm_head.weight", [vocab, d], weight(d));

  const config = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: d,
    intermediate_size: intermediate,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    vocab_size: vocab,
    rms_norm_eps: 1e-5,
    max_position_embeddings: 4096,
    rope_theta: options.ropeTheta ?? 10000,
    rope_scaling: null,
    tie_word_embeddings: options.tie,
    attention_bias: options.bias,
    mlp_bias: options.bias,
    hidden_act: "silu",
    torch_dtype: dtype === "BF16" ? "bfloat16" : "float32",
  };
  writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 1));
  return { dir, options, tensors };
}

/** Writes the tensors (possibly modified) as the checkpoint's safetensors file(s), in the options' dtype. */
export async function writeTensors(model: RandomLlama, tensors = model.tensors): Promise<void> {
  const entries = [...tensors.entries()].map(([name, t]) => ({
    name,
    dtype: model.options.dtype,
    shape: t.shape,
    data: encodeTensor(t.values, model.options.dtype),
  }));
  const shardSize = model.options.shardSize;
  if (!shardSize) {
    await writeSafetensorsFile(join(model.dir, "model.safetensors"), { tensors: entries });
    return;
  }
  const shards = Math.ceil(entries.length / shardSize);
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s += 1) {
    const file = `model-${String(s + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`;
    const part = entries.slice(s * shardSize, (s + 1) * shardSize);
    for (const entry of part) weightMap[entry.name] = file;
    await writeSafetensorsFile(join(model.dir, file), { tensors: part });
  }
  writeFileSync(join(model.dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
}

/** Called on every residual write before it is added ([T × d], modified in place): the embedding writes stream 0, layer l's attention and MLP stream l + 1. */
export type ReferenceWriteHook = (write: Float64Array, stream: number, writer: "embed" | "attn" | "mlp") => void;

/**
 * Residual stream [L + 1][T × d] of one prompt, in fp64, from the Llama equations; `addition` adds a vector to every
 * position of the stream at one index (0 = embedding output, l + 1 = layer l's output); `hook` sees every write.
 */
export function referenceLlamaForward(
  model: RandomLlama,
  tokens: number[],
  addition?: { vector: ArrayLike<number>; point: number },
  hook?: ReferenceWriteHook,
): Float64Array[] {
  const { hidden: d, heads, kvHeads, headDim, intermediate, layers } = model.options;
  const t = (name: string) => model.tensors.get(name)?.values;
  const theta = model.options.ropeTheta ?? 10000;
  const T = tokens.length;
  const eps = 1e-5;
  const rms = (x: Float64Array, w: Float64Array) => {
    const out = new Float64Array(x.length);
    for (let r = 0; r < T; r += 1) {
      let s = 0;
      for (let i = 0; i < d; i += 1) s += x[r * d + i] ** 2;
      const inv = 1 / Math.sqrt(s / d + eps);
      for (let i = 0; i < d; i += 1) out[r * d + i] = x[r * d + i] * inv * w[i];
    }
    return out;
  };
  const linear = (x: Float64Array, inDim: number, w: Float64Array, outDim: number, b?: Float64Array) => {
    const y = new Float64Array(T * outDim);
    for (let r = 0; r < T; r += 1) {
      for (let o = 0; o < outDim; o += 1) {
        let s = b ? b[o] : 0;
        for (let i = 0; i < inDim; i += 1) s += x[r * inDim + i] * w[o * inDim + i];
        y[r * outDim + o] = s;
      }
    }
    return y;
  };
  const rope = (x: Float64Array, count: number) => {
    const half = headDim / 2;
    for (let r = 0; r < T; r += 1) {
      for (let h = 0; h < count; h += 1) {
        for (let i = 0; i < half; i += 1) {
          const angle = r * Math.pow(theta, (-2 * i) / headDim);
          const base = (r * count + h) * headDim;
          const a = x[base + i];
          const b = x[base + i + half];
          x[base + i] = a * Math.cos(angle) - b * Math.sin(angle);
          x[base + i + half] = b * Math.cos(angle) + a * Math.sin(angle);
        }
      }
    }
  };
  const x = new Float64Array(T * d);
  const embed = t("model.embed_tokens.weight")!;
  tokens.forEach((token, r) => x.set(embed.subarray(token * d, (token + 1) * d), r * d));
  hook?.(x, 0, "embed");
  const add = (point: number) => {
    if (addition?.point !== point) return;
    for (let i = 0; i < x.length; i += 1) x[i] += addition.vector[i % d];
  };
  add(0);
  const states = [Float64Array.from(x)];
  for (let l = 0; l < layers; l += 1) {
    const p = `model.layers.${l}.`;
    const h = rms(x, t(`${p}input_layernorm.weight`)!);
    const q = linear(h, d, t(`${p}self_attn.q_proj.weight`)!, heads * headDim, t(`${p}self_attn.q_proj.bias`));
    const k = linear(h, d, t(`${p}self_attn.k_proj.weight`)!, kvHeads * headDim, t(`${p}self_attn.k_proj.bias`));
    const v = linear(h, d, t(`${p}self_attn.v_proj.weight`)!, kvHeads * headDim, t(`${p}self_attn.v_proj.bias`));
    rope(q, heads);
    rope(k, kvHeads);
    const attn = new Float64Array(T * heads * headDim);
    for (let head = 0; head < heads; head += 1) {
      const g = Math.floor(head / (heads / kvHeads));
      for (let i = 0; i < T; i += 1) {
        const scores: number[] = [];
        for (let j = 0; j <= i; j += 1) {
          let s = 0;
          for (let c = 0; c < headDim; c += 1) s += q[(i * heads + head) * headDim + c] * k[(j * kvHeads + g) * headDim + c];
          scores.push(s / Math.sqrt(headDim));
        }
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= i; j += 1) {
          for (let c = 0; c < headDim; c += 1) attn[(i * heads + head) * headDim + c] += (e[j] / sum) * v[(j * kvHeads + g) * headDim + c];
        }
      }
    }
    const o = linear(attn, heads * headDim, t(`${p}self_attn.o_proj.weight`)!, d, t(`${p}self_attn.o_proj.bias`));
    hook?.(o, l + 1, "attn");
    for (let i = 0; i < x.length; i += 1) x[i] += o[i];
    const h2 = rms(x, t(`${p}post_attention_layernorm.weight`)!);
    const gate = linear(h2, d, t(`${p}mlp.gate_proj.weight`)!, intermediate, t(`${p}mlp.gate_proj.bias`));
    const up = linear(h2, d, t(`${p}mlp.up_proj.weight`)!, intermediate, t(`${p}mlp.up_proj.bias`));
    for (let i = 0; i < gate.length; i += 1) gate[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
    const down = linear(gate, intermediate, t(`${p}mlp.down_proj.weight`)!, d, t(`${p}mlp.down_proj.bias`));
    hook?.(down, l + 1, "mlp");
    for (let i = 0; i < x.length; i += 1) x[i] += down[i];
    add(l + 1);
    states.push(Float64Array.from(x));
  }
  return states;
}
