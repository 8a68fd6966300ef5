/**
 * The engine's large buffers lie on huge pages that a run gives back for the next run of the same shapes
 * (native/core/forward/large_mappings.h). The pages still hold the last run's values, so a second model of the
 * same shapes with other weights, run after the first, must still match an independent fp64 forward pass: nothing
 * stale may be read. The MLP's input buffer (512-row chunks × gate and up, 4.5 MB) is past the huge-page threshold.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { runForward } from "../../lib/engine/run-forward.js";
import { hiddenBlock, relativeError } from "../golden/forward-golden.js";
import { normalGenerator, referenceLlamaForward, writeRandomLlama, writeTensors } from "../golden/random-llama.js";

test("a run in buffers an earlier run gave back matches the fp64 reference", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-large-"));
  try {
    const shape = { hidden: 128, heads: 4, kvHeads: 2, headDim: 32, intermediate: 1100, layers: 1, vocab: 61, dtype: "F32", tie: false, bias: false } as const;
    const models = [writeRandomLlama(join(root, "a"), { ...shape, seed: 21 }), writeRandomLlama(join(root, "b"), { ...shape, seed: 22 })];
    for (const model of models) await writeTensors(model);
    const normal = normalGenerator(4);
    const prompts = [230, 190, 150].map((length) => Array.from({ length }, () => Math.floor(Math.abs(normal() * 1000)) % shape.vocab));
    const run = async (dir: string) => runForward({ model: await loadForwardModel(dir), prompts, positions: "all", mode: "resident", compute: "fp32" });
    await run(models[0].dir);
    const out = await run(models[1].dir);
    assert.ok(out.reusedBufferBytes >= 4 * 2 ** 20, `the second run reused the first run's large buffers (${out.reusedBufferBytes} bytes)`);
    let offset = 0;
    for (const tokens of prompts) {
      const reference = referenceLlamaForward(models[1], tokens);
      for (let point = 0; point < 2; point += 1) {
        const error = relativeError(hiddenBlock(out.hidden, offset, tokens.length, point, 2, shape.hidden), reference[point]);
        assert.ok(error <= 1e-5, `${tokens.length} tokens, point ${point}: relative error ${error}`);
      }
      offset += tokens.length;
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
