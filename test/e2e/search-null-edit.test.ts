/**
 * The search never picks the unedited model. On a model whose distributions are flat where its greedy completions
 * show the signature (the planted refusal model with its final norm scaled by 2⁻¹², which keeps every argmax and so
 * every greedy token), the unedited model's behaviour score is already below the pick's bar (0.008 ≤ 0.05). A trial
 * whose α are all 0 then scored as the best point at zero damage, and the run ended in the surgery stage with
 * "nothing to edit" after the whole search. Found on the random-weight bench model (200 trials, 8 minutes).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUILTIN_HARMFUL_PROMPTS, BUILTIN_HARMLESS_PROMPTS } from "../../lib/directions/builtin-prompts.js";
import { readDirectionCandidates } from "../../lib/direction-files/write-direction-candidates.js";
import { writePlantedRefusalModel } from "../../lib/directions/planted-refusal-model.js";
import { concreteEdit, editSearchSetup, isNullEdit } from "../../lib/directions/search-edit.js";
import { readSafetensorsHeader } from "../../lib/safetensors/read-header.js";
import { runCli } from "../helpers/run-cli.js";

const ENV = { HF_HUB_OFFLINE: "1" };

test("a search whose null edit scores best still applies a real edit", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-null-edit-"));
  try {
    const planted = await writePlantedRefusalModel({ dir: join(root, "model") });
    const shard = join(planted.dir, "model.safetensors");
    const header = await readSafetensorsHeader(shard);
    const norm = header.tensors.find((t) => t.name === "model.norm.weight")!;
    assert.equal(norm.dtype, "F32");
    const bytes = readFileSync(shard);
    const values = new Float32Array(bytes.buffer, bytes.byteOffset + header.dataStart + norm.dataOffsets[0], (norm.dataOffsets[1] - norm.dataOffsets[0]) / 4);
    for (let i = 0; i < values.length; i += 1) values[i] *= 2 ** -12;
    writeFileSync(shard, bytes);
    writeFileSync(join(root, "harmful.txt"), BUILTIN_HARMFUL_PROMPTS.join("\n"));
    writeFileSync(join(root, "harmless.txt"), BUILTIN_HARMLESS_PROMPTS.join("\n"));
    const out = join(root, "out");
    const work = join(root, "work");
    // Seed 4 samples four null points in 40 trials (checked below, so a changed sampler fails loudly).
    const args = [planted.dir, "--harmful", join(root, "harmful.txt"), "--harmless", join(root, "harmless.txt"), "--out", out, "--work-dir", work, "--max-new-tokens", "4", "--trials", "40", "--seed", "4"];
    const run = await runCli(args, { env: ENV });
    assert.equal(run.status, 0, run.stderr);

    const baseline = JSON.parse(readFileSync(join(work, "candidate-scores.json"), "utf8")).baseline.positiveBehaviour;
    assert.ok(baseline <= 0.05, `the unedited model already scores below the bar: ${baseline}`);
    const search = JSON.parse(readFileSync(join(work, "search.json"), "utf8"));
    // Null points: every peak ≤ 0, or per-layer edits whose only positive peaks sit on unusable rows (stream 0 here).
    const candidates = await readDirectionCandidates(join(work, "directions.safetensors"));
    const setup = editSearchSetup({ candidates, numLayers: candidates.directions.length - 1 });
    const alphasOf = (params: never) => concreteEdit({ point: params, setup, candidates }).alphas;
    const nulls = search.trials.filter((t: { params: never }) => isNullEdit(alphasOf(t.params)));
    assert.ok(nulls.length > 0, "the search sampled null edits (else this test tests nothing: choose another seed)");
    for (const t of nulls) assert.ok(t.violation > 0 && !t.feasible, `null trial #${t.number} is infeasible`);
    const alphas = search.edit.alphas as { embed: number; attn: number[]; mlp: number[] };
    assert.ok([alphas.embed, ...alphas.attn, ...alphas.mlp].some((a) => a !== 0), `the chosen edit changes something: ${JSON.stringify(alphas)}`);
    assert.ok(JSON.parse(readFileSync(join(out, "abliteration.json"), "utf8")).tensors_changed.length > 0);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
