/**
 * --rank on planted models: one behaviour carried by two orthogonal trigger pathways (each writing its own mode
 * direction, read alike by the response) needs two directions — rank 1 leaves the second pathway's prompts in
 * behaviour mode, rank 2 removes both, rank auto stops at 2 — while a single pathway gets rank auto = 1. Each
 * discovered direction alone induces the behaviour when added, and the directions are orthogonal. Amplifying
 * (α < 0) a concept's subspace makes weakly marked prompts show the concept.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUILTIN_HARMLESS_PROMPTS } from "../../lib/directions/builtin-prompts.js";
import { PLANTED_COMMON_WORDS, PLANTED_TRIGGER_WORDS } from "../../lib/directions/planted-refusal-model.js";
import { loadDirectionFile } from "../../lib/direction-files/load-direction.js";
import { writePlantedChatModel } from "../helpers/planted-chat-model.js";
import { runCli } from "../helpers/run-cli.js";

const ENV = { HF_HUB_OFFLINE: "1" };
const FIRST = PLANTED_TRIGGER_WORDS.slice(0, 30);
const SECOND = PLANTED_TRIGGER_WORDS.slice(30);
const BEHAVIOUR = ["sorry", "no", "."];
const NORMAL = ["sure", "here", "it", "is"];

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i += 1) sum += a[i] * b[i];
  return sum;
}

/** 70 % of the positive prompts carry a first-pathway trigger, 30 % a second-pathway one. */
function promptSets() {
  const bases = BUILTIN_HARMLESS_PROMPTS.slice(0, 100);
  const positive = bases.map((base, i) => `${base} ${i < 70 ? FIRST[i % FIRST.length] : SECOND[i % SECOND.length]}`);
  return { positive, negative: BUILTIN_HARMLESS_PROMPTS.slice(100) };
}

async function setUp(name: string, twoPathways: boolean) {
  const root = mkdtempSync(join(tmpdir(), `abl-${name}-`));
  const planted = await writePlantedChatModel({ dir: join(root, "model"), behaviour: BEHAVIOUR, normal: NORMAL, triggers: FIRST, ...(twoPathways ? { secondTriggers: SECOND } : { triggers: PLANTED_TRIGGER_WORDS }), words: PLANTED_COMMON_WORDS });
  const sets = promptSets();
  writeFileSync(join(root, "h.txt"), sets.positive.join("\n"));
  writeFileSync(join(root, "n.txt"), sets.negative.join("\n"));
  const run = (out: string, extra: string[]) =>
    runCli([planted.dir, "--harmful", join(root, "h.txt"), "--harmless", join(root, "n.txt"), "--out", join(root, out), "--work-dir", join(root, "work"), "--max-new-tokens", "6", "--json", ...extra], { env: ENV });
  return { root, planted, run };
}

/** The held-out positive prompts that still show the behaviour after the edit, by pathway. */
function leftByPathway(report: { evaluation: { samples: { kind: string; prompt: string; behaviourAfter: boolean }[] } }) {
  return report.evaluation.samples;
}

