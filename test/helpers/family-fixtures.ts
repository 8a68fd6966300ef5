/**
 * Fixtures for the architecture tests: the transformers-written golden checkpoints under test/golden/projection
 * (made by generate.py), and synthetic checkpoints for layouts transformers no longer writes (older multimodal
 * nesting, fused expert tensors, prefix-less GPT-2) or that must be refused (quantized schemes).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { crc32 as zlibCrc32 } from "node:zlib";
import { decodeFloats, type FloatDtype } from "../../lib/direction-files/decode-floats.js";
import type { SafetensorsDtype } from "../../lib/safetensors/dtypes.js";
import { readSafetensorsHeader } from "../../lib/safetensors/read-header.js";
import { readTensorBytes } from "../../lib/safetensors/read-tensor-bytes.js";
import { serializeSafetensors } from "../../lib/safetensors/serialize-safetensors.js";
import { goldenDir } from "../golden/golden-paths.js";
import { makeRandom, randomFloatBytes } from "./tiny-llama.js";

export const PROJECTION_GOLDEN_DIR = join(goldenDir, "projection");

export interface GoldenTarget {
  orientation: string;
  post_norm?: string;
}

export interface GoldenFamily {
  model_type: string;
  dtype: FloatDtype;
  tensors: number;
  lm_head_saved: boolean;
  targets: Record<string, GoldenTarget>;
  r_write_before: Record<string, number>;
  r_write_after_max: number;
}

export interface GoldenManifest {
  alpha: number;
  hidden_size: number;
  families: Record<string, GoldenFamily>;
}

export function readGoldenManifest(): GoldenManifest {
  return JSON.parse(readFileSync(join(PROJECTION_GOLDEN_DIR, "manifest.json"), "utf8")) as GoldenManifest;
}

export function goldenModelDir(family: string): string {
  return join(PROJECTION_GOLDEN_DIR, "families", family, "model");
}

export function goldenExpectedPath(family: string): string {
  return join(PROJECTION_GOLDEN_DIR, "families", family, "expected.safetensors");
}

export const GOLDEN_DIRECTION = join(PROJECTION_GOLDEN_DIR, "direction.safetensors");

/** A tensor's raw bytes and dtype from one safetensors file. */
export async function readTensor(path: string, name: string): Promise<{ dtype: string; shape: number[]; bytes: Uint8Array }> {
  const header = await readSafetensorsHeader(path);
  const info = header.byName.get(name);
  if (!info) throw new Error(`${path} has no tensor ${name}`);
  return { dtype: info.dtype, shape: info.shape, bytes: await readTensorBytes(header, name) };
}

export function decodeTensor(tensor: { dtype: string; bytes: Uint8Array }): Float64Array {
  return decodeFloats(tensor.bytes, tensor.dtype as FloatDtype);
}

/**
 * Largest distance in units in the last place between two tensors of one dtype, counted on the ordered integer
 * line of the encodings (so +0 and −0 are 0 apart and crossing zero counts every representable value).
 */
export function maxUlpDistance(a: Uint8Array, b: Uint8Array, dtype: string): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  const width = { F64: 8, F32: 4, F16: 2, BF16: 2 }[dtype as FloatDtype];
  if (!width) throw new Error(`dtype ${dtype}`);
  const va = new DataView(a.buffer, a.byteOffset, a.byteLength);
  const vb = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const ordered = (view: DataView, offset: number): bigint => {
    const bits = width === 8 ? view.getBigUint64(offset, true) : BigInt(width === 4 ? view.getUint32(offset, true) : view.getUint16(offset, true));
    const sign = 1n << BigInt(width * 8 - 1);
    return bits & sign ? -(bits & (sign - 1n)) : bits;
  };
  let worst = 0n;
  for (let offset = 0; offset < a.length; offset += width) {
    const distance = ordered(va, offset) - ordered(vb, offset);
    const absolute = distance < 0n ? -distance : distance;
    if (absolute > worst) worst = absolute;
  }
  return Number(worst);
}

/** Runs one of the library's surgery generators to its return value. */
export async function drain<T>(generator: AsyncGenerator<unknown, T>): Promise<T> {
  for (;;) {
    const step = await generator.next();
    if (step.done) return step.value;
  }
}

export interface SyntheticTensor {
  name: string;
  shape: number[];
  /** Default: the checkpoint's dtype. */
  dtype?: SafetensorsDtype;
}

export interface WriteSyntheticCheckpointParams {
  dir: string;
  config: Record<string, unknown>;
  tensors: SyntheticTensor[];
  dtype?: FloatDtype;
  seed?: number;
}

/** One model.safetensors with random, exactly representable values (non-float dtypes get random bytes). */
export function writeSyntheticCheckpoint({ dir, config, tensors, dtype = "F32", seed = 7 }: WriteSyntheticCheckpointParams): void {
  mkdirSync(dir, { recursive: true });
  const random = makeRandom(seed);
  const serialized = serializeSafetensors({
    tensors: tensors.map(({ name, shape, dtype: own }) => {
      const tensorDtype = own ?? dtype;
      const count = shape.reduce((a, b) => a * b, 1);
      const isFloat = ["F64", "F32", "F16", "BF16"].includes(tensorDtype);
      const bytesPer = { F8_E4M3: 1, F8_E5M2: 1, U8: 1, I8: 1, I32: 4, I64: 8 }[tensorDtype as string] ?? 4;
      const data = isFloat ? randomFloatBytes(tensorDtype as FloatDtype, count, random) : Uint8Array.from({ length: count * bytesPer }, () => Math.floor(random() * 256));
      return { name, dtype: tensorDtype, shape, data };
    }),
    metadata: { format: "pt" },
  });
  writeFileSync(join(dir, "model.safetensors"), serialized);
  writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2));
}

