import { readdir, stat } from "node:fs/promises";
import { readRegularFile } from "../fs/read-regular-file.js";
import { describeSpecialFile } from "../fs/describe-special-file.js";
import { basename, join } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { parseCheckpointIndex } from "./parse-checkpoint-index.js";
import { quoteForMessage } from "./parse-strict-json.js";
import { readSafetensorsHeader } from "./read-header.js";
import type { SafetensorsHeader, SafetensorsTensorInfo } from "./types.js";

export const INDEX_FILE_NAME = "model.safetensors.index.json";
export const SINGLE_FILE_NAME = "model.safetensors";

/** An index file is JSON metadata; real ones are a few MB at most. */
const MAX_INDEX_BYTES = 100_000_000;
/** Headers are read this many at a time, to stay clear of file-descriptor limits on many-shard checkpoints. */
const HEADER_READ_CONCURRENCY = 16;

export interface TensorLocation {
  shard: SafetensorsHeader;
  tensor: SafetensorsTensorInfo;
}

export interface Checkpoint {
  dir: string;
  /** Present when the checkpoint has model.safetensors.index.json. */
  indexPath?: string;
  /** One header per shard, sorted by file name (the -0000k-of-0000n numbering makes that shard order). */
  shards: SafetensorsHeader[];
  tensorLocations: Map<string, TensorLocation>;
  /** The index's "metadata" object as written (total_size and anything else); informational only. */
  indexMetadata?: Record<string, unknown>;
  /**
   * Sum of all tensors' byte sizes: what HF writes as metadata.total_size (tensor bytes, not file sizes, so
   * headers are not counted).
   */
  totalBytes: number;
}

/**
 * Opens a checkpoint folder: `model.safetensors.index.json` with its shards; else `model.safetensors`; else the
 * folder's only `*.safetensors` file. Every header is validated, and with an index the mapping must agree
 * exactly with the shards: every mapped tensor is in the shard named, no tensor is in two shards, and no shard
 * holds a tensor the index does not map. total_size is not checked (real indexes disagree with it at times).
 */
export async function readCheckpoint(dir: string): Promise<Checkpoint> {
  let names: string[];
  try {
    if (!(await stat(dir)).isDirectory()) {
      throw new AbliterateError(ErrorCodes.NO_SAFETENSORS, "is not a folder", { file: dir });
    }
    names = await readdir(dir);
  } catch (cause) {
    if (cause instanceof AbliterateError) throw cause;
    const code = (cause as NodeJS.ErrnoException).code;
    throw new AbliterateError(ErrorCodes.IO, `cannot read the checkpoint folder (${code ?? String(cause)})`, { file: dir, cause });
  }

  if (names.includes(INDEX_FILE_NAME)) return readIndexedCheckpoint(dir, join(dir, INDEX_FILE_NAME));

  const candidates = names.filter((name) => name.endsWith(".safetensors")).sort();
  const file = candidates.includes(SINGLE_FILE_NAME) ? SINGLE_FILE_NAME : candidates.length === 1 ? candidates[0] : undefined;
  if (file === undefined) {
    throw new AbliterateError(
      ErrorCodes.NO_SAFETENSORS,
      candidates.length === 0
        ? `no ${INDEX_FILE_NAME}, ${SINGLE_FILE_NAME} or other *.safetensors file`
        : `no ${INDEX_FILE_NAME} and several *.safetensors files, so which are the weights is ambiguous: ${candidates.join(", ")}`,
      { file: dir },
    );
  }
  const shard = await readSafetensorsHeader(join(dir, file));
  const tensorLocations = new Map<string, TensorLocation>();
  for (const tensor of shard.tensors) tensorLocations.set(tensor.name, { shard, tensor });
  return { dir, shards: [shard], tensorLocations, totalBytes: sumTensorBytes([shard]) };
}

