/**
 * Golden per family: tiny random checkpoints written by HF transformers `save_pretrained`, and the projected tensors
 * torch computed in fp64 (generate.py). Our apply must edit exactly the tensors the script edited (names found by
 * transformers' module structure and checked functionally there), each within 1 ulp of torch's result, leave
 * every other tensor byte-identical, and pass its own verify.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readCheckpoint } from "../../../lib/safetensors/read-checkpoint.js";
import { applyModel } from "../../../lib/surgery/apply-model.js";
import { verifyModel } from "../../../lib/surgery/verify-model.js";
import { drain, GOLDEN_DIRECTION, goldenExpectedPath, goldenModelDir, maxUlpDistance, readGoldenManifest, readTensor } from "../../helpers/family-fixtures.js";

const manifest = readGoldenManifest();

test("the golden set covers every family the issue names", () => {
  const expected = ["gemma", "gemma2", "gemma3", "gemma3_text", "gpt2", "gpt_neox", "llama", "llama4", "llama4_text", "mixtral", "olmo2", "phi3", "qwen2_moe", "qwen3_moe"];
  assert.deepEqual(Object.keys(manifest.families).sort(), expected);
  assert.equal(manifest.alpha, 1);
});

for (const [family, golden] of Object.entries(manifest.families)) {
  test(`golden ${family} (${golden.dtype}): edits match torch within 1 ulp, untouched tensors identical, verify passes`, async () => {
    const root = mkdtempSync(join(tmpdir(), "abl-golden-"));
    try {
      const model = goldenModelDir(family);
      const out = join(root, "out");
      const report = await drain(applyModel({ modelDir: model, outDir: out, direction: GOLDEN_DIRECTION, threads: 1 }));
      assert.equal(report.verified, true);

      const provenance = JSON.parse(readFileSync(join(out, "abliteration.json"), "utf8"));
      const changed = new Map<string, { post_norm?: string; orientation: string }>(provenance.tensors_changed.map((entry: { name: string }) => [entry.name, entry]));
      assert.deepEqual([...changed.keys()].sort(), Object.keys(golden.targets).sort(), "the edited set is exactly the writers transformers' modules expose");
      for (const [name, target] of Object.entries(golden.targets)) {
        assert.equal(changed.get(name)!.orientation, target.orientation, `${name} orientation`);
        assert.equal(changed.get(name)!.post_norm, target.post_norm, `${name} post-norm`);
      }
      // With no lm_head in the file, transformers ties it to the embedding (these configs say so too).
      assert.equal(provenance.tied_embeddings, !golden.lm_head_saved);

      const original = await readCheckpoint(model);
      const edited = await readCheckpoint(out);
      for (const [name, { shard }] of original.tensorLocations) {
        const before = await readTensor(shard.path, name);
        const after = await readTensor(edited.tensorLocations.get(name)!.shard.path, name);
        if (golden.targets[name]) {
          const expected = await readTensor(goldenExpectedPath(family), name);
          assert.equal(expected.dtype, after.dtype);
          assert.deepEqual(expected.shape, after.shape);
          const ulps = maxUlpDistance(after.bytes, expected.bytes, after.dtype);
          assert.ok(ulps <= 1, `${name}: ${ulps} ulp from torch's fp64 result`);
          assert.notDeepEqual(after.bytes, before.bytes, `${name} changed`);
        } else {
          assert.deepEqual(after.bytes, before.bytes, `${name} is untouched`);
        }
      }

      const verified = await drain(verifyModel({ originalDir: model, modifiedDir: out, direction: GOLDEN_DIRECTION, threads: 1 }));
      assert.equal(verified.passed, true, verified.failures.join("\n"));
      assert.equal(verified.tensorsChecked, Object.keys(golden.targets).length);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
}
