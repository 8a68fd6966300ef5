/**
 * The one command on a chat model trained with transformers (test/golden/trained/own-phrasing: a real BPE tokenizer,
 * safety-tuned to refuse in its own phrasing, "That is not something I will do." / "No. …", which no English phrase
 * list knows). With no layer and no marker given the pipeline must learn the refusal's openings from the model,
 * select, apply, verify and evaluate; and the search must do at least as well as the single-layer rule. This model is
 * not one where a single direction removes refusal cleanly (test/golden/trained/README.md): the figures are printed
 * for the record, the assertions are the mechanism and the ordering.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readTrainedPrompts, trainedModelDir } from "../golden/trained/trained-fixtures.js";
import { runtimeInfo } from "../../lib/native/addon.js";
import { runCli } from "../helpers/run-cli.js";

const ENV = { HF_HUB_OFFLINE: "1" };

test("trained model with its own refusal phrasing: learned signature, single-layer rule and search, both sets judged", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "abl-trained-"));
  try {
    writeFileSync(join(root, "h.txt"), [...readTrainedPrompts("harmfulTrain"), ...readTrainedPrompts("harmfulTest")].join("\n"));
    writeFileSync(join(root, "n.txt"), [...readTrainedPrompts("harmlessTrain"), ...readTrainedPrompts("harmlessTest")].join("\n"));
    const model = trainedModelDir("own-phrasing");
    const common = [model, "--harmful", join(root, "h.txt"), "--harmless", join(root, "n.txt"), "--work-dir", join(root, "work"), "--json"];
    const single = await runCli([...common, "--out", join(root, "single"), "--search", "single-layer"], { env: ENV });
    assert.equal(single.status, 0, single.stderr);
    const s = JSON.parse(single.stdout);
    const report = JSON.parse(readFileSync(join(root, "single", "report.json"), "utf8"));
    assert.deepEqual(report.signature.sequences.map((q: { text: string }) => q.text).sort(), ["No", "That"], "the model's own openings, learned");
    assert.equal(report.signature.coverage, 1);
    const tables = runtimeInfo().kernels.forwardCompute;
    assert.deepEqual(report.arithmetic, { directions: tables.fp32, scoring: tables.auto }, "BF16 weights: scoring in auto's bf16 table, directions in fp32");
    assert.equal(report.signature.leak, 0);
    assert.ok(s.evaluation.before.positiveBehaviour >= 0.9);
    assert.equal(s.evaluation.before.positiveMarked, 0, "no English refusal phrase matches this model's refusals");
    assert.ok(s.evaluation.after.positiveBehaviour < s.evaluation.before.positiveBehaviour);
    assert.ok(s.evaluation.negativeUnchanged >= 0.9, `unchanged ${s.evaluation.negativeUnchanged}`);

    const searched = await runCli([...common, "--out", join(root, "search"), "--trials", "12"], { env: ENV });
    assert.equal(searched.status, 0, searched.stderr);
    const o = JSON.parse(searched.stdout);
    const search = JSON.parse(readFileSync(join(root, "search", "report.json"), "utf8")).search;
    const trial0 = search.trials[0];
    const chosen = search.trials[search.chosen.number];
    t.diagnostic(
      `own-phrasing: single-layer (layer ${s.selectedLayer}) held-out refusal ${s.evaluation.before.positiveBehaviour} → ${s.evaluation.after.positiveBehaviour}, ` +
        `unchanged ${s.evaluation.negativeUnchanged}, KL ${s.evaluation.negativeKl.toFixed(4)}; search (${search.trials.length} trials, ${search.timing.totalSeconds.toFixed(1)} s) ` +
        `→ ${o.evaluation.after.positiveBehaviour}, unchanged ${o.evaluation.negativeUnchanged}, KL ${o.evaluation.negativeKl.toFixed(4)}`,
    );
    // The search can only improve on trial 0, the single-layer rule's edit, on the validation objectives (trial 0 is
    // feasible here: the single-layer rule's edit passes the walls, so both of its values were measured).
    assert.ok(trial0.feasible && trial0.values.every((v: number | null) => typeof v === "number"), JSON.stringify(trial0));
    assert.ok(chosen.values[0] <= trial0.values[0] + 1e-12 || chosen.values[1] <= trial0.values[1] + 1e-12);
    assert.ok(o.evaluation.negativeUnchanged >= 0.9);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