test("two orthogonal pathways: rank 1 leaves one active, rank 2 removes both, rank auto stops at 2", async (t) => {
  const { root, planted, run } = await setUp("two-pathways", true);
  try {
    // The single-layer rule at rank 1 (the optimizer, free to mix rows and layers, is another matter).
    const one = await run("rank1", ["--search", "single-layer"]);
    assert.equal(one.status, 0, one.stderr);
    const r1 = JSON.parse(one.stdout);
    t.diagnostic(`rank 1: behaviour ${r1.evaluation.before.positiveBehaviour} → ${r1.evaluation.after.positiveBehaviour}, unchanged ${r1.evaluation.negativeUnchanged}`);
    assert.ok(r1.evaluation.after.positiveBehaviour >= 0.15, `rank 1 should leave the second pathway: ${r1.evaluation.after.positiveBehaviour}`);
    void leftByPathway;

    const two = await run("rank2", ["--rank", "2"]);
    assert.equal(two.status, 0, two.stderr);
    const r2 = JSON.parse(two.stdout);
    t.diagnostic(`rank 2: behaviour ${r2.evaluation.before.positiveBehaviour} → ${r2.evaluation.after.positiveBehaviour}, unchanged ${r2.evaluation.negativeUnchanged}`);
    assert.ok(r2.evaluation.after.positiveBehaviour <= 0.05, `rank 2: ${r2.evaluation.after.positiveBehaviour}`);
    assert.ok(r2.evaluation.negativeUnchanged >= 0.95);
    const record = JSON.parse(readFileSync(join(root, "rank2", "abliteration.json"), "utf8"));
    assert.equal(record.direction.kind, "subspace");
    assert.equal(record.direction.rank, 2);

    const auto = await run("auto", ["--rank", "auto"]);
    assert.equal(auto.status, 0, auto.stderr);
    const ra = JSON.parse(auto.stdout);
    const report = JSON.parse(readFileSync(join(root, "auto", "report.json"), "utf8"));
    const steps = report.subspace.steps;
    t.diagnostic(`rank auto: ${steps.length} directions at layers ${steps.map((s: { layer: number }) => s.layer).join(", ")}; behaviour left ${report.subspace.baseline.positiveBehaviour.toFixed(3)} → ${steps.map((s: { behaviour: number }) => s.behaviour.toFixed(3)).join(" → ")}; induced alone ${steps.map((s: { induced: number }) => s.induced.toFixed(3)).join(", ")} (unedited ${report.subspace.baseline.negativeBehaviour.toFixed(3)}); stopped: ${report.subspace.stopped}`);
    assert.equal(steps.length, 2, report.subspace.stopped);
    assert.ok(ra.evaluation.after.positiveBehaviour <= 0.05);
    // Orthogonal by construction; each one alone induces the behaviour on negative prompts.
    assert.ok(Math.abs(report.subspace.cosines[0][1]) < 1e-9);
    for (const step of steps) assert.ok(step.induced > 0.5, `induced ${step.induced}`);
    // Together they span the planted pathways.
    const file = await loadDirectionFile(join(root, "work", "subspace.safetensors"));
    const rows = file.rows;
    for (const p of [planted.direction, planted.secondDirection!]) {
      const inSpan = Math.hypot(...rows.map((r) => dot(r, p)));
      assert.ok(inSpan > 0.98, `|projection of a planted direction on the subspace| = ${inSpan}`);
    }
    const html = readFileSync(join(root, "auto", "report.html"), "utf8");
    assert.match(html, /<h2>Subspace: 2 orthogonal direction\(s\)<\/h2>/);
    assert.match(html, /behaviour left<\/text>/);
    assert.match(html, /induced on harmless<\/text>/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("one pathway: rank auto stops at 1, and the direction command writes the subspace file", async (t) => {
  const { root, planted, run } = await setUp("one-pathway", false);
  try {
    const auto = await run("auto", ["--rank", "auto"]);
    assert.equal(auto.status, 0, auto.stderr);
    const report = JSON.parse(readFileSync(join(root, "auto", "report.json"), "utf8"));
    t.diagnostic(`one pathway, rank auto: ${report.subspace.steps.length} direction(s); stopped: ${report.subspace.stopped}`);
    assert.equal(report.subspace.steps.length, 1);
    assert.ok(JSON.parse(auto.stdout).evaluation.after.positiveBehaviour <= 0.05);

    const out = join(root, "sub.safetensors");
    const direction = await runCli(["direction", planted.dir, "--harmful", join(root, "h.txt"), "--harmless", join(root, "n.txt"), "--out", out, "--rank", "auto"], { env: ENV });
    assert.equal(direction.status, 0, direction.stderr);
    assert.match(direction.stdout, /wrote .*sub\.safetensors: subspace \[1, 64\]/);
    const file = await loadDirectionFile(out);
    assert.equal(file.kind, "subspace");
    assert.ok(Math.abs(dot(file.rows[0], planted.direction)) > 0.99);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("steering: amplifying (α = −3) the formality subspace makes weakly formal prompts formal and leaves plain ones alone", async (t) => {
  const FORMAL = ["kindly", "dear", "sir", "madam", "respectfully", "sincerely", "humbly", "esteemed", "cordially", "regards"];
  const TOPICS = ["explain how a rainbow forms", "describe the water cycle", "summarize the plot of a novel", "give me a recipe for soup", "tell me about the moon", "list three uses of copper", "write a short poem about autumn", "explain how to tie a knot", "describe a good morning routine", "suggest a name for a cat"];
  const root = mkdtempSync(join(tmpdir(), "abl-steer-"));
  try {
    // "please" marks a prompt as formal at a fifth of a formal word's strength: below the mode's threshold.
    const planted = await writePlantedChatModel({ dir: join(root, "model"), behaviour: ["dear", "sir", ",", "certainly", "."], normal: ["hey", ",", "sure", "thing", "!"], triggers: FORMAL, weakTriggers: { please: 0.2 }, words: [...PLANTED_COMMON_WORDS, "now", "quick", "question"] });
    writeFileSync(join(root, "formal.txt"), FORMAL.flatMap((w) => TOPICS.map((topic) => `${w}, ${topic}`)).join("\n"));
    writeFileSync(join(root, "casual.txt"), TOPICS.flatMap((topic) => [topic, `${topic} now`, `quick question: ${topic}`]).join("\n"));
    const sub = join(root, "formality.safetensors");
    const found = await runCli(["direction", planted.dir, "--positive", join(root, "formal.txt"), "--negative", join(root, "casual.txt"), "--out", sub, "--rank", "1"], { env: ENV });
    assert.equal(found.status, 0, found.stderr);
    const amplified = await runCli(["apply", planted.dir, "--direction", sub, "--scale", "-3", "--out", join(root, "more-formal")], { env: ENV });
    assert.equal(amplified.status, 0, amplified.stderr);
    const { loadForwardModel } = await import("../../lib/engine/load-forward-model.js");
    const { runForward } = await import("../../lib/engine/run-forward.js");
    const { loadPromptTokenizer } = await import("../../lib/tokenize/load-prompt-tokenizer.js");
    const tokenizer = loadPromptTokenizer({ dir: planted.dir });
    const prompts = [...TOPICS.map((topic) => `please ${topic}`), ...TOPICS];
    const complete = async (dir: string) => {
      const output = await runForward({ model: await loadForwardModel(dir), prompts: prompts.map((p) => tokenizer.encodeChat(p)), positions: "none", maxNewTokens: 6 });
      return output.generated!.map((ids) => tokenizer.decode(ids, { skipSpecialTokens: true }));
    };
    const before = await complete(planted.dir);
    const after = await complete(join(root, "more-formal"));
    const formal = (texts: string[]) => texts.filter((text) => text.startsWith("dear sir")).length;
    t.diagnostic(`"please …" prompts formal: ${formal(before.slice(0, 10))}/10 before, ${formal(after.slice(0, 10))}/10 after; plain prompts formal: ${formal(before.slice(10))}/10 before, ${formal(after.slice(10))}/10 after`);
    assert.equal(formal(before.slice(0, 10)), 0);
    assert.equal(formal(after.slice(0, 10)), 10);
    assert.deepEqual(after.slice(10), before.slice(10), "prompts without the concept are unchanged: amplifying scales what is there");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
