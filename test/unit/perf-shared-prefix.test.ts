/**
 * Shared prefixes in the prompt pass (native/core/forward/shared_prefix.cpp): a prompt that starts with tokens an
 * earlier prompt starts with (a chat template's system turn; one prompt under several continuations, as the
 * behaviour scorer's rows are) takes their keys and values from it instead of running them. Against running every
 * prompt whole (reusePrefix: false) the residual stream at every position and layer, the logits at every position
 * and the greedy tokens must agree to fp32 reassociation; against an independent fp64 forward pass within fp32
 * rounding.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { prefixShares } from "../../lib/engine/prefix-shares.js";
import { runForward, type ForwardRequest } from "../../lib/engine/run-forward.js";
import { hiddenBlock, relativeError } from "../golden/forward-golden.js";
import { normalGenerator, referenceLlamaForward, writeRandomLlama, writeTensors } from "../golden/random-llama.js";

test("prefixShares: each prompt's longest run of first tokens in common with an earlier prompt, and which one", () => {
  const shares = prefixShares([
    [1, 2, 3, 4],
    [1, 2, 3, 5, 6],
    [1, 2, 3, 5, 7, 8],
    [9, 9],
    [1, 2, 3, 4],
    [1, 2],
    [9, 9, 9, 1],
  ]);
  // Prompt 2 shares 4 tokens with prompt 1 (the deepest match), not 3 with prompt 0; prompt 4 repeats prompt 0 and
  // keeps its last token to run; prompt 5 is a prefix of prompt 0 and keeps its last token too.
  assert.deepEqual(Array.from(shares.source), [0, 0, 1, 0, 0, 0, 3]);
  assert.deepEqual(Array.from(shares.length), [0, 3, 4, 0, 3, 1, 2]);
  assert.equal(shares.sharedTokens, 13);
  assert.equal(prefixShares([[5]]).sharedTokens, 0);
});

test("shared prefixes run once; hidden states, logits and greedy tokens equal the whole-prompt pass", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-prefix-"));
  try {
    const model = writeRandomLlama(join(root, "model"), {
      hidden: 96, heads: 4, kvHeads: 2, headDim: 24, intermediate: 200, layers: 3, vocab: 53, dtype: "F32", tie: false, bias: true, seed: 17,
    });
    await writeTensors(model);
    const normal = normalGenerator(3);
    const token = () => Math.floor(Math.abs(normal() * 1000)) % 53;
    const tokens = (n: number) => Array.from({ length: n }, token);
    const prefix = tokens(37);
    // Suffixes of 1, 5 and 40 tokens (a prompt one token past the prefix, and one long enough for several attention
    // chunks); then prompts that share more than the common prefix: the 40-token one continued (a chain: its
    // source shares the prefix from prompt 0), the 5-token one's first 3 under another ending, a repeat, and a
    // prompt that shares nothing.
    const [a, b, c] = [1, 5, 40].map((n) => [...prefix, ...tokens(n)]);
    const prompts = [a, b, c, [...c, ...tokens(3)], [...b.slice(0, prefix.length + 3), ...tokens(2)], [...b], [52, 51, 50, 49, 48]];
    const forward = await loadForwardModel(model.dir);
    const base: ForwardRequest = { model: forward, prompts, positions: "all", logits: "all", mode: "resident", compute: "fp32" };
    const shared = await runForward(base);
    const whole = await runForward({ ...base, reusePrefix: false });
    assert.equal(shared.sharedTokens, 37 * 2 + 77 + 40 + 41);
    assert.equal(whole.sharedTokens, 0);
    const hiddenError = relativeError(shared.hidden, whole.hidden);
    assert.ok(hiddenError <= 1e-6, `hidden states differ by ${hiddenError}`);
    assert.ok(relativeError(shared.logits!, whole.logits!) <= 1e-6, "logits differ");

    // Both against the fp64 reference, so a bug common to both paths cannot hide.
    const points = 4;
    let offset = 0;
    prompts.forEach((ids, p) => {
      const reference = referenceLlamaForward(model, ids);
      for (let point = 1; point < points; point += 1) {
        const error = relativeError(hiddenBlock(shared.hidden, offset, ids.length, point, points, 96), reference[point]);
        assert.ok(error <= 1e-4, `prompt ${p}, point ${point}: ${error} against fp64`);
      }
      offset += ids.length;
    });

    // Generation: every prompt's keys and values, shared ones included, serve its decode steps.
    const generate: ForwardRequest = { model: forward, prompts, positions: "none", maxNewTokens: 6, eosTokenIds: [], compute: "fp32" };
    const sharedTokens = await runForward(generate);
    const wholeTokens = await runForward({ ...generate, reusePrefix: false });
    assert.equal(sharedTokens.sharedTokens, shared.sharedTokens);
    assert.deepEqual(sharedTokens.generated, wholeTokens.generated);

    // Streamed mode runs the same batch per layer; without a capture the stream is scattered once, for the head.
    const streamed = await runForward({ ...base, mode: "streamed" });
    assert.ok(relativeError(streamed.hidden, shared.hidden) === 0, "streamed differs from resident");
    const logitsOnly = await runForward({ ...base, positions: "none" });
    assert.deepEqual(logitsOnly.logits, shared.logits);

    // No prompt starts like an earlier one: nothing is shared.
    const distinct = await runForward({ ...base, prompts: [[1, 2, 3, 4, 5, 6], [2, 3, 9, 9]] });
    assert.equal(distinct.sharedTokens, 0);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
