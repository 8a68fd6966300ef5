/**
 * The engine against an independent fp64 Llama forward pass (test/golden/random-llama.ts) on a checkpoint large
 * enough to reach the GEMM's multi-block paths (depth > 256, more than 144 rows, ragged edges) and sharded with an
 * index, with prompts long enough to split attention into several row chunks.
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

test("long prompts on a wider random Llama match an fp64 reference forward pass (f32 and bf16 weights)", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-"));
  try {
    for (const dtype of ["F32", "BF16"] as const) {
      const model = writeRandomLlama(join(root, dtype), {
        hidden: 280,
        heads: 5,
        kvHeads: 1,
        headDim: 56,
        intermediate: 600,
        layers: 2,
        vocab: 97,
        dtype,
        tie: false,
        bias: dtype === "BF16",
        seed: dtype === "F32" ? 7 : 8,
        shardSize: 5,
      });
      await writeTensors(model);
      const normal = normalGenerator(99);
      const prompts = [157, 5, 41].map((length) => Array.from({ length }, () => Math.floor(Math.abs(normal() * 1000)) % 97));
      const forward = await loadForwardModel(model.dir);
      const out = await runForward({ model: forward, prompts, positions: "all", mode: "streamed", compute: "fp32" });
      const points = 3;
      let offset = 0;
      for (const tokens of prompts) {
        const reference = referenceLlamaForward(model, tokens);
        for (let point = 0; point < points; point += 1) {
          const error = relativeError(hiddenBlock(out.hidden, offset, tokens.length, point, points, 280), reference[point]);
          assert.ok(error <= 1e-5, `${dtype}, ${tokens.length} tokens, point ${point}: relative error ${error}`);
        }
        offset += tokens.length;
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
