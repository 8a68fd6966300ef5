/**
 * The prompt pass reads each layer's weights out of the checkpoint into one staging buffer on huge pages
 * (native/core/forward/staged_weights.h), packing matrices into weight panels on the way, and multiplies them
 * there. The copy must be exact (read by both threads in runs of panels), cover every layer's tensors once per run,
 * decode steps included in none, and leave routed experts in the mapping, where a batch touches only the experts
 * it routes to. q, k and v (and gate and up) are packed as one stacked matrix and run as one GEMM, with the same
 * sums as one GEMM per part.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { runForward } from "../../lib/engine/run-forward.js";
import { readSafetensorsHeader } from "../../lib/safetensors/read-header.js";
import { goldenDir } from "../golden/golden-paths.js";
import { hiddenBlock, relativeError } from "../golden/forward-golden.js";
import { normalGenerator, referenceLlamaForward, writeRandomLlama, writeTensors } from "../golden/random-llama.js";

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

// Gate, up and down of the first are 1100 × 1024 fp32 (4.5 MB), read in several runs of panels. The second's
// stacked q, k, v (60 + 20 + 20 rows, depth 60) has panels that straddle two tensors and a ragged last panel.
const SHAPES = [
  { hidden: 1024, heads: 8, kvHeads: 2, headDim: 128, intermediate: 1100, layers: 2, vocab: 61, dtype: "F32", tie: false, bias: false },
  { hidden: 60, heads: 6, kvHeads: 2, headDim: 10, intermediate: 70, layers: 2, vocab: 37, dtype: "F32", tie: false, bias: false },
] as const;

for (const shape of SHAPES) test(`staged layers are read and packed exactly, once per run: the run matches the fp64 reference (hidden ${shape.hidden})`, async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-staged-"));
  try {
    const written = writeRandomLlama(join(root, "model"), { ...shape, seed: 41 });
    await writeTensors(written);
    const model = await loadForwardModel(written.dir);
    const normal = normalGenerator(5);
    const prompts = [7, 4].map((length) => Array.from({ length }, () => Math.floor(Math.abs(normal() * 1000)) % shape.vocab));
    for (const threads of [1, 2]) {
      const out = await runForward({ model, prompts, positions: "all", mode: "resident", compute: "fp32", threads });
      assert.equal(out.stagedBytes, sum(model.layerBytes), `${threads} thread(s): every layer's tensors staged once`);
      let offset = 0;
      for (const tokens of prompts) {
        const reference = referenceLlamaForward(written, tokens);
        for (let point = 0; point <= shape.layers; point += 1) {
          const error = relativeError(hiddenBlock(out.hidden, offset, tokens.length, point, shape.layers + 1, shape.hidden), reference[point]);
          assert.ok(error <= 1e-5, `${threads} thread(s), ${tokens.length} tokens, point ${point}: relative error ${error}`);
        }
        offset += tokens.length;
      }
    }
    const streamed = await runForward({ model, prompts, positions: "all", mode: "streamed", compute: "fp32" });
    assert.equal(streamed.stagedBytes, sum(model.layerBytes), "a streamed run stages the same");
    // A generation run packs each weight's panels and multiplies q, k, v (and gate, up) one at a time; a capture
    // multiplies the stacked copies in one GEMM each. Every sum is the same.
    const generated = await runForward({ model, prompts, positions: "all", mode: "resident", compute: "fp32", maxNewTokens: 4, eosTokenIds: [] });
    assert.equal(generated.stagedBytes, sum(model.layerBytes), "decode steps read no staged copy");
    const stacked = await runForward({ model, prompts, positions: "all", mode: "resident", compute: "fp32" });
    assert.deepEqual(generated.hidden, stacked.hidden, "stacked and per-part projections agree to the bit");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("routed experts stay mapped; everything else of a MoE layer is staged", async () => {
  const dir = join(goldenDir, "forward", "mixtral");
  const model = await loadForwardModel(dir);
  const header = await readSafetensorsHeader(join(dir, "model.safetensors"));
  const expertBytes = sum(header.tensors.filter((t) => /\.experts\./.test(t.name)).map((t) => t.byteLength));
  assert.ok(expertBytes > 0);
  const out = await runForward({ model, prompts: [[3, 9, 27, 81], [5, 25]], positions: "last", mode: "resident" });
  assert.equal(out.stagedBytes, sum(model.layerBytes) - expertBytes);
});
