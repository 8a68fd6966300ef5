import { test } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AbliterateError, ErrorCodes, type ErrorCode } from "../../lib/errors.js";
import { readCheckpoint } from "../../lib/safetensors/read-checkpoint.js";
import { readSafetensorsHeader } from "../../lib/safetensors/read-header.js";
import { readTensorBytes } from "../../lib/safetensors/read-tensor-bytes.js";
import { writeSafetensorsFile } from "../../lib/safetensors/serialize-safetensors.js";
import type { SafetensorsHeader } from "../../lib/safetensors/types.js";
import {
  float32Tensor,
  patternTensor,
  rawSafetensorsBytes,
  withTempDir,
  writeShardedCheckpoint,
  type FixtureShard,
} from "../helpers/safetensors-fixtures.js";

async function assertRejectsWith(promise: Promise<unknown>, code: ErrorCode, file: string, pattern?: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof AbliterateError, `expected AbliterateError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    assert.ok(error.message.includes(file), `message does not name ${file}: ${error.message}`);
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
}

function threeShards(): FixtureShard[] {
  return [
    {
      file: "model-00001-of-00003.safetensors",
      tensors: [
        patternTensor({ name: "model.embed_tokens.weight", dtype: "BF16", shape: [16, 8], seed: 1 }),
        patternTensor({ name: "model.layers.0.self_attn.o_proj.weight", dtype: "BF16", shape: [8, 8], seed: 2 }),
      ],
    },
    {
      file: "model-00002-of-00003.safetensors",
      tensors: [
        patternTensor({ name: "model.layers.0.mlp.down_proj.weight", dtype: "F16", shape: [8, 12], seed: 3 }),
        patternTensor({ name: "model.layers.0.input_layernorm.weight", dtype: "F32", shape: [8], seed: 4 }),
      ],
    },
    {
      file: "model-00003-of-00003.safetensors",
      tensors: [
        patternTensor({ name: "model.norm.weight", dtype: "F32", shape: [8], seed: 5 }),
        patternTensor({ name: "lm_head.weight", dtype: "F32", shape: [16, 8], seed: 6 }),
      ],
    },
  ];
}

test("readCheckpoint: three shards with an index", async () => {
  await withTempDir(async (dir) => {
    const shards = threeShards();
    const written = writeShardedCheckpoint({ dir, shards, config: { model_type: "llama" } });
    const checkpoint = await readCheckpoint(dir);
    assert.equal(checkpoint.dir, dir);
    assert.equal(checkpoint.indexPath, join(dir, "model.safetensors.index.json"));
    assert.deepEqual(checkpoint.shards.map((shard) => shard.path), written.shardPaths);
    // 16·8·2 + 8·8·2 + 8·12·2 + 8·4 + 8·4 + 16·8·4 bytes.
    assert.equal(written.totalSize, 256 + 128 + 192 + 32 + 32 + 512);
    assert.equal(checkpoint.totalBytes, written.totalSize);
    assert.deepEqual(checkpoint.indexMetadata, { total_size: written.totalSize });
    assert.equal(checkpoint.tensorLocations.size, 6);
    for (const [shardIndex, shard] of shards.entries()) {
      for (const tensor of shard.tensors) {
        const location = checkpoint.tensorLocations.get(tensor.name);
        assert.ok(location, tensor.name);
        assert.equal(location.shard, checkpoint.shards[shardIndex]);
        assert.equal(location.tensor.dtype, tensor.dtype);
        assert.deepEqual(location.tensor.shape, tensor.shape);
        assert.deepEqual(await readTensorBytes(location.shard, tensor.name), tensor.data);
      }
    }
  });
});

test("readCheckpoint: a single model.safetensors, a lone other *.safetensors, and a symlinked shard", async () => {
  await withTempDir(async (dir) => {
    const tensors = [float32Tensor("a", [2], [1.5, -2]), patternTensor({ name: "b", dtype: "U8", shape: [3] })];
    writeShardedCheckpoint({ dir: join(dir, "single"), shards: [{ file: "model.safetensors", tensors }] });
    const single = await readCheckpoint(join(dir, "single"));
    assert.equal(single.indexPath, undefined);
    assert.equal(single.shards.length, 1);
    assert.equal(single.totalBytes, 11);
    assert.deepEqual([...single.tensorLocations.keys()].sort(), ["a", "b"]);
    const a = await readTensorBytes(single.shards[0], "a");
    assert.deepEqual([...new Float32Array(a.buffer)], [1.5, -2]);

    writeShardedCheckpoint({ dir: join(dir, "other"), shards: [{ file: "weights.safetensors", tensors }], index: false });
    assert.equal((await readCheckpoint(join(dir, "other"))).shards[0].path, join(dir, "other", "weights.safetensors"));

    // The HF cache stores snapshot files as symlinks into ../../blobs.
    mkdirSync(join(dir, "blobs"));
    mkdirSync(join(dir, "snapshot"));
    writeShardedCheckpoint({ dir: join(dir, "blobs"), shards: [{ file: "abc123", tensors }], index: false });
    symlinkSync(join("..", "blobs", "abc123"), join(dir, "snapshot", "model.safetensors"));
    assert.equal((await readCheckpoint(join(dir, "snapshot"))).tensorLocations.size, 2);
  });
});

test("readCheckpoint: model.safetensors wins over other files when there is no index", async () => {
  await withTempDir(async (dir) => {
    writeShardedCheckpoint({
      dir,
      shards: [
        { file: "model.safetensors", tensors: [patternTensor({ name: "w", dtype: "U8", shape: [2] })] },
        { file: "consolidated.safetensors", tensors: [patternTensor({ name: "x", dtype: "U8", shape: [2] })] },
      ],
      index: false,
    });
    assert.deepEqual([...(await readCheckpoint(dir)).tensorLocations.keys()], ["w"]);
  });
});

test("readCheckpoint: no weights, or several candidates without an index", async () => {
  await withTempDir(async (dir) => {
    mkdirSync(join(dir, "empty"));
    writeFileSync(join(dir, "empty", "config.json"), "{}");
    await assertRejectsWith(readCheckpoint(join(dir, "empty")), ErrorCodes.NO_SAFETENSORS, join(dir, "empty"));
    writeShardedCheckpoint({
      dir: join(dir, "two"),
      shards: [
        { file: "a.safetensors", tensors: [patternTensor({ name: "w", dtype: "U8", shape: [2] })] },
        { file: "b.safetensors", tensors: [patternTensor({ name: "x", dtype: "U8", shape: [2] })] },
      ],
      index: false,
    });
    await assertRejectsWith(readCheckpoint(join(dir, "two")), ErrorCodes.NO_SAFETENSORS, join(dir, "two"), /a\.safetensors, b\.safetensors/);
    await assertRejectsWith(readCheckpoint(join(dir, "missing")), ErrorCodes.IO, join(dir, "missing"));
    await assertRejectsWith(readCheckpoint(join(dir, "two", "a.safetensors")), ErrorCodes.NO_SAFETENSORS, "a.safetensors", /not a folder/);
  });
});

/** Writes a valid three-shard checkpoint, then replaces its index with `mutate(index)`. */
async function withEditedIndex(
  mutate: (index: { metadata: { total_size: number }; weight_map: Record<string, string> }) => unknown,
  body: (dir: string, indexPath: string) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    const { indexPath } = writeShardedCheckpoint({ dir, shards: threeShards() });
    const index = JSON.parse(readFileSync(indexPath as string, "utf8"));
    const replaced = mutate(index) ?? index;
    writeFileSync(indexPath as string, typeof replaced === "string" ? replaced : JSON.stringify(replaced));
    await body(dir, indexPath as string);
  });
}

test("readCheckpoint: a shard named in weight_map is missing", async () => {
  await withEditedIndex(
    (index) => void (index.weight_map["model.norm.weight"] = "model-00004-of-00003.safetensors"),
    (_dir, indexPath) => assertRejectsWith(readCheckpoint(_dir), ErrorCodes.INDEX_INVALID, indexPath, /model-00004-of-00003\.safetensors, which does not exist/),
  );
});

test("readCheckpoint: weight_map entries pointing outside the folder are refused before any read", async () => {
  for (const target of ["../x.safetensors", "/etc/passwd", "sub/model.safetensors", "..\\x.safetensors", "..", ".", "", "C:x.safetensors"]) {
    await withEditedIndex(
      (index) => void (index.weight_map["model.norm.weight"] = target),
      (dir, indexPath) => assertRejectsWith(readCheckpoint(dir), ErrorCodes.INDEX_INVALID, indexPath, /weight_map entry for "model\.norm\.weight"/),
    );
  }
});

test("readCheckpoint: a tensor mapped to a shard that does not hold it", async () => {
  await withEditedIndex(
    (index) => void (index.weight_map["model.norm.weight"] = "model-00001-of-00003.safetensors"),
    (dir, indexPath) =>
      assertRejectsWith(
        readCheckpoint(dir),
        ErrorCodes.INDEX_INVALID,
        indexPath,
        /puts tensor "model\.norm\.weight" in model-00001-of-00003\.safetensors, but that shard does not contain it \(it is in model-00003/,
      ),
  );
  await withEditedIndex(
    (index) => void (index.weight_map["model.ghost.weight"] = "model-00001-of-00003.safetensors"),
    (dir, indexPath) => assertRejectsWith(readCheckpoint(dir), ErrorCodes.INDEX_INVALID, indexPath, /"model\.ghost\.weight"/),
  );
});

test("readCheckpoint: a tensor present in a shard but not in weight_map", async () => {
  await withEditedIndex(
    (index) => void delete index.weight_map["lm_head.weight"],
    (dir, indexPath) =>
      assertRejectsWith(readCheckpoint(dir), ErrorCodes.INDEX_INVALID, indexPath, /model-00003-of-00003\.safetensors contains tensor "lm_head\.weight", which weight_map does not list/),
  );
});

test("readCheckpoint: a tensor in two shards", async () => {
  await withTempDir(async (dir) => {
    const shards = threeShards();
    shards[2].tensors.push(shards[0].tensors[1]);
    const { indexPath } = writeShardedCheckpoint({ dir, shards });
    await assertRejectsWith(
      readCheckpoint(dir),
      ErrorCodes.INDEX_INVALID,
      indexPath as string,
      /tensor "model\.layers\.0\.self_attn\.o_proj\.weight" is in two shards/,
    );
  });
  // Also when the index itself names the tensor twice (JSON.parse would silently keep one).
  await withEditedIndex(
    () =>
      '{"weight_map":{"lm_head.weight":"model-00003-of-00003.safetensors","lm_head.weight":"model-00001-of-00003.safetensors"}}',
    (dir, indexPath) => assertRejectsWith(readCheckpoint(dir), ErrorCodes.INDEX_INVALID, indexPath, /duplicate key "lm_head\.weight"/),
  );
});

test("readCheckpoint: malformed index files", async () => {
  const cases: [string, RegExp][] = [
    ["not json", /not valid JSON/],
    ["[]", /not a JSON object/],
    ['{"metadata":{}}', /weight_map is missing/],
    ['{"weight_map":{}}', /names no tensors/],
    ['{"weight_map":{"a":3}}', /not a file name/],
    ['{"weight_map":{"lm_head.weight":"model-00003-of-00003.safetensors"},"metadata":[1]}', /metadata is an array/],
  ];
  for (const [text, pattern] of cases) {
    await withEditedIndex(
      () => text,
      (dir, indexPath) => assertRejectsWith(readCheckpoint(dir), ErrorCodes.INDEX_INVALID, indexPath, pattern),
    );
  }
});

test("readCheckpoint: total_size is informational, and a broken shard header names the shard", async () => {
  await withEditedIndex(
    (index) => void (index.metadata.total_size = 123),
    async (dir) => {
      const checkpoint = await readCheckpoint(dir);
      assert.deepEqual(checkpoint.indexMetadata, { total_size: 123 });
      assert.equal(checkpoint.totalBytes, 1152);
      const shard = join(dir, "model-00002-of-00003.safetensors");
      appendFileSync(shard, new Uint8Array(3));
      await assertRejectsWith(readCheckpoint(dir), ErrorCodes.SAFETENSORS_SIZE_MISMATCH_FILE, shard, /3 trailing bytes/);
    },
  );
});

test("readSafetensorsHeader: a hostile header length is refused from the 8-byte prefix alone", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "x.safetensors");
    writeFileSync(path, rawSafetensorsBytes("{}", 0, 99_999_999));
    await assertRejectsWith(readSafetensorsHeader(path), ErrorCodes.SAFETENSORS_TRUNCATED, path);
    writeFileSync(path, rawSafetensorsBytes("{}", 0, 2n ** 63n));
    await assertRejectsWith(readSafetensorsHeader(path), ErrorCodes.SAFETENSORS_HEADER_TOO_LARGE, path);
    writeFileSync(path, new Uint8Array([1, 2, 3]));
    await assertRejectsWith(readSafetensorsHeader(path), ErrorCodes.SAFETENSORS_TRUNCATED, path);
    await assertRejectsWith(readSafetensorsHeader(join(dir, "nope.safetensors")), ErrorCodes.IO, "nope.safetensors");
    await assertRejectsWith(readSafetensorsHeader(dir), ErrorCodes.IO, dir);
  });
});

test("readTensorBytes: unknown names, oversized tensors and files changed since the header was read", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "d.safetensors");
    await writeSafetensorsFile(path, { tensors: [float32Tensor("direction", [3], [0.25, 0.5, -1])] });
    const header = await readSafetensorsHeader(path);
    assert.deepEqual([...new Float32Array((await readTensorBytes(header, "direction")).buffer)], [0.25, 0.5, -1]);
    await assertRejectsWith(readTensorBytes(header, "other"), ErrorCodes.INVALID_ARGUMENT, path, /no tensor named "other"/);

    const big: SafetensorsHeader = {
      ...header,
      tensors: [{ ...header.tensors[0], name: "big", byteLength: 256 * 1024 * 1024 + 4 }],
      byName: new Map([["big", { ...header.tensors[0], name: "big", byteLength: 256 * 1024 * 1024 + 4 }]]),
    };
    await assertRejectsWith(readTensorBytes(big, "big"), ErrorCodes.INVALID_ARGUMENT, path, /256 MiB/);

    appendFileSync(path, new Uint8Array(1));
    await assertRejectsWith(readTensorBytes(header, "direction"), ErrorCodes.SAFETENSORS_SIZE_MISMATCH_FILE, path, /changed/);
  });
});

test("writeSafetensorsFile: writes atomically through a temp name and leaves nothing else behind", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "out.safetensors");
    await writeSafetensorsFile(path, { tensors: [patternTensor({ name: "w", dtype: "F16", shape: [2, 3] })], metadata: { format: "pt" } });
    assert.deepEqual(readdirSync(dir), ["out.safetensors"]);
    const header = await readSafetensorsHeader(path);
    assert.deepEqual(header.metadata, { format: "pt" });
    await assertRejectsWith(writeSafetensorsFile(join(dir, "no", "such", "dir.safetensors"), { tensors: [] }), ErrorCodes.IO, "dir.safetensors");
    assert.deepEqual(readdirSync(dir), ["out.safetensors"]);
  });
});
