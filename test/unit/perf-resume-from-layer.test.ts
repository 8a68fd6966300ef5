/**
 * runForward's resumeFrom: an edit that starts at layer l reuses the unedited run's residual stream entering l and
 * runs only layers l..L. Against the full run with the same edit, the stream at every point ≥ l and the logits at
 * every position must be identical (the skipped layers would compute exactly the unedited stream); edits that
 * reach below l are refused.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { residualStreamAt } from "../../lib/engine/residual-stream-at.js";
import { runForward } from "../../lib/engine/run-forward.js";
import { AbliterateError } from "../../lib/errors.js";
import { normalGenerator, writeRandomLlama, writeTensors } from "../golden/random-llama.js";

test("resuming at layer l from the unedited stream equals the full edited run at every point ≥ l", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-resume-"));
  try {
    const layers = 4;
    const d = 64;
    const model = writeRandomLlama(join(root, "model"), {
      hidden: d, heads: 4, kvHeads: 2, headDim: 16, intermediate: 150, layers, vocab: 41, dtype: "BF16", tie: false, bias: false, seed: 23,
    });
    await writeTensors(model);
    const normal = normalGenerator(8);
    const prompts = [19, 6, 40].map((n) => Array.from({ length: n }, () => Math.floor(Math.abs(normal() * 1000)) % 41));
    const forward = await loadForwardModel(model.dir);
    const r = Array.from({ length: d }, () => normal());
    const start = 2;
    let hidden: Float32Array = new Float32Array();
    for (const compute of ["fp32", "bf16"] as const) {
      // The cached stream comes from the unedited model in the same arithmetic.
      hidden = residualStreamAt(await runForward({ model: forward, prompts, positions: "all", compute }), start);
      const edit = { ablation: { directions: [r], layers: [2, 3], embedding: false }, addition: { vector: r.map((v) => 0.1 * v), point: 3 } };
      const full = await runForward({ model: forward, prompts, positions: "all", logits: "all", compute, ...edit });
      const resumed = await runForward({ model: forward, prompts, positions: "all", logits: "all", compute, ...edit, resumeFrom: { layer: start, hidden } });
      const points = layers + 1;
      const tokens = prompts.reduce((a, b) => a + b.length, 0);
      for (let row = 0; row < tokens; row += 1) {
        for (let point = start; point < points; point += 1) {
          const at = (row * points + point) * d;
          assert.deepEqual(resumed.hidden.subarray(at, at + d), full.hidden.subarray(at, at + d), `${compute}: row ${row}, point ${point}`);
        }
      }
      assert.deepEqual(resumed.logits, full.logits, `${compute}: logits`);
    }
    // Prompts that share a chat-template-like prefix: the resumed run still runs that prefix once, from layer `start`.
    const prefix = [3, 9, 27, 1, 14, 5];
    const shared = prompts.map((p) => [...prefix, ...p]);
    const unedited = residualStreamAt(await runForward({ model: forward, prompts: shared, positions: "all" }), start);
    const attention = Array.from({ length: layers }, (_, l) => (l >= start ? 0.7 : 0));
    const strengthsEdit = { ablation: { directions: [r], strengths: { embedding: 0, attention, mlp: attention } } };
    const fullShared = await runForward({ model: forward, prompts: shared, positions: "all", logits: "all", ...strengthsEdit });
    const resumedShared = await runForward({ model: forward, prompts: shared, positions: "all", logits: "all", ...strengthsEdit, resumeFrom: { layer: start, hidden: unedited } });
    assert.ok(resumedShared.sharedTokens >= prefix.length * (prompts.length - 1), `${resumedShared.sharedTokens} tokens shared`);
    assert.equal(fullShared.sharedTokens, resumedShared.sharedTokens);
    assert.deepEqual(resumedShared.logits, fullShared.logits, "shared prefix: logits");
    const last = (output: typeof fullShared) => residualStreamAt(output, layers);
    assert.deepEqual(last(resumedShared), last(fullShared), "shared prefix: the last stream");
    await assert.rejects(
      runForward({ model: forward, prompts: shared, positions: "last", ablation: { directions: [r], strengths: { embedding: 0, attention: attention.map((a, l) => (l === start - 1 ? 0.5 : a)), mlp: attention } }, resumeFrom: { layer: start, hidden: unedited } }),
      (error: unknown) => error instanceof AbliterateError && /below layer/.test(error.message),
    );
    await assert.rejects(
      runForward({ model: forward, prompts, positions: "last", ablation: { directions: [r] }, resumeFrom: { layer: start, hidden } }),
      (error: unknown) => error instanceof AbliterateError && /embedding/.test(error.message),
    );
    await assert.rejects(
      runForward({ model: forward, prompts, positions: "last", maxNewTokens: 2, resumeFrom: { layer: start, hidden } }),
      (error: unknown) => error instanceof AbliterateError && /generation/.test(error.message),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
