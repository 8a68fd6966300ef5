/**
 * Reads the forward goldens (test/golden/forward/<name>/, made by generate-forward-golden.py) and compares
 * engine outputs with them.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readSafetensorsHeader, readTensorBytes } from "../../lib/safetensors/index.js";
import { goldenDir } from "./golden-paths.js";

export const FORWARD_GOLDEN_MODELS = [
  "llama",
  "llama3-tied-bf16",
  "mistral-f16",
  "qwen2-sharded",
  "qwen3",
  "gemma-bf16",
  "gemma2",
  "gemma3-text",
  "phi3",
  "gpt2",
  "gpt-neox-f16",
  "mixtral",
  "qwen2-moe",
  "qwen3-moe",
  "olmo2",
  "llama4",
] as const;

export interface ForwardGolden {
  name: string;
  dir: string;
  storageDtype: string;
  promptLengths: number[];
  newTokens: number;
  numLayers: number;
  hiddenSize: number;
  inputIds: number[][];
  /** Per prompt: [L + 1, T, d]. */
  hidden: Float32Array[];
  /** Per prompt: [T, vocab]. */
  logits: Float32Array[];
  generated: number[][];
  /** HF computing in the storage dtype (16-bit checkpoints only). */
  hiddenNative?: Float32Array[];
  logitsNative?: Float32Array[];
}

async function tensor(path: string, name: string): Promise<Uint8Array> {
  return readTensorBytes(await readSafetensorsHeader(path), name);
}

function int64s(bytes: Uint8Array): number[] {
  const view = new BigInt64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
  return Array.from(view, (v) => Number(v));
}

function floats(bytes: Uint8Array): Float32Array {
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

export async function readForwardGolden(name: string): Promise<ForwardGolden> {
  const dir = join(goldenDir, "forward", name);
  const meta = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")) as {
    storage_dtype: string;
    prompt_lengths: number[];
    new_tokens: number;
    num_hidden_layers: number;
    hidden_size: number;
  };
  const path = join(dir, "expected.safetensors");
  const header = await readSafetensorsHeader(path);
  const golden: ForwardGolden = {
    name,
    dir,
    storageDtype: meta.storage_dtype,
    promptLengths: meta.prompt_lengths,
    newTokens: meta.new_tokens,
    numLayers: meta.num_hidden_layers,
    hiddenSize: meta.hidden_size,
    inputIds: [],
    hidden: [],
    logits: [],
    generated: [],
  };
  const native = header.byName.has("hidden_native.0");
  if (native) {
    golden.hiddenNative = [];
    golden.logitsNative = [];
  }
  for (let p = 0; p < meta.prompt_lengths.length; p += 1) {
    golden.inputIds.push(int64s(await tensor(path, `input_ids.${p}`)));
    golden.hidden.push(floats(await tensor(path, `hidden.${p}`)));
    golden.logits.push(floats(await tensor(path, `logits.${p}`)));
    golden.generated.push(int64s(await tensor(path, `generated.${p}`)));
    if (native) {
      golden.hiddenNative!.push(floats(await tensor(path, `hidden_native.${p}`)));
      golden.logitsNative!.push(floats(await tensor(path, `logits_native.${p}`)));
    }
  }
  return golden;
}

/** max |a − b| / max |b|: the error relative to the block's scale (elementwise ratios blow up near zero). */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) throw new Error(`length ${actual.length} vs ${expected.length}`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i += 1) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

/**
 * Our residual stream for prompt p at layer point i as [T, d], out of a run with positions "all"
 * (rows in prompt order, layout [rows, L + 1, d]).
 */
export function hiddenBlock(hidden: Float32Array, rowOffset: number, length: number, point: number, points: number, d: number): Float32Array {
  const block = new Float32Array(length * d);
  for (let t = 0; t < length; t += 1) {
    block.set(hidden.subarray(((rowOffset + t) * points + point) * d, ((rowOffset + t) * points + point + 1) * d), t * d);
  }
  return block;
}
