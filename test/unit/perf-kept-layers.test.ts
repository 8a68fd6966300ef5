/**
 * Runs with keepWeights leave the layers they stage in the process for the next runs on the same, unchanged files
 * in the same arithmetic (native/core/forward/kept_layers.h), which then read none of them: the numbers are those of
 * runs that read every layer, bit for bit, edits, resumed runs and generated tokens included. A streamed run keeps
 * the first layers that fit what its budget leaves beside it and what the process holds, and streams the rest. The kept layers are freed
 * by a run that does not keep, by one in another arithmetic, and releaseKeptWeights(); a file replaced since is read
 * again.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { keptLayerBytes } from "../../lib/native/addon.js";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { releaseKeptWeights } from "../../lib/engine/release-kept-weights.js";
import { keptLayersBudget, STREAMED_KEPT_SLACK } from "../../lib/engine/memory-budget.js";
import { forwardModeOf, runForward, type ForwardRequest } from "../../lib/engine/run-forward.js";
import { goldenDir } from "../golden/golden-paths.js";
import { writeRandomLlama, writeTensors } from "../golden/random-llama.js";

const SHAPE = { hidden: 64, heads: 4, kvHeads: 2, headDim: 16, intermediate: 96, layers: 3, vocab: 61, dtype: "BF16", tie: false, bias: true } as const;

const same = (a: Float32Array | undefined, b: Float32Array | undefined) => a !== undefined && b !== undefined && a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
const prompts = [[4, 8, 15, 16, 23, 42], [7, 1, 9]];
const other = [[5, 9, 2, 6, 5, 3, 5, 8], [3]];

/** The SHAPE model of this seed, written under a fresh temporary folder (the caller removes `root`). */
async function randomModel(prefix: string, seed: number) {
  const root = mkdtempSync(join(tmpdir(), prefix));
  const written = writeRandomLlama(join(root, "model"), { ...SHAPE, seed });
  await writeTensors(written);
  return { root, model: await loadForwardModel(written.dir) };
}

