/**
 * Generation packs every weight once for the whole job (gemm.h PackedWeight) and multiplies the packed panels for
 * every new token, a single prompt's one-row steps included. The prompt pass packs as it goes. Both must compute the
 * same function: each generated token is the argmax of the teacher-forced logits of the prompt plus the tokens
 * before it, for the fp32 recipe on F32 weights and the bf16 recipe on BF16 weights (the two that pack).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { runForward } from "../../lib/engine/run-forward.js";
import { normalGenerator, writeRandomLlama, writeTensors } from "../golden/random-llama.js";

test("generation from packed weights continues exactly as teacher forcing predicts", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-packed-"));
  try {
    for (const [dtype, compute] of [["F32", "fp32"], ["BF16", "bf16"]] as const) {
      const vocab = 97;
      const model = writeRandomLlama(join(root, dtype), {
        hidden: 64, heads: 4, kvHeads: 2, headDim: 16, intermediate: 150, layers: 3, vocab, dtype, tie: false, bias: false, seed: 5,
      });
      await writeTensors(model);
      const forward = await loadForwardModel(model.dir);
      const normal = normalGenerator(3);
      const prompts = [13, 5, 30, 8].map((n) => Array.from({ length: n }, () => Math.floor(Math.abs(normal() * 1000)) % vocab));
      const newTokens = 6;
      for (const batch of [prompts, [prompts[1]]]) {
        const generated = (await runForward({ model: forward, prompts: batch, positions: "none", maxNewTokens: newTokens, eosTokenIds: [], compute, mode: "resident" })).generated!;
        const forced = await runForward({
          model: forward, prompts: batch.map((p, i) => [...p, ...generated[i].slice(0, -1)]), positions: "none", logits: { last: newTokens }, compute,
        });
        batch.forEach((_, i) => {
          for (let j = 0; j < newTokens; j += 1) {
            const row = forced.logits!.subarray((i * newTokens + j) * vocab, (i * newTokens + j + 1) * vocab);
            let best = 0;
            for (let v = 1; v < vocab; v += 1) if (row[v] > row[best]) best = v;
            assert.equal(generated[i][j], best, `${dtype}/${compute}, ${batch.length} prompts: prompt ${i}, token ${j}`);
          }
        });
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
