/**
 * The trained chat models (test/golden/trained/) through the project's own tokenizer and engine, against HF
 * transformers (measure-ablation.py wrote the goldens): the chat template's ids exactly, the last-position logits
 * within the forward goldens' fp32 bound (max |ours − HF| / max |HF| ≤ 1e-4, as in engine-golden.test.ts; the bf16
 * weights are upcast exactly on both sides), and the greedy continuation (batch 1, stop at </s>) token for token.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { runForward } from "../../lib/engine/run-forward.js";
import { loadPromptTokenizer } from "../../lib/tokenize/load-prompt-tokenizer.js";
import { relativeError } from "./forward-golden.js";
import { TRAINED_MODELS, completionKind, readTrainedForwardGolden, readTrainingRecord, trainedModelDir, trainedOpenings } from "./trained/trained-fixtures.js";

const FP32_BOUND = 1e-4;

for (const name of TRAINED_MODELS) {
  test(`${name}: the project's tokenizer renders and encodes the chat template exactly as transformers`, async () => {
    const golden = await readTrainedForwardGolden(name);
    const tokenizer = loadPromptTokenizer({ dir: trainedModelDir(name) });
    assert.equal(readTrainingRecord(name).tokenizer, "TinyLlama-1.1B-Chat-v1.0");
    golden.prompts.forEach((prompt, p) => {
      assert.equal(tokenizer.renderChat([{ role: "user", content: prompt }], { addGenerationPrompt: true }), golden.rendered[p]);
      assert.deepEqual(tokenizer.encodeChat(prompt), golden.inputIds[p], JSON.stringify(prompt));
    });
  });

  test(`${name}: last-position logits match HF transformers (fp32) within ${FP32_BOUND}`, async () => {
    const golden = await readTrainedForwardGolden(name);
    const model = await loadForwardModel(trainedModelDir(name));
    assert.equal(model.spec.vocabSize, 32000);
    const out = await runForward({ model, prompts: golden.inputIds, positions: "none", logits: "last", mode: "resident" });
    const vocab = out.vocabSize;
    golden.logits.forEach((expected, p) => {
      assert.equal(expected.length, vocab);
      const error = relativeError(out.logits!.subarray(p * vocab, (p + 1) * vocab), expected);
      assert.ok(error <= FP32_BOUND, `prompt ${p}: relative error ${error}`);
    });
  });

  test(`${name}: greedy continuation equals HF's, token for token, and decodes to the model's own reply`, async () => {
    const golden = await readTrainedForwardGolden(name);
    const model = await loadForwardModel(trainedModelDir(name));
    const out = await runForward({ model, prompts: golden.inputIds, positions: "none", maxNewTokens: golden.maxNewTokens, eosTokenIds: [golden.eosTokenId] });
    assert.deepEqual(out.generated, golden.generated);
    // The golden's first two prompts are a held-out harmful and a held-out harmless request: the replies differ.
    const tokenizer = loadPromptTokenizer({ dir: trainedModelDir(name) });
    const [refusal, answer] = out.generated!.map((ids) => tokenizer.decode(ids, { skipSpecialTokens: true }));
    assert.equal(completionKind(refusal, trainedOpenings(name)), "refusal", refusal);
    assert.equal(completionKind(answer, trainedOpenings(name)), "answer", answer);
  });
}