test("kept layers serve later runs with the numbers of runs that read them, and go when a run cannot use them", async () => {
  const { root, model } = await randomModel("abl-kept-layers-", 41);
  try {
    const direction = Array.from({ length: SHAPE.hidden }, (_, i) => Math.sin(i + 1));
    const edit = { directions: [direction], strengths: { embedding: 0, attention: [0, 1, 0.5], mlp: [0, 1, 1] } };
    const run = (request: Partial<ForwardRequest>) =>
      runForward({ model, prompts, positions: "all", logits: "all", mode: "resident", compute: "auto", ...request });
    const layerBytes = model.layerBytes.reduce((a, b) => a + b, 0);

    // References, every layer read by each run.
    const plain = await run({});
    const plainOther = await run({ prompts: other });
    const plainEdited = await run({ prompts: other, ablation: edit });
    assert.equal(plain.stagedBytes, layerBytes, "a run reads every layer");
    assert.equal(plain.keptBytes, 0);
    assert.equal(keptLayerBytes(), 0, "a run without keepWeights keeps nothing");

    const first = await run({ keepWeights: true });
    assert.equal(first.stagedBytes, layerBytes, "the first keeping run reads every layer");
    assert.equal(first.keptBytes, 0);
    // Panels pad rows to whole panels and depth to whole blocks: more than the stored bytes at these small shapes.
    assert.ok(keptLayerBytes() >= layerBytes, `kept ${keptLayerBytes()} bytes for ${layerBytes} of layers`);
    const perLayer = keptLayerBytes() / SHAPE.layers;
    assert.ok(same(first.hidden, plain.hidden) && same(first.logits, plain.logits));

    const second = await run({ prompts: other, keepWeights: true });
    assert.equal(second.stagedBytes, 0, "a later run reads no layer");
    assert.equal(second.keptBytes, layerBytes);
    assert.ok(same(second.hidden, plainOther.hidden) && same(second.logits, plainOther.logits), "kept layers give the numbers of read ones");
    const edited = await run({ prompts: other, ablation: edit, keepWeights: true });
    assert.equal(edited.keptBytes, layerBytes);
    assert.ok(same(edited.logits, plainEdited.logits), "an edited run on kept layers");
    assert.ok(!same(edited.logits, second.logits), "the edit changes the logits");

    // Resumed at layer 1: only layers 1 and 2 are used, both found kept.
    const stream = new Float32Array(other.flat().length * SHAPE.hidden);
    const points = SHAPE.layers + 1;
    for (let row = 0; row < other.flat().length; row += 1) stream.set(plainOther.hidden.subarray((row * points + 1) * SHAPE.hidden, (row * points + 2) * SHAPE.hidden), row * SHAPE.hidden);
    const resumed = await run({ prompts: other, resumeFrom: { layer: 1, hidden: stream }, keepWeights: true });
    assert.equal(resumed.keptBytes, model.layerBytes[1] + model.layerBytes[2]);
    assert.ok(same(resumed.logits, plainOther.logits));

    // Another arithmetic uses other panels: it frees them and keeps its own; the first arithmetic then reads again.
    const fp32 = await run({ compute: "fp32", keepWeights: true });
    const auto = await run({ keepWeights: true });
    if (fp32.kernels !== auto.kernels) {
      assert.equal(fp32.keptBytes, 0, "another kernel table's layers are not used");
      assert.equal(auto.keptBytes, 0, "the other table's run freed the first table's layers");
    }
    assert.ok(same(auto.logits, plain.logits));

    // Generation runs its prompt pass and every decode step on the kept layers, with the tokens of one that packs
    // its own panels.
    const generation = { prompts: [...prompts, ...other], maxNewTokens: 6, positions: "none" as const, logits: "last" as const };
    const generatedPlain = await run(generation);
    assert.equal(keptLayerBytes(), 0);
    await run({ keepWeights: true });
    const generatedKept = await run({ ...generation, keepWeights: true });
    assert.equal(generatedKept.keptBytes, layerBytes, "generation found every layer kept");
    assert.equal(generatedKept.stagedBytes, 0);
    assert.ok(generatedKept.packedBytes < generatedPlain.packedBytes, `only the head is packed for the job (${generatedKept.packedBytes} of ${generatedPlain.packedBytes} bytes)`);
    assert.deepEqual(generatedKept.generated, generatedPlain.generated);
    assert.ok(same(generatedKept.logits, generatedPlain.logits));
    const generatedFilling = await run({ ...generation, compute: "fp32", keepWeights: true });
    const generatedFp32 = await run({ ...generation, compute: "fp32", keepWeights: true });
    assert.equal(generatedFp32.keptBytes, layerBytes, "a generation run keeps the layers it stages");
    assert.deepEqual(generatedFp32.generated, generatedFilling.generated);
    assert.deepEqual(generatedFp32.generated, (await run({ ...generation, compute: "fp32" })).generated);

    // A run that does not keep frees them first.
    await run({ keepWeights: true });
    assert.ok(keptLayerBytes() > 0);
    const freeing = await run({});
    assert.equal(freeing.keptBytes, 0);
    assert.equal(keptLayerBytes(), 0, "a run without keepWeights freed the kept layers");

    // A budget that leaves the kept layers room for two and a half layers' panels keeps two; the third runs unkept.
    const budget = (bytes: number) => plain.activationBytes + model.embedBytes + model.headBytes + bytes;
    await run({ keepWeights: true, maxMemoryBytes: budget(Math.max(layerBytes, 2.5 * perLayer)) });
    assert.equal(keptLayerBytes(), 2 * perLayer, "kept layers stay inside what the budget leaves them");
    const capped = await run({ prompts: other, keepWeights: true, maxMemoryBytes: budget(Math.max(layerBytes, 2.5 * perLayer)) });
    assert.equal(capped.keptBytes, model.layerBytes[0] + model.layerBytes[1]);
    assert.equal(capped.stagedBytes, model.layerBytes[2]);
    assert.ok(same(capped.logits, plainOther.logits));

    await run({ keepWeights: true });
    const held = keptLayerBytes();
    assert.equal(releaseKeptWeights(), held, "release returns the bytes it freed");
    assert.equal(keptLayerBytes(), 0);
    assert.equal((await run({ keepWeights: true })).keptBytes, 0, "after a release a run reads its layers again");
  } finally {
    releaseKeptWeights();
    rmSync(root, { recursive: true, force: true });
  }
});

