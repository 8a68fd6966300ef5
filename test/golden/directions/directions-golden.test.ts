/**
 * Candidate directions against HF transformers (generate-directions-golden.py): same tiny Llama (rebuilt
 * bit-identically by deterministic-llama.ts), SmolLM's real tokenizer and chat template. Token ids must match
 * exactly; every layer's mean difference must match at cosine ≥ 0.9999 (and in norm to 1e-4).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadForwardModel } from "../../../lib/engine/load-forward-model.js";
import { promptEncoder } from "../../../lib/directions/encode-prompts.js";
import { contrastMeans } from "../../../lib/directions/mean-difference.js";
import { readDirectionCandidates } from "../../../lib/direction-files/write-direction-candidates.js";
import { loadPromptTokenizer } from "../../../lib/tokenize/load-prompt-tokenizer.js";
import { goldenDir, tokenizerFixturesDir } from "../golden-paths.js";
import { writeGoldenLlama } from "./deterministic-llama.js";

test("directions match HF transformers at every layer (cos ≥ 0.9999), with the chat template's token ids", async () => {
  const expectedJson = JSON.parse(readFileSync(join(goldenDir, "directions", "expected.json"), "utf8"));
  const expected = await readDirectionCandidates(join(goldenDir, "directions", "expected.safetensors"));
  const root = mkdtempSync(join(tmpdir(), "abl-"));
  try {
    await writeGoldenLlama(join(root, "model"), join(tokenizerFixturesDir, "SmolLM-360M-Instruct"));
    const encode = promptEncoder(loadPromptTokenizer({ dir: join(root, "model") }), {});
    const harmful = (expectedJson.harmful as string[]).map(encode);
    const harmless = (expectedJson.harmless as string[]).map(encode);
    assert.deepEqual(harmful, expectedJson.input_ids.harmful);
    assert.deepEqual(harmless, expectedJson.input_ids.harmless);
    const ours = await contrastMeans({ model: await loadForwardModel(join(root, "model")), positive: harmful, negative: harmless });
    assert.equal(ours.directions.length, expected.directions.length);
    ours.directions.forEach((row, layer) => {
      const reference = expected.directions[layer];
      const norm = Math.hypot(...row);
      const referenceNorm = Math.hypot(...reference);
      // Every prompt ends with the same template tokens: at index 0 (embeddings) both sides see no difference.
      if (referenceNorm < 1e-9) {
        assert.ok(norm < 1e-6, `layer ${layer}: reference is zero, ours has norm ${norm}`);
        return;
      }
      let dot = 0;
      for (let i = 0; i < row.length; i += 1) dot += row[i] * reference[i];
      const cos = dot / (norm * referenceNorm);
      assert.ok(cos >= 0.9999, `layer ${layer}: cos ${cos}`);
      assert.ok(Math.abs(norm - referenceNorm) <= 1e-4 * referenceNorm + 1e-6, `layer ${layer}: norm ${norm} vs ${referenceNorm}`);
    });
    assert.ok(expected.directions.slice(1).every((row) => Math.hypot(...row) > 1e-3), "the golden has a real contrast past the embeddings");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
