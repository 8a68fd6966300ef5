/**
 * The shared-prefix prompt pass (native/core/forward/shared_prefix.cpp): prompts that start with the same tokens
 * (a chat template's system turn) run that prefix once and share its keys and values. Against running every prompt
 * whole (reusePrefix: false) the residual stream at every position and layer, the logits at every position and the
 * greedy tokens must agree to fp32 reassociation; against an independent fp64 forward pass within fp32 rounding.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { runForward, type ForwardRequest } from "../../lib/engine/run-forward.js";
import { hiddenBlock, relativeError } from "../golden/forward-golden.js";
import { normalGenerator, referenceLlamaForward, writeRandomLlama, writeTensors } from "../golden/random-llama.js";

test("a shared prompt prefix runs once; hidden states, logits and greedy tokens equal the whole-prompt pass", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-prefix-"));
  try {
    const model = writeRandomLlama(join(root, "model"), {
      hidden: 96, heads: 4, kvHeads: 2, headDim: 24, intermediate: 200, layers: 3, vocab: 53, dtype: "F32", tie: false, bias: true, seed: 17,
    });
    await writeTensors(model);
    const normal = normalGenerator(3);
    const token = () => Math.floor(Math.abs(normal() * 1000)) % 53;
    const prefix = Array.from({ length: 37 }, token);
    // Suffixes of 1, 5 and 40 tokens: a prompt one token past the prefix, and one long enough for several chunks.
    const prompts = [1, 5, 40].map((n) => [...prefix, ...Array.from({ length: n }, token)]);
    const forward = await loadForwardModel(model.dir);
    const base: ForwardRequest = { model: forward, prompts, positions: "all", logits: "all", mode: "resident", compute: "fp32" };
    const shared = await runForward(base);
    const whole = await runForward({ ...base, reusePrefix: false });
    assert.equal(shared.sharedPrefix, 37);
    assert.equal(whole.sharedPrefix, 0);
    const hiddenError = relativeError(shared.hidden, whole.hidden);
    assert.ok(hiddenError <= 1e-6, `hidden states differ by ${hiddenError}`);
    assert.ok(relativeError(shared.logits!, whole.logits!) <= 1e-6, "logits differ");

    // Both against the fp64 reference, so a bug common to both paths cannot hide.
    const points = 4;
    let offset = 0;
    prompts.forEach((tokens) => {
      const reference = referenceLlamaForward(model, tokens);
      for (let point = 1; point < points; point += 1) {
        const error = relativeError(hiddenBlock(shared.hidden, offset, tokens.length, point, points, 96), reference[point]);
        assert.ok(error <= 1e-4, `point ${point}: ${error} against fp64`);
      }
      offset += tokens.length;
    });

    const generate: ForwardRequest = { model: forward, prompts, positions: "none", maxNewTokens: 6, eosTokenIds: [], compute: "fp32" };
    const sharedTokens = await runForward(generate);
    const wholeTokens = await runForward({ ...generate, reusePrefix: false });
    assert.equal(sharedTokens.sharedPrefix, 37);
    assert.deepEqual(sharedTokens.generated, wholeTokens.generated);

    // Streamed mode runs the same two batches per layer.
    const streamed = await runForward({ ...base, mode: "streamed" });
    assert.ok(relativeError(streamed.hidden, shared.hidden) === 0, "streamed differs from resident");

    // No common prefix of MIN_SHARED_PREFIX tokens: nothing is shared.
    const distinct = await runForward({ ...base, prompts: [[1, 2, 3, 4, 5, 6], [1, 2, 3, 9, 9]] });
    assert.equal(distinct.sharedPrefix, 0);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