test("streamed runs keep the first layers that fit what the budget leaves them, and read only the rest again", async () => {
  const { root, model } = await randomModel("abl-kept-streamed-", 43);
  try {
    const streamed = (request: Partial<ForwardRequest>) =>
      runForward({ model, prompts, positions: "all", logits: "all", mode: "streamed", compute: "auto", ...request });
    const [l0, l1, l2] = model.layerBytes;
    await runForward({ model, prompts, mode: "resident", compute: "auto", keepWeights: true });
    const perLayer = keptLayerBytes() / SHAPE.layers;
    releaseKeptWeights();
    const plain = await streamed({});
    const plainOther = await streamed({ prompts: other });
    // A budget that leaves two and a half layers' panels beside the run, its slack share, and what the process
    // holds (stated here: the test process's resident set is not this test's to fix).
    const heldBytes = 3 * perLayer;
    const probe: ForwardRequest = { model, prompts, positions: "all", logits: "all", mode: "streamed", compute: "auto", maxMemoryBytes: 1 << 30 };
    const budget = Math.ceil((forwardModeOf(probe).streamedBytes + heldBytes + 2.5 * perLayer) / (1 - STREAMED_KEPT_SLACK));
    assert.equal(forwardModeOf({ ...probe, maxMemoryBytes: budget, heldBytes }).streamedBytes, forwardModeOf(probe).streamedBytes, "the run's own peak does not depend on the budget here");
    assert.ok(Math.abs(keptLayersBudget(model, budget, forwardModeOf({ ...probe, maxMemoryBytes: budget, heldBytes }), heldBytes) - 2.5 * perLayer) <= 1);
    assert.equal(keptLayersBudget(model, budget, forwardModeOf({ ...probe, maxMemoryBytes: budget, heldBytes }), budget), 0, "a process that holds the budget keeps none");

    const first = await streamed({ keepWeights: true, maxMemoryBytes: budget, heldBytes });
    assert.equal(first.stagedBytes, l0 + l1 + l2, "the first keeping run reads every layer");
    assert.equal(keptLayerBytes(), 2 * perLayer, "it keeps the first two layers, which fit");
    assert.ok(same(first.logits, plain.logits) && same(first.hidden, plain.hidden));
    const second = await streamed({ prompts: other, keepWeights: true, maxMemoryBytes: budget, heldBytes });
    assert.equal(second.keptBytes, l0 + l1, "a later streamed run finds them kept");
    assert.equal(second.stagedBytes, l2, "and reads only the third");
    assert.ok(same(second.logits, plainOther.logits) && same(second.hidden, plainOther.hidden), "kept layers give the numbers of read ones");

    // A streamed generation runs its prompt pass and every decode step on them, with the resident run's tokens.
    const generation = { prompts: [...prompts, ...other], maxNewTokens: 6, positions: "none" as const, logits: "last" as const };
    const generatedResident = await runForward({ model, ...generation, mode: "resident", compute: "auto" });
    await streamed({ keepWeights: true, maxMemoryBytes: budget, heldBytes });
    const generated = await streamed({ ...generation, keepWeights: true, maxMemoryBytes: budget, heldBytes });
    assert.deepEqual(generated.generated, generatedResident.generated);
    assert.ok(same(generated.logits, generatedResident.logits));
    const passes = generated.keptBytes / (l0 + l1);
    assert.ok(Number.isInteger(passes) && passes > 1, `the prompt pass and each decode step found two layers kept (${generated.keptBytes} bytes)`);
    assert.equal(generated.stagedBytes, passes * l2, "and read only the third, once a pass");

    // A streamed run that allows less than a resident one kept frees the last layers until the rest fit.
    await runForward({ model, prompts, mode: "resident", compute: "auto", keepWeights: true });
    assert.equal(keptLayerBytes(), 3 * perLayer);
    const trimmed = await streamed({ prompts: other, keepWeights: true, maxMemoryBytes: budget, heldBytes });
    assert.equal(keptLayerBytes(), 2 * perLayer, "the third layer went");
    assert.equal(trimmed.keptBytes, l0 + l1);
    assert.equal(trimmed.stagedBytes, l2);
    assert.ok(same(trimmed.logits, plainOther.logits));

    // Unstated, what the process holds is its resident set: a budget below it leaves kept layers nothing, one of
    // twice it room for all three.
    const resident = process.memoryUsage.rss();
    await streamed({ keepWeights: true, maxMemoryBytes: budget });
    assert.equal(keptLayerBytes(), 0, `a budget of ${budget} bytes in a process of ${resident} keeps none`);
    await streamed({ keepWeights: true, maxMemoryBytes: 2 * resident + budget });
    assert.equal(keptLayerBytes(), 3 * perLayer);
  } finally {
    releaseKeptWeights();
    rmSync(root, { recursive: true, force: true });
  }
});

