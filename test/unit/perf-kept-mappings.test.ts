/**
 * A run leaves its checkpoint mappings for the next run of the process on the same, unchanged files
 * (native/core/forward/mapped_files.h), so that run's touched pages need no fault. A file replaced since (a new
 * inode under the same path, as an atomic rename leaves it) is mapped anew: the run reads the new weights.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { runForward } from "../../lib/engine/run-forward.js";
import { writeRandomLlama, writeTensors } from "../golden/random-llama.js";

test("a run reuses the mappings of unchanged checkpoint files and maps a replaced file anew", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-kept-maps-"));
  try {
    const shape = { hidden: 64, heads: 4, kvHeads: 2, headDim: 16, intermediate: 96, layers: 2, vocab: 53, dtype: "BF16", tie: false, bias: false } as const;
    const first = writeRandomLlama(join(root, "model"), { ...shape, seed: 31 });
    await writeTensors(first);
    const file = join(first.dir, "model.safetensors");
    const prompts = [[4, 8, 15, 16, 23, 42], [7, 1]];
    const run = async (dir: string) => runForward({ model: await loadForwardModel(dir), prompts, positions: "all", mode: "resident", compute: "fp32" });

    const fresh = await run(first.dir);
    assert.equal(fresh.reusedMappedBytes, 0, "new files are mapped anew");
    const again = await run(first.dir);
    assert.equal(again.reusedMappedBytes, statSync(file).size, "the unchanged file's mapping is reused");
    assert.deepEqual(again.hidden, fresh.hidden);

    // Another model of the same shapes, written elsewhere and renamed over the first: same path and size.
    const second = writeRandomLlama(join(root, "other"), { ...shape, seed: 32 });
    await writeTensors(second);
    const expected = await run(second.dir);
    renameSync(join(second.dir, "model.safetensors"), file);
    const replaced = await run(first.dir);
    assert.equal(replaced.reusedMappedBytes, 0, "a replaced file is mapped anew");
    assert.deepEqual(replaced.hidden, expected.hidden, "the run reads the new weights");
    assert.notDeepEqual(replaced.hidden, fresh.hidden);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
