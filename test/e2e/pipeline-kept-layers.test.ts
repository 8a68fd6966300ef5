/**
 * The one command's passes keep the model's layers between runs (runForward's keepWeights), and the pipeline frees
 * them before surgery streams the shards, and whenever the run ends, early or not: a library caller is not left
 * holding a model's weights.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writePlantedRefusalModel } from "../../lib/directions/planted-refusal-model.js";
import { keptLayerBytes } from "../../lib/native/addon.js";
import { runPipeline, type RunPipelineParams } from "../../lib/pipeline/run-pipeline.js";

test("the pipeline keeps layers while it scores, and frees them before surgery and when it stops early", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-pipeline-kept-"));
  try {
    const planted = await writePlantedRefusalModel({ dir: join(root, "model") });
    const params = (name: string): RunPipelineParams => ({
      modelDir: planted.dir,
      modelSource: "planted",
      workDir: join(root, `${name}.work`),
      outDir: join(root, name),
      builtinPrompts: true,
      selectionMethod: "single-layer",
      maxNewTokens: 4,
    });

    // To the start of surgery: layers kept once selection is done, none when surgery starts.
    const toSurgery = runPipeline(params("a"));
    let afterSelection = -1;
    let atSurgery = -1;
    for (let next = await toSurgery.next(); !next.done; next = await toSurgery.next()) {
      const event = next.value;
      if (event.type !== "stage") continue;
      if (event.stage === "selection" && event.status === "done") afterSelection = keptLayerBytes();
      if (event.stage === "surgery" && event.status === "start") {
        atSurgery = keptLayerBytes();
        await toSurgery.return(undefined as never);
        break;
      }
    }
    assert.ok(afterSelection > 0, `the scoring passes kept the layers (${afterSelection} bytes)`);
    assert.equal(atSurgery, 0, "surgery starts with no layers kept");

    // Stopped right after selection: the run's end frees them.
    const early = runPipeline(params("b"));
    for (let next = await early.next(); !next.done; next = await early.next()) {
      const event = next.value;
      if (event.type === "stage" && event.stage === "selection" && event.status === "done") {
        assert.ok(keptLayerBytes() > 0);
        await early.return(undefined as never);
        break;
      }
    }
    assert.equal(keptLayerBytes(), 0, "a run that ends early leaves no layers kept");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