/** Llama-shaped tensor list: the shapes every llama-like family shares, under a name prefix. */
export function llamaLikeTensors(params: { prefix: string; hidden: number; layers: number; vocab?: number; intermediate?: number; mlp?: (layer: number, prefix: string) => SyntheticTensor[] }): SyntheticTensor[] {
  const { prefix, hidden, layers } = params;
  const vocab = params.vocab ?? 24;
  const intermediate = params.intermediate ?? 2 * hidden;
  const tensors: SyntheticTensor[] = [{ name: `${prefix}embed_tokens.weight`, shape: [vocab, hidden] }, { name: `${prefix}norm.weight`, shape: [hidden] }];
  for (let layer = 0; layer < layers; layer += 1) {
    const p = `${prefix}layers.${layer}.`;
    tensors.push(
      { name: `${p}input_layernorm.weight`, shape: [hidden] },
      { name: `${p}post_attention_layernorm.weight`, shape: [hidden] },
      { name: `${p}self_attn.q_proj.weight`, shape: [hidden, hidden] },
      { name: `${p}self_attn.k_proj.weight`, shape: [hidden, hidden] },
      { name: `${p}self_attn.v_proj.weight`, shape: [hidden, hidden] },
      { name: `${p}self_attn.o_proj.weight`, shape: [hidden, hidden] },
      ...(params.mlp
        ? params.mlp(layer, p)
        : [
            { name: `${p}mlp.gate_proj.weight`, shape: [intermediate, hidden] },
            { name: `${p}mlp.up_proj.weight`, shape: [intermediate, hidden] },
            { name: `${p}mlp.down_proj.weight`, shape: [hidden, intermediate] },
          ]),
    );
  }
  return tensors;
}

/** A zip archive of stored (or, with `method`, mislabelled) entries, for building .pt files by hand. */
export function writeStoredZip(entries: { name: string; data: Uint8Array; method?: number }[]): Uint8Array {
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const { name, data, method = 0 } of entries) {
    const nameBytes = new TextEncoder().encode(name);
    const crc = zlibCrc32(data) >>> 0;
    const local = new Uint8Array(30 + nameBytes.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(8, method, true);
    lv.setUint32(14, crc, true);
    lv.setUint32(18, data.length, true);
    lv.setUint32(22, data.length, true);
    lv.setUint16(26, nameBytes.length, true);
    local.set(nameBytes, 30);
    const central = new Uint8Array(46 + nameBytes.length);
    const cv = new DataView(central.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(10, method, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, data.length, true);
    cv.setUint32(24, data.length, true);
    cv.setUint16(28, nameBytes.length, true);
    cv.setUint32(42, offset, true);
    central.set(nameBytes, 46);
    locals.push(local, data);
    centrals.push(central);
    offset += local.length + data.length;
  }
  const directorySize = centrals.reduce((sum, part) => sum + part.length, 0);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, entries.length, true);
  ev.setUint16(10, entries.length, true);
  ev.setUint32(12, directorySize, true);
  ev.setUint32(16, offset, true);
  return Buffer.concat([...locals, ...centrals, end]);
}

/** A GGUF file from parts (string metadata only): version, key/values and tensors, F32 data unless a type is given. */
export function buildGguf(params: { version?: number; kv?: [string, string][]; tensors: { name: string; values: number[]; type?: number; dims?: number[] }[]; alignment?: number }): Uint8Array {
  const parts: Uint8Array[] = [];
  const u32 = (value: number) => {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setUint32(0, value, true);
    parts.push(bytes);
  };
  const u64 = (value: number) => {
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(value), true);
    parts.push(bytes);
  };
  const str = (text: string) => {
    const bytes = new TextEncoder().encode(text);
    u64(bytes.length);
    parts.push(bytes);
  };
  parts.push(new TextEncoder().encode("GGUF"));
  u32(params.version ?? 3);
  u64(params.tensors.length);
  u64(params.kv?.length ?? 0);
  for (const [key, value] of params.kv ?? []) {
    str(key);
    u32(8);
    str(value);
  }
  const alignment = params.alignment ?? 32;
  let offset = 0;
  const datas: Uint8Array[] = [];
  for (const tensor of params.tensors) {
    str(tensor.name);
    const dims = tensor.dims ?? [tensor.values.length];
    u32(dims.length);
    dims.forEach(u64);
    u32(tensor.type ?? 0);
    u64(offset);
    const data = new Uint8Array(new Float32Array(tensor.values).buffer);
    const padded = new Uint8Array(Math.ceil(data.length / alignment) * alignment);
    padded.set(data);
    datas.push(padded);
    offset += padded.length;
  }
  const head = Buffer.concat(parts);
  const pad = new Uint8Array(Math.ceil(head.length / alignment) * alignment - head.length);
  return Buffer.concat([head, pad, ...datas]);
}
