/**
 * The arithmetic key (lib/engine/forward-arithmetic.ts) on every forward golden: "auto" is named as fp32 exactly
 * when it sums as fp32 does, bit for bit, and as the bf16 table when its results differ. F16 and F32 checkpoints, a
 * BF16 one with F32 norms, and BF16 experts nested in MoE layers (qwen3-moe) are among them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { forwardArithmeticFor, forwardTableFor } from "../../lib/engine/forward-arithmetic.js";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { runForward } from "../../lib/engine/run-forward.js";
import { goldenDir } from "../golden/golden-paths.js";

const prompts = [
  [1, 5, 9, 3, 7, 2],
  [1, 4, 8],
];
const goldens = readdirSync(join(goldenDir, "forward"), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);

test("auto is keyed as fp32 exactly where it computes fp32's sums", async (t) => {
  assert.ok(goldens.length >= 10, `forward goldens: ${goldens}`);
  const bf16Runs = forwardTableFor("auto") !== forwardTableFor("fp32");
  const keyedAsBf16: string[] = [];
  for (const name of goldens) {
    const model = await loadForwardModel(join(goldenDir, "forward", name));
    const key = forwardArithmeticFor("auto", model);
    assert.equal(forwardArithmeticFor("fp32", model), forwardTableFor("fp32"), name);
    assert.equal(forwardArithmeticFor("bf16", model), forwardTableFor("bf16"), name);
    assert.equal(forwardArithmeticFor(undefined, model), forwardTableFor("fp32"), `${name}: absent means fp32`);
    const run = (compute: "fp32" | "auto") => runForward({ model, prompts, positions: "all", logits: "all", compute });
    const [fp32, auto] = [await run("fp32"), await run("auto")];
    const same = Buffer.from(fp32.hidden.buffer, fp32.hidden.byteOffset, fp32.hidden.byteLength).equals(Buffer.from(auto.hidden.buffer, auto.hidden.byteOffset, auto.hidden.byteLength)) &&
      Buffer.from(fp32.logits!.buffer, fp32.logits!.byteOffset, fp32.logits!.byteLength).equals(Buffer.from(auto.logits!.buffer, auto.logits!.byteOffset, auto.logits!.byteLength));
    if (key === forwardTableFor("fp32")) {
      assert.ok(same, `${name}: keyed as fp32 (${key}), so auto must return fp32's hidden states and logits bit for bit`);
    } else {
      keyedAsBf16.push(name);
      assert.equal(key, forwardTableFor("auto"), name);
      assert.ok(!same, `${name}: keyed as ${key}, so auto's results must differ from fp32's`);
    }
  }
  t.diagnostic(`keyed as the bf16 table: ${keyedAsBf16.join(", ") || "none"}`);
  if (bf16Runs) {
    // The BF16 goldens; gemma-bf16 and llama3-tied-bf16 keep F32 norms, qwen3-moe's BF16 matrices include its experts.
    for (const name of ["gemma-bf16", "llama3-tied-bf16", "qwen3-moe"]) assert.ok(keyedAsBf16.includes(name), `${name} holds BF16 matrices: ${keyedAsBf16}`);
    for (const name of ["llama", "mistral-f16", "gpt-neox-f16", "mixtral"]) assert.ok(!keyedAsBf16.includes(name), name);
  }
});
