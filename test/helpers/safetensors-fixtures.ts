/**
 * Generic safetensors fixtures for tests: tensors with deterministic bytes, raw (possibly invalid) files, and
 * sharded checkpoints with an index. No model knowledge lives here.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { dtypeBits, type SafetensorsDtype } from "../../lib/safetensors/dtypes.js";
import { serializeSafetensors } from "../../lib/safetensors/serialize-safetensors.js";
import type { SerializableTensor } from "../../lib/safetensors/types.js";

export type FixtureTensor = SerializableTensor;

export interface FixtureShard {
  file: string;
  tensors: FixtureTensor[];
  metadata?: Record<string, string>;
}

export interface WriteShardedCheckpointParams {
  dir: string;
  shards: FixtureShard[];
  /** Written as config.json when given. */
  config?: object;
  /** Extra files by relative path (folders are created). */
  extraFiles?: Record<string, string | Uint8Array>;
  /**
   * Write model.safetensors.index.json. Default: true, except for a single shard named model.safetensors.
   */
  index?: boolean;
}

export interface WrittenCheckpoint {
  dir: string;
  shardPaths: string[];
  indexPath?: string;
  /** Sum of tensor byte sizes, as written in metadata.total_size. */
  totalSize: number;
}

/** Writes shards (with `{"format": "pt"}` metadata unless given), the index and config.json. */
export function writeShardedCheckpoint({ dir, shards, config, extraFiles, index }: WriteShardedCheckpointParams): WrittenCheckpoint {
  mkdirSync(dir, { recursive: true });
  const weightMap: Record<string, string> = {};
  const shardPaths: string[] = [];
  let totalSize = 0;
  for (const shard of shards) {
    const path = join(dir, shard.file);
    writeFileSync(path, serializeSafetensors({ tensors: shard.tensors, metadata: shard.metadata ?? { format: "pt" } }));
    shardPaths.push(path);
    for (const tensor of shard.tensors) {
      weightMap[tensor.name] = shard.file;
      totalSize += tensor.data.length;
    }
  }
  const writeIndex = index ?? !(shards.length === 1 && shards[0].file === "model.safetensors");
  let indexPath: string | undefined;
  if (writeIndex) {
    indexPath = join(dir, "model.safetensors.index.json");
    // HF writes weight_map sorted by tensor name; so does this.
    const sortedMap = Object.fromEntries(Object.keys(weightMap).sort().map((name) => [name, weightMap[name]]));
    writeFileSync(indexPath, JSON.stringify({ metadata: { total_size: totalSize }, weight_map: sortedMap }, null, 2) + "\n");
  }
  if (config !== undefined) writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
  for (const [relative, content] of Object.entries(extraFiles ?? {})) {
    const path = join(dir, relative);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
  }
  return { dir, shardPaths, indexPath, totalSize };
}

/** Byte size of a tensor of this dtype and shape (sub-byte dtypes: numel × bits must be a multiple of 8). */
export function tensorByteLength(dtype: SafetensorsDtype, shape: number[]): number {
  const bits = shape.reduce((product, size) => product * size, 1) * dtypeBits(dtype);
  if (bits % 8 !== 0) throw new Error(`shape [${shape}] × ${dtype} is not a whole number of bytes`);
  return bits / 8;
}

/** A tensor whose bytes are a deterministic function of `seed` (xorshift32), any dtype. */
export function patternTensor({ name, dtype, shape, seed = 1 }: { name: string; dtype: SafetensorsDtype; shape: number[]; seed?: number }): FixtureTensor {
  const data = new Uint8Array(tensorByteLength(dtype, shape));
  let state = (seed >>> 0) || 0x9e3779b9;
  for (let i = 0; i < data.length; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    data[i] = state & 0xff;
  }
  return { name, dtype, shape, data };
}

/** An F32 tensor holding `values` (row-major), little-endian. */
export function float32Tensor(name: string, shape: number[], values: ArrayLike<number>): FixtureTensor {
  const numel = shape.reduce((product, size) => product * size, 1);
  if (values.length !== numel) throw new Error(`${values.length} values for shape [${shape}]`);
  const data = new Uint8Array(numel * 4);
  const view = new DataView(data.buffer);
  for (let i = 0; i < numel; i++) view.setFloat32(i * 4, values[i], true);
  return { name, dtype: "F32", shape, data };
}

/**
 * A raw safetensors file from a header string, for hand-built (often invalid) vectors: 8-byte LE length
 * (`headerLength`, default the UTF-8 length of `header`), the header bytes, then `data`.
 */
export function rawSafetensorsBytes(header: string | Uint8Array, data: Uint8Array | number = 0, headerLength?: number | bigint): Uint8Array {
  const headerBytes = typeof header === "string" ? Buffer.from(header, "utf8") : header;
  const dataBytes = typeof data === "number" ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + headerBytes.length + dataBytes.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength ?? headerBytes.length), true);
  out.set(headerBytes, 8);
  out.set(dataBytes, 8 + headerBytes.length);
  return out;
}

/** Creates a temp folder (`abl-` prefix), runs `body`, and removes the folder whatever happens. */
export async function withTempDir<T>(body: (dir: string) => Promise<T> | T): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "abl-"));
  try {
    return await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