test("MoE layers a streamed run keeps hold their routed experts too: later runs read nothing, with the resident numbers", async () => {
  try {
    for (const name of ["mixtral", "qwen2-moe", "llama4"]) {
      const model = await loadForwardModel(join(goldenDir, "forward", name));
      const prompts = [[4, 8, 15, 16, 23], [7, 1, 9]];
      const pass = { model, prompts, logits: "all" as const, compute: "auto" as const };
      const resident = await runForward({ ...pass, mode: "resident" });
      const roomy = { mode: "streamed" as const, keepWeights: true, maxMemoryBytes: 2 * process.memoryUsage.rss() + 4 * model.totalBytes };
      const first = await runForward({ ...pass, ...roomy });
      const second = await runForward({ ...pass, ...roomy });
      const layerBytes = model.layerBytes.reduce((a, b) => a + b, 0);
      assert.equal(second.stagedBytes, 0, `${name}: a later streamed run reads no layer, no expert`);
      assert.equal(second.keptBytes, layerBytes, `${name}: every layer kept, experts included`);
      assert.ok(same(first.logits, resident.logits) && same(second.logits, resident.logits), `${name}: the resident run's logits`);
      const generation = { ...pass, logits: "last" as const, maxNewTokens: 5 };
      const generated = await runForward({ ...generation, ...roomy });
      assert.deepEqual(generated.generated, (await runForward({ ...generation, mode: "resident" })).generated, `${name}: the resident run's tokens`);
      assert.equal(generated.stagedBytes, 0);
      releaseKeptWeights();
    }
  } finally {
    releaseKeptWeights();
  }
});

test("GPT-2's transposed matrices: prompt passes keep them as stored, generation keeps nothing", async () => {
  try {
    const model = await loadForwardModel(join(goldenDir, "forward", "gpt2"));
    const prompts = [[4, 8, 15, 16, 23], [7, 1, 9]];
    const plain = await runForward({ model, prompts, logits: "all", mode: "resident", compute: "fp32" });
    await runForward({ model, prompts, logits: "all", mode: "resident", compute: "fp32", keepWeights: true });
    const kept = await runForward({ model, prompts, logits: "all", mode: "resident", compute: "fp32", keepWeights: true });
    assert.equal(kept.keptBytes, plain.stagedBytes);
    assert.ok(same(kept.logits, plain.logits));
    // Generation packs each transposed matrix for the job: with a kept copy beside it that would hold them twice.
    const generation = { model, prompts, positions: "none" as const, logits: "last" as const, maxNewTokens: 4, mode: "resident" as const, compute: "fp32" as const };
    const generated = await runForward({ ...generation, keepWeights: true });
    assert.equal(generated.keptBytes, 0);
    assert.equal(keptLayerBytes(), 0, "the generation freed the kept layers and kept none");
    assert.deepEqual(generated.generated, (await runForward(generation)).generated);
  } finally {
    releaseKeptWeights();
  }
});

test("a checkpoint file replaced since the layers were kept is read again", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-kept-replaced-"));
  try {
    const first = writeRandomLlama(join(root, "model"), { ...SHAPE, seed: 51 });
    await writeTensors(first);
    const second = writeRandomLlama(join(root, "other"), { ...SHAPE, seed: 52 });
    await writeTensors(second);
    const prompts = [[4, 8, 15, 16, 23, 42]];
    const run = async (dir: string, keepWeights: boolean) =>
      runForward({ model: await loadForwardModel(dir), prompts, positions: "all", mode: "resident", compute: "auto", keepWeights });
    const expected = await run(second.dir, false);
    const before = await run(first.dir, true);
    assert.equal((await run(first.dir, true)).keptBytes, before.stagedBytes, "unchanged, the kept layers serve");
    // Same path, same size, new inode: what an atomic rename of a new checkpoint leaves.
    renameSync(join(second.dir, "model.safetensors"), join(first.dir, "model.safetensors"));
    const replaced = await run(first.dir, true);
    assert.equal(replaced.keptBytes, 0, "a replaced file's layers are read anew");
    assert.ok(same(replaced.hidden, expected.hidden), "the run has the new weights' numbers");
    assert.ok(!same(replaced.hidden, before.hidden));
  } finally {
    releaseKeptWeights();
    rmSync(root, { recursive: true, force: true });
  }
});