async function readIndexedCheckpoint(dir: string, indexPath: string): Promise<Checkpoint> {
  let text: string;
  try {
    const { size } = await stat(indexPath);
    if (size > MAX_INDEX_BYTES) {
      throw new AbliterateError(ErrorCodes.INDEX_INVALID, `index is ${size} bytes, over the ${MAX_INDEX_BYTES}-byte cap`, {
        file: indexPath,
      });
    }
    text = new TextDecoder("utf-8", { fatal: true }).decode(await readRegularFile(indexPath));
  } catch (cause) {
    if (cause instanceof AbliterateError) throw cause;
    if (cause instanceof TypeError) {
      throw new AbliterateError(ErrorCodes.INDEX_INVALID, "index is not valid UTF-8", { file: indexPath, cause });
    }
    const code = (cause as NodeJS.ErrnoException).code;
    throw new AbliterateError(ErrorCodes.IO, `cannot read the index (${code ?? String(cause)})`, { file: indexPath, cause });
  }
  const { weightMap, metadata } = parseCheckpointIndex({ text, path: indexPath });

  const shardFiles = [...new Set(weightMap.values())].sort();
  for (const file of shardFiles) {
    const path = join(dir, file);
    const info = await stat(path).catch((error: NodeJS.ErrnoException) => error);
    if (info instanceof Error) {
      const problem = info.code === "ENOENT" ? "which does not exist" : `which cannot be read (${info.code ?? info.message})`;
      throw new AbliterateError(ErrorCodes.INDEX_INVALID, `weight_map names the shard ${file}, ${problem} at ${path}`, { file: indexPath });
    }
    if (!info.isFile()) {
      throw new AbliterateError(ErrorCodes.INDEX_INVALID, `weight_map names the shard ${file}, but ${path} is ${describeSpecialFile(info) ?? "not a regular file"}, not a safetensors file`, {
        file: indexPath,
      });
    }
  }
  const shards = await mapWithConcurrency(shardFiles, HEADER_READ_CONCURRENCY, (file) => readSafetensorsHeader(join(dir, file)));
  const shardByFile = new Map(shardFiles.map((file, index) => [file, shards[index]]));

  const tensorLocations = new Map<string, TensorLocation>();
  for (const [name, file] of weightMap) {
    const shard = shardByFile.get(file) as SafetensorsHeader;
    const tensor = shard.byName.get(name);
    if (tensor === undefined) {
      const elsewhere = shards.find((other) => other.byName.has(name));
      throw new AbliterateError(
        ErrorCodes.INDEX_INVALID,
        `weight_map puts tensor ${quoteForMessage(name)} in ${file}, but that shard does not contain it` +
          (elsewhere ? ` (it is in ${basename(elsewhere.path)})` : ""),
        { file: indexPath },
      );
    }
    tensorLocations.set(name, { shard, tensor });
  }
  for (const shard of shards) {
    for (const tensor of shard.tensors) {
      const mapped = tensorLocations.get(tensor.name);
      if (mapped === undefined) {
        throw new AbliterateError(
          ErrorCodes.INDEX_INVALID,
          `shard ${basename(shard.path)} contains tensor ${quoteForMessage(tensor.name)}, which weight_map does not list`,
          { file: indexPath },
        );
      }
      if (mapped.shard !== shard) {
        throw new AbliterateError(
          ErrorCodes.INDEX_INVALID,
          `tensor ${quoteForMessage(tensor.name)} is in two shards, ${basename(mapped.shard.path)} and ${basename(shard.path)}`,
          { file: indexPath },
        );
      }
    }
  }

  const checkpoint: Checkpoint = { dir, indexPath, shards, tensorLocations, totalBytes: sumTensorBytes(shards) };
  if (metadata !== undefined) checkpoint.indexMetadata = metadata;
  return checkpoint;
}

function sumTensorBytes(shards: SafetensorsHeader[]): number {
  let total = 0;
  for (const shard of shards) for (const tensor of shard.tensors) total += tensor.byteLength;
  return total;
}

async function mapWithConcurrency<T, R>(items: T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
