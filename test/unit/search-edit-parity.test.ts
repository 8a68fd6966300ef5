/**
 * A search trial is scored through the engine's hooks; the chosen point is then applied by the streaming surgery with
 * per-tensor α. The two must be the same edit: for non-uniform profiles (one direction, projected; and each layer its
 * own direction, some writers off), the forward pass with the hook and the forward pass on the surgery's output agree
 * to fp32 precision. verify checks every tensor against its own recorded α.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resultOf } from "../../lib/event-channel.js";
import type { DirectionCandidates } from "../../lib/direction-files/write-direction-candidates.js";
import { concreteEdit, editSearchSetup } from "../../lib/directions/search-edit.js";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { runForward } from "../../lib/engine/run-forward.js";
import { writeEditFile } from "../../lib/pipeline/search-stage.js";
import { applyModel } from "../../lib/surgery/apply-model.js";
import { verifyModel } from "../../lib/surgery/verify-model.js";
import { normalGenerator, writeRandomLlama, writeTensors } from "../golden/random-llama.js";

const LAYERS = 4;
const D = 48;

function fakeCandidates(seed: number): DirectionCandidates {
  const normal = normalGenerator(seed);
  const rows = (zeroFirst: boolean) => Array.from({ length: LAYERS + 1 }, (_, i) => Float64Array.from({ length: D }, () => (zeroFirst && i === 0 ? 0 : normal())));
  return { directions: rows(true), positiveMean: rows(false), negativeMean: rows(false), positiveRows: 10, negativeRows: 10, metadata: {} } as unknown as DirectionCandidates;
}

function maxRelativeError(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i += 1) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

const POINTS = {
  "one direction, projected, a band of attention layers, MLP peaked, embedding off": {
    directionIndex: 2.4, directionScope: "global", projection: "projected",
    "embed.peak": -0.2, "attn.peak": 1.3, "attn.position": 1.5, "attn.floor": 0.3, "attn.distance": 1.2, "attn.outside": "zero",
    "mlp.peak": 0.8, "mlp.position": 2.6, "mlp.floor": 0.5, "mlp.distance": 2, "mlp.outside": "floor",
  },
  "each layer its own direction, strengths falling off, attention reflecting": {
    directionIndex: 1, directionScope: "per-layer", projection: "none",
    "embed.peak": 0.9, "attn.peak": 1.45, "attn.position": 0, "attn.floor": 0.1, "attn.distance": 3, "attn.outside": "floor",
    "mlp.peak": 0.6, "mlp.position": 3, "mlp.floor": 0, "mlp.distance": 1.5, "mlp.outside": "zero",
  },
} as const;

for (const [name, point] of Object.entries(POINTS)) {
  test(`hook = surgery with per-tensor α (${name})`, async () => {
    const root = mkdtempSync(join(tmpdir(), "abl-parity-"));
    try {
      const model = writeRandomLlama(join(root, "model"), { hidden: D, heads: 4, kvHeads: 2, headDim: 12, intermediate: 80, layers: LAYERS, vocab: 64, dtype: "F32", tie: false, bias: true, seed: 31 });
      await writeTensors(model);
      writeFileSync(join(model.dir, "generation_config.json"), "{}\n");
      const candidates = fakeCandidates(4);
      const setup = editSearchSetup({ candidates, numLayers: LAYERS });
      const concrete = concreteEdit({ point, setup, candidates });
      const alphas = [concrete.alphas.embed, ...concrete.alphas.attn, ...concrete.alphas.mlp];
      assert.ok(new Set(alphas.map((a) => a.toFixed(6))).size >= 4, `the profile is not uniform: ${alphas.join(", ")}`);
      assert.ok(alphas.includes(0), "some writer is off");

      const editFile = join(root, "edit.safetensors");
      const perLayer = await writeEditFile(editFile, concrete, D, point);
      const out = join(root, "edited");
      const applied = await resultOf(applyModel({ modelDir: model.dir, outDir: out, direction: editFile, perLayer, alphas: concrete.alphas }));
      assert.equal(applied.verified, true);
      const record = JSON.parse(readFileSync(join(out, "abliteration.json"), "utf8"));
      for (const tensor of record.tensors_changed) {
        const expected = tensor.kind === "embed" ? concrete.alphas.embed : (tensor.kind === "attn" ? concrete.alphas.attn : concrete.alphas.mlp)[tensor.layer];
        assert.equal(tensor.alpha, expected, `${tensor.name} records its own α`);
        assert.notEqual(tensor.alpha, 0, "writers at α = 0 are not edited");
      }

      const prompts = [[3, 9, 27, 1, 44, 12, 7], [5, 5, 60, 2], [11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47]];
      const original = await loadForwardModel(model.dir);
      const hooked = await runForward({ model: original, prompts, positions: "all", logits: "all", ablation: concrete.ablation });
      const surgical = await runForward({ model: await loadForwardModel(out), prompts, positions: "all", logits: "all" });
      const plain = await runForward({ model: original, prompts, positions: "all", logits: "all" });
      const hiddenError = maxRelativeError(hooked.hidden, surgical.hidden);
      const logitsError = maxRelativeError(hooked.logits!, surgical.logits!);
      assert.ok(hiddenError <= 1e-5 && logitsError <= 1e-5, `hook vs surgery: hidden ${hiddenError}, logits ${logitsError}`);
      assert.ok(maxRelativeError(plain.hidden, surgical.hidden) > 1e-2, "the edit changes the model, or the comparison proves nothing");

      // verify re-plans every tensor with its own recorded α; a record that claims another α fails it.
      const direction = editFile;
      assert.equal((await resultOf(verifyModel({ originalDir: model.dir, modifiedDir: out, direction }))).passed, true);
      const tampered = { ...record, alphas: { ...record.alphas, mlp: record.alphas.mlp.map((a: number, i: number) => (i === 3 ? a * 1.01 + 0.01 : a)) } };
      writeFileSync(join(out, "abliteration.json"), JSON.stringify(tampered));
      assert.equal((await resultOf(verifyModel({ originalDir: model.dir, modifiedDir: out, direction }))).passed, false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
}
