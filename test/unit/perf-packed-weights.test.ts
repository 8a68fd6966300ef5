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

/** The argmax of each of the last `newTokens` logit rows per prompt, from a pass that packs nothing. */
async function teacherForced(model: Awaited<ReturnType<typeof loadForwardModel>>, prompts: number[][], generated: number[][], compute: "fp32" | "bf16") {
  const newTokens = generated[0].length;
  const forced = await runForward({ model, prompts: prompts.map((p, i) => [...p, ...generated[i].slice(0, -1)]), positions: "none", logits: { last: newTokens }, compute });
  const vocab = forced.logits!.length / (prompts.length * newTokens);
  return prompts.map((_, i) =>
    Array.from({ length: newTokens }, (_, j) => {
      const row = forced.logits!.subarray((i * newTokens + j) * vocab, (i * newTokens + j + 1) * vocab);
      let best = 0;
      for (let v = 1; v < vocab; v += 1) if (row[v] > row[best]) best = v;
      return best;
    }),
  );
}

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
        assert.deepEqual(generated, await teacherForced(forward, batch, generated, compute), `${dtype}/${compute}, ${batch.length} prompts`);
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

/**
 * A job gives its panels' mappings back and the next job of the same shapes packs into them (gemm.cpp PanelMappings),
 * skipping the page faults. The pages still hold the last job's panels, so a second model of the same shapes with
 * other weights proves packing overwrites everything the micro-kernel reads: its tokens are its own teacher-forced
 * argmaxes. The odd intermediate size gives the bf16 recipe an odd depth (a half-filled last pair) in the down
 * projection. (Whether the first job finds mappings depends on what ran before it: lengths round up to 2 MB.)
 */
test("a generation job packs into the mappings the previous job of the same shapes gave back", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-packed-reuse-"));
  try {
    for (const [dtype, compute] of [["F32", "fp32"], ["BF16", "bf16"]] as const) {
      const shape = { hidden: 96, heads: 4, kvHeads: 2, headDim: 24, intermediate: 151, layers: 2, vocab: 89, dtype, tie: false, bias: false };
      const first = writeRandomLlama(join(root, `${dtype}-a`), { ...shape, seed: 11 });
      const second = writeRandomLlama(join(root, `${dtype}-b`), { ...shape, seed: 12 });
      await writeTensors(first);
      await writeTensors(second);
      const models = [await loadForwardModel(first.dir), await loadForwardModel(second.dir)];
      const prompts = [[3, 1, 4, 1, 5, 9, 2], [6, 5, 3]];
      const generate = (model: (typeof models)[number]) =>
        runForward({ model, prompts, positions: "none", maxNewTokens: 5, eosTokenIds: [], compute, mode: "resident" });
      const fresh = await generate(models[0]);
      assert.ok(fresh.packedBytes > 0, `${dtype}: packs`);
      const again = await generate(models[0]);
      assert.equal(again.packedBytes, fresh.packedBytes);
      assert.equal(again.reusedPackedBytes, again.packedBytes, `${dtype}: every panel reuses a mapping`);
      assert.deepEqual(again.generated, fresh.generated, `${dtype}: same tokens from reused mappings`);
      const other = await generate(models[1]);
      assert.equal(other.reusedPackedBytes, other.packedBytes, `${dtype}: the other model reuses them too`);
      assert.deepEqual(other.generated, await teacherForced(models[1], prompts, other.generated!, compute), `${dtype}: nothing stale is read`);
      assert.notDeepEqual(other.generated, fresh.generated, `${dtype}: the two models differ`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
