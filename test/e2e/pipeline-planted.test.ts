/**
 * The one command on the planted-refusal model (a known direction p decides refusal): no direction file given, the
 * pipeline must find p, edit the weights, and show the refusal gone on held-out prompts with harmless behaviour
 * intact. A second run resumes every stage from the work dir.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUILTIN_HARMFUL_PROMPTS, BUILTIN_HARMLESS_PROMPTS } from "../../lib/directions/builtin-prompts.js";
import { writePlantedRefusalModel } from "../../lib/directions/planted-refusal-model.js";
import { readDirectionCandidates } from "../../lib/direction-files/write-direction-candidates.js";
import { runCli } from "../helpers/run-cli.js";

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i += 1) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / Math.sqrt(na * nb);
}

test("one command without --direction: finds the planted direction, removes refusal, keeps harmless behaviour", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-"));
  try {
    const planted = await writePlantedRefusalModel({ dir: join(root, "model") });
    writeFileSync(join(root, "harmful.txt"), BUILTIN_HARMFUL_PROMPTS.join("\n"));
    writeFileSync(join(root, "harmless.jsonl"), BUILTIN_HARMLESS_PROMPTS.map((text) => JSON.stringify({ instruction: text })).join("\n"));
    const out = join(root, "out");
    const args = [planted.dir, "--harmful", join(root, "harmful.txt"), "--harmless", join(root, "harmless.jsonl"), "--out", out, "--max-new-tokens", "6", "--trials", "40", "--json"];
    const env = { HF_HUB_OFFLINE: "1" };
    const first = await runCli(args, { env });
    assert.equal(first.status, 0, first.stderr);
    const result = JSON.parse(first.stdout);

    const candidates = await readDirectionCandidates(join(`${out}.work`, "directions.safetensors"));
    const chosen = result.selectedLayer as number;
    assert.ok(chosen >= 1 && chosen < 0.8 * planted.numLayers, `selected layer ${chosen}`);
    assert.ok(cosine(candidates.directions[chosen], planted.direction) >= 0.99, `cos = ${cosine(candidates.directions[chosen], planted.direction)}`);
    // Index 0 (the embedding of the same last template token for every prompt) carries no contrast.
    assert.equal(Math.hypot(...candidates.directions[0]), 0);

    const { evaluation } = result;
    assert.equal(evaluation.method, "generation");
    assert.ok(evaluation.positivePrompts >= 20);
    assert.ok(evaluation.before.positiveBehaviour >= 0.9, `before: ${evaluation.before.positiveBehaviour}`);
    assert.ok(evaluation.after.positiveBehaviour <= 0.05, `after: ${evaluation.after.positiveBehaviour}`);
    assert.ok(evaluation.before.negativeBehaviour <= 0.05);
    assert.ok(evaluation.negativeKl < 0.01, `KL ${evaluation.negativeKl}`);
    assert.ok(evaluation.negativeUnchanged >= 0.95, `unchanged ${evaluation.negativeUnchanged}`);
    assert.equal(evaluation.verdict, "ok");
    assert.equal(result.verification.passed, true);

    // The results travel with the checkpoint.
    const provenance = JSON.parse(readFileSync(join(out, "abliteration.json"), "utf8"));
    // The default search chose the edit (trial 0 is the single-layer rule's layer); the record says both.
    assert.equal(provenance.selection.layer, chosen);
    assert.ok(provenance.selection.search.trials >= 1, "the search is recorded");
    assert.ok(provenance.alphas, "every writer's α is recorded");
    assert.ok(provenance.tensors_changed.every((t: { alpha: number }) => Number.isFinite(t.alpha) && t.alpha !== 0));
    assert.equal(provenance.evaluation.after.positiveBehaviour, evaluation.after.positiveBehaviour);
    assert.ok(provenance.notes.some((note: string) => note.includes("harmful prompts refused 100% → 0%") && note.includes("harmless completions unchanged 100%")), provenance.notes.join("\n"));
    assert.ok(existsSync(join(out, "report.html")) && existsSync(join(out, "report.json")));

    const second = await runCli(args.filter((a) => a !== "--json"), { env });
    assert.equal(second.status, 0, second.stderr);
    for (const stage of ["prompts", "signature", "directions", "selection", "search", "evaluation"]) assert.match(second.stderr, new RegExp(`${stage}: reused`), second.stderr);
    assert.match(second.stderr, /surgery: reused/);

    // The same command after the harmful file was edited: its text is in the prompts key, so nothing downstream of
    // the prompts is reused (a key over the file's path alone would have answered with the old prompts).
    writeFileSync(join(root, "harmful.txt"), BUILTIN_HARMFUL_PROMPTS.slice(0, -8).join("\n"));
    const editedArgs = [planted.dir, "--harmful", join(root, "harmful.txt"), "--harmless", join(root, "harmless.jsonl"), "--out", join(root, "out2"), "--work-dir", `${out}.work`, "--max-new-tokens", "6", "--trials", "40"];
    const edited = await runCli(editedArgs, { env });
    assert.equal(edited.status, 0, edited.stderr);
    for (const stage of ["prompts", "signature", "directions", "selection", "evaluation"]) assert.doesNotMatch(edited.stderr, new RegExp(`${stage}: reused`), edited.stderr);
    const saved = JSON.parse(readFileSync(join(`${out}.work`, "prompts.json"), "utf8"));
    const harmfulCount = ["train", "validation", "test"].reduce((sum, split) => sum + saved.splits.positive[split].length, 0);
    assert.equal(harmfulCount, BUILTIN_HARMFUL_PROMPTS.length - 8);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("abliterate demo runs offline and prints before/after refusal rates and the report path", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-"));
  try {
    const run = await runCli(["demo", "--dir", root], { env: { HF_HUB_OFFLINE: "1" } });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /held-out harmful prompts: 100% before, 0% after/);
    const report = /report: (.*report\.html)/.exec(run.stdout);
    assert.ok(report && existsSync(report[1]), run.stdout);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("direction command writes [L+1, d] candidates whose selected row matches p; --no-chat-template is needed without a template", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-"));
  try {
    const planted = await writePlantedRefusalModel({ dir: join(root, "model") });
    writeFileSync(join(root, "pos.txt"), BUILTIN_HARMFUL_PROMPTS.slice(0, 40).join("\n"));
    writeFileSync(join(root, "neg.txt"), BUILTIN_HARMLESS_PROMPTS.slice(0, 40).join("\n"));
    const out = join(root, "dirs.safetensors");
    const run = await runCli(["direction", planted.dir, "--positive", join(root, "pos.txt"), "--negative", join(root, "neg.txt"), "--out", out]);
    assert.equal(run.status, 0, run.stderr);
    const candidates = await readDirectionCandidates(out);
    assert.equal(candidates.directions.length, planted.numLayers + 1);
    assert.ok(cosine(candidates.directions[2], planted.direction) >= 0.99);
    // The train split of the 40 (seed 0; 20 % validation and 20 % test held out).
    assert.equal(candidates.metadata.positive_prompts, "24");
    assert.match(candidates.metadata.positive_prompts_sha256, /^[0-9a-f]{64}$/);
    assert.match(candidates.metadata.positive_origin, /pos\.txt$/, "the candidates say where their prompts came from");
    assert.match(candidates.metadata.negative_origin, /neg\.txt$/);

    // An existing --out is replaced only with --force, and the file is left as it was.
    const before = readFileSync(out);
    const exists = await runCli(["direction", planted.dir, "--positive", join(root, "pos.txt"), "--negative", join(root, "neg.txt"), "--out", out]);
    assert.equal(exists.status, 1);
    assert.match(exists.stderr, /OUTPUT_EXISTS.*dirs\.safetensors: already exists; pass --force/);
    assert.deepEqual(readFileSync(out), before);
    // Never over the model's own files.
    const intoModel = await runCli(["direction", planted.dir, "--positive", join(root, "pos.txt"), "--negative", join(root, "neg.txt"), "--out", join(planted.dir, "model.safetensors"), "--force"]);
    assert.equal(intoModel.status, 1);
    assert.match(intoModel.stderr, /model\.safetensors lies inside the model/);

    // Without a chat template: a clear error, unless --no-chat-template.
    rmSync(join(planted.dir, "tokenizer_config.json"));
    const refused = await runCli(["direction", planted.dir, "--positive", join(root, "pos.txt"), "--negative", join(root, "neg.txt"), "--out", out, "--force"]);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /no chat template.*--no-chat-template/);
    const raw = await runCli(["direction", planted.dir, "--positive", join(root, "pos.txt"), "--negative", join(root, "neg.txt"), "--out", out, "--no-chat-template", "--force"]);
    assert.equal(raw.status, 0, raw.stderr);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
