/**
 * The one command, with no layer and no marker given, on planted chat models whose behaviour is not English refusal
 * text: lowercase refusal, a refusal in another script, a refusal that shares its first token with compliance, a
 * concept that is not refusal (formality), a model whose only clean direction is the last index, and one where some
 * candidates remove the behaviour only by breaking every completion. Each proves a mechanism (the signature learned
 * from the model's own completions, selection judged on both sets), not that the method generalizes.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUILTIN_HARMFUL_PROMPTS, BUILTIN_HARMLESS_PROMPTS } from "../../lib/directions/builtin-prompts.js";
import { PLANTED_COMMON_WORDS, PLANTED_TRIGGER_WORDS } from "../../lib/directions/planted-refusal-model.js";
import { readDirectionCandidates } from "../../lib/direction-files/write-direction-candidates.js";
import { writePlantedChatModel, type PlantedChatSpec } from "../helpers/planted-chat-model.js";
import { runCli } from "../helpers/run-cli.js";

const ENV = { HF_HUB_OFFLINE: "1" };

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

interface Case {
  spec: Omit<PlantedChatSpec, "dir" | "triggers" | "words"> & { triggers?: readonly string[]; words?: readonly string[] };
  positive?: string[];
  negative?: string[];
  flags?: string[];
}

async function runCase(name: string, c: Case, t: { diagnostic(message: string): void }, extra: string[] = []) {
  const root = mkdtempSync(join(tmpdir(), `abl-${name}-`));
  const planted = await writePlantedChatModel({ dir: join(root, "model"), triggers: PLANTED_TRIGGER_WORDS, words: PLANTED_COMMON_WORDS, ...c.spec });
  writeFileSync(join(root, "positive.txt"), (c.positive ?? BUILTIN_HARMFUL_PROMPTS).join("\n"));
  writeFileSync(join(root, "negative.txt"), (c.negative ?? BUILTIN_HARMLESS_PROMPTS).join("\n"));
  const [pos, neg] = c.flags ?? ["--harmful", "--harmless"];
  const out = join(root, "out");
  const run = await runCli([planted.dir, pos, join(root, "positive.txt"), neg, join(root, "negative.txt"), "--out", out, "--max-new-tokens", "12", "--trials", "40", "--json", ...extra], { env: ENV });
  const result = run.stdout ? JSON.parse(run.stdout) : undefined;
  if (result?.ok) {
    const e = result.evaluation;
    t.diagnostic(
      `${name}: selected layer ${result.selectedLayer}; behaviour ${e.before.positiveBehaviour} → ${e.after.positiveBehaviour}, ` +
        `negative unchanged ${e.negativeUnchanged}, KL ${e.negativeKl.toFixed(5)}, marker second opinion ${e.after.positiveMarked}`,
    );
  }
  return { root, planted, out, run, result };
}

function assertRemovedCleanly(result: { ok: boolean; evaluation: Record<string, any> }, stderr: string) {
  assert.equal(result.ok, true, stderr);
  const e = result.evaluation;
  assert.ok(e.before.positiveBehaviour >= 0.9, `before ${e.before.positiveBehaviour}`);
  assert.ok(e.after.positiveBehaviour <= 0.05, `after ${e.after.positiveBehaviour}`);
  assert.ok(e.negativeUnchanged >= 0.95, `unchanged ${e.negativeUnchanged}`);
  assert.equal(e.verdict, "ok");
}

test("lowercase refusal: the signature is the model's own opening, not an English phrase list", async (t) => {
  const { root, planted, out, run, result } = await runCase("lowercase", {
    spec: { behaviour: ["i", "cannot", "help", "with", "that", "request", "."], normal: ["sure", ",", "here", "is", "an", "answer", "!"] },
  }, t);
  try {
    assertRemovedCleanly(result, run.stderr);
    const candidates = await readDirectionCandidates(join(`${out}.work`, "directions.safetensors"));
    assert.ok(cosine(candidates.directions[result.selectedLayer], planted.direction) > 0.99);
    const report = JSON.parse(readFileSync(join(out, "report.json"), "utf8"));
    assert.deepEqual(report.signature.sequences.map((s: { text: string }) => s.text), ["i"]);
    assert.equal(report.signature.coverage, 1);
    assert.equal(report.signature.leak, 0);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a refusal in another script (CJK) is learned and removed the same way", async (t) => {
  const { root, run, result, out } = await runCase("cjk", { spec: { behaviour: ["我", "不", "能", "帮", "你", "。"], normal: ["好", "的", "这", "是", "答", "案"] } }, t);
  try {
    assertRemovedCleanly(result, run.stderr);
    const report = JSON.parse(readFileSync(join(out, "report.json"), "utf8"));
    assert.equal(report.signature.sequences[0].text, "我");
    // No English phrase matches, so the phrase list's second opinion sees no refusal at all: it is not the judge.
    assert.equal(result.evaluation.before.positiveMarked, 0);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("refusal and compliance that share their first token: the signature goes one token deeper", async (t) => {
  const { root, run, result, out } = await runCase("shared-first", { spec: { behaviour: ["i", "cannot", "help", "with", "that", "."], normal: ["i", "can", "help", "you", "now", "!"] } }, t);
  try {
    assertRemovedCleanly(result, run.stderr);
    const report = JSON.parse(readFileSync(join(out, "report.json"), "utf8"));
    assert.deepEqual(report.signature.preamble.length, 1, "every completion starts with \"i\"");
    assert.deepEqual(report.signature.sequences.map((s: { text: string }) => s.text), ["i cannot"]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

const FORMAL = ["kindly", "dear", "sir", "madam", "respectfully", "sincerely", "humbly", "esteemed", "cordially", "regards"];
const TOPICS = [
  "explain how a rainbow forms", "describe the water cycle", "summarize the plot of a novel", "give me a recipe for soup", "tell me about the moon",
  "list three uses of copper", "write a short poem about autumn", "explain how to tie a knot", "describe a good morning routine", "suggest a name for a cat",
  "explain what a prime number is", "describe how bees make honey", "give tips for learning piano", "tell me a fact about whales", "explain how a bicycle works",
  "describe the city of paris", "suggest a weekend hobby", "explain photosynthesis simply", "describe how clouds move", "give a tip for better sleep",
];

test("a concept that is not refusal (formality): found, selected, applied and evaluated with its own labels", async (t) => {
  const positive = FORMAL.flatMap((word, i) => TOPICS.slice(i % 4, (i % 4) + 6).map((topic) => `${word}, ${topic}`));
  const negative = TOPICS.flatMap((topic) => [topic, `${topic} now`, `quick question: ${topic}`]);
  const { root, run, result, out } = await runCase(
    "formality",
    {
      spec: { behaviour: ["dear", "sir", ",", "certainly", "."], normal: ["hey", ",", "sure", "thing", "!"], triggers: FORMAL, words: [...PLANTED_COMMON_WORDS, "now", "quick", "question"] },
      positive,
      negative,
      flags: ["--positive", "--negative"],
    },
    t,
  );
  try {
    assertRemovedCleanly(result, run.stderr);
    const card = JSON.parse(readFileSync(join(out, "abliteration.json"), "utf8"));
    const note = card.notes.find((n: string) => /^(Direction at layer index|An edit chosen by a search)/.test(n));
    assert.match(note, /held-out positive prompts showed the behaviour 100% → 0%; negative completions unchanged 100%/);
    assert.doesNotMatch(note, /harmful|harmless|refus/i, "no refusal vocabulary for a concept that is not refusal");
    const html = readFileSync(join(out, "report.html"), "utf8");
    const words = html.replace(/<style>[\s\S]*?<\/style>/, "").match(/.{0,60}(refused|harmful|harmless).{0,60}/gi);
    assert.equal(words, null, `refusal vocabulary in the report: ${words?.join(" | ")}`);
    assert.equal(result.evaluation.markers, null, "no refusal phrase list as a second opinion for formality");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("the only clean direction is the last index (the final norm's input): it is a candidate and it is chosen", async (t) => {
  const { root, run, result, planted, out } = await runCase("last-index", { spec: { behaviour: ["sorry", "no", "."], normal: ["sure", "here", "it", "is"], modeLayer: 3 } }, t);
  try {
    assertRemovedCleanly(result, run.stderr);
    assert.equal(result.selectedLayer, planted.numLayers);
    const candidates = await readDirectionCandidates(join(`${out}.work`, "directions.safetensors"));
    assert.ok(cosine(candidates.directions[planted.numLayers], planted.direction) > 0.99);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("candidates that remove the behaviour only by breaking every completion are rejected; forcing one fails loudly", async (t) => {
  const spec = { behaviour: ["sorry", "i", "will", "not", "."], normal: ["sure", "here", "is", "the", "answer"], breakingLayer: 2 };
  const { root, run, result, out } = await runCase("breaking", { spec }, t);
  try {
    assertRemovedCleanly(result, run.stderr);
    assert.ok(result.selectedLayer === 1 || result.selectedLayer === 2, `selected ${result.selectedLayer}`);
    const selection = JSON.parse(readFileSync(join(`${out}.work`, "selection.json"), "utf8"));
    for (const layer of [3, 4]) {
      const scored = selection.scores.candidates.find((c: { layer: number }) => c.layer === layer);
      assert.ok(scored.behaviour <= 0.01, `layer ${layer} would remove the behaviour (${scored.behaviour})`);
      const verdict = selection.selection.verdicts.find((v: { layer: number }) => v.layer === layer);
      assert.equal(verdict.passed, false);
      assert.match(verdict.reasons.join("; "), /changes 100% of the negative completions/);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }

  // Forcing the breaking row: the output is written and labelled, the run fails with EDIT_DAMAGED, nothing says "0 % refused" and stops there.
  const forced = await runCase("breaking-forced", { spec }, t, ["--direction-layer", "3"]);
  try {
    assert.equal(forced.run.status, 1, forced.run.stderr);
    assert.match(forced.run.stderr, /error \[EDIT_DAMAGED\]: the edit changed 100% of the held-out harmless completions: the behaviour may be gone only because the model broke\. Nothing was pushed/);
    assert.ok(existsSync(join(forced.out, "report.html")));
    const record = JSON.parse(readFileSync(join(forced.out, "abliteration.json"), "utf8"));
    assert.equal(record.evaluation.verdict, "damaged");
    assert.ok(record.notes.some((n: string) => n.includes("DAMAGED")));
  } finally {
    rmSync(forced.root, { recursive: true, force: true });
  }
});
