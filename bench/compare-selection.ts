/**
 * `npm run bench:selection`: the single-layer rule against the search, on the planted models and on the trained
 * ones (test/golden/trained/), measured on the held-out split by the pipeline's own evaluation (greedy completions):
 * behaviour rate, KL and the share of negative completions unchanged, plus the search's time per trial and total.
 * BENCH_TRIALS sets the search's trials (default 120); BENCH_CASES a comma list of case names; BENCH_COMPUTE a comma
 * list of the forward arithmetics to run each case in (default "fp32,auto": the reference, and the one command's
 * default, which scores and evaluates BF16 models in bf16); BENCH_SEARCH_WAVE a comma list of search wave sizes
 * (--search-wave; default: the pipeline's own, 1 on these resident models), each a fresh search.
 * Not a test: it prints figures, it asserts nothing.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { TRIAL_STORE_FILE } from "../lib/directions/search/trial-store.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUILTIN_HARMFUL_PROMPTS, BUILTIN_HARMLESS_PROMPTS } from "../lib/directions/builtin-prompts.js";
import { PLANTED_COMMON_WORDS, PLANTED_TRIGGER_WORDS } from "../lib/directions/planted-refusal-model.js";
import type { ForwardCompute } from "../lib/engine/run-forward.js";
import { resultOf } from "../lib/event-channel.js";
import { runtimeInfo } from "../lib/native/addon.js";
import { runPipeline, type PipelineResult } from "../lib/pipeline/run-pipeline.js";
import { readTrainedPrompts, trainedModelDir } from "../test/golden/trained/trained-fixtures.js";
import { writePlantedChatModel, type PlantedChatSpec } from "../test/helpers/planted-chat-model.js";

interface Case {
  name: string;
  model: (dir: string) => Promise<string>;
  positive: readonly string[];
  negative: readonly string[];
}

const planted = (spec: Omit<PlantedChatSpec, "dir" | "triggers" | "words"> & Partial<Pick<PlantedChatSpec, "triggers">>) => async (dir: string) =>
  (await writePlantedChatModel({ dir, triggers: PLANTED_TRIGGER_WORDS, words: PLANTED_COMMON_WORDS, ...spec })).dir;
const trainedPrompts = { positive: [...readTrainedPrompts("harmfulTrain"), ...readTrainedPrompts("harmfulTest")], negative: [...readTrainedPrompts("harmlessTrain"), ...readTrainedPrompts("harmlessTest")] };
const twoPathwayPositive = BUILTIN_HARMLESS_PROMPTS.slice(0, 100).map((base, i) => `${base} ${i < 70 ? PLANTED_TRIGGER_WORDS[i % 30] : PLANTED_TRIGGER_WORDS[30 + (i % 30)]}`);

const CASES: Case[] = [
  { name: "planted: breaking candidates", model: planted({ behaviour: ["sorry", "i", "will", "not", "."], normal: ["sure", "here", "is", "the", "answer"], breakingLayer: 2 }), positive: BUILTIN_HARMFUL_PROMPTS, negative: BUILTIN_HARMLESS_PROMPTS },
  { name: "planted: shared first token", model: planted({ behaviour: ["i", "cannot", "help", "with", "that", "."], normal: ["i", "can", "help", "you", "now", "!"] }), positive: BUILTIN_HARMFUL_PROMPTS, negative: BUILTIN_HARMLESS_PROMPTS },
  {
    name: "planted: two pathways",
    model: planted({ behaviour: ["sorry", "no", "."], normal: ["sure", "here", "it", "is"], triggers: PLANTED_TRIGGER_WORDS.slice(0, 30), secondTriggers: PLANTED_TRIGGER_WORDS.slice(30) }),
    positive: twoPathwayPositive,
    negative: BUILTIN_HARMLESS_PROMPTS.slice(100),
  },
  { name: "trained: own-phrasing", model: async () => trainedModelDir("own-phrasing"), ...trainedPrompts },
  { name: "trained: shared-opening-bilingual", model: async () => trainedModelDir("shared-opening-bilingual"), ...trainedPrompts },
];

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;

async function run(c: Case, root: string, method: "single-layer" | "optimize", trials: number, compute: ForwardCompute, wave?: number): Promise<{ result?: PipelineResult; error?: string; seconds: number }> {
  const started = performance.now();
  // Each wave size searches afresh rather than continuing the trials of another.
  rmSync(join(root, `work-${compute}`, TRIAL_STORE_FILE), { force: true });
  try {
    const modelDir = await c.model(join(root, "model"));
    writeFileSync(join(root, "p.txt"), c.positive.join("\n"));
    writeFileSync(join(root, "n.txt"), c.negative.join("\n"));
    const result = await resultOf(
      runPipeline({
        modelDir,
        modelSource: c.name,
        workDir: join(root, `work-${compute}`),
        positive: join(root, "p.txt"),
        negative: join(root, "n.txt"),
        outDir: join(root, `out-${method}-${compute}${wave !== undefined ? `-wave${wave}` : ""}`),
        selectionMethod: method,
        search: { trials, ...(wave !== undefined ? { wave } : {}) },
        forward: { compute },
      }),
    );
    return { result, seconds: (performance.now() - started) / 1000 };
  } catch (error) {
    return { error: (error as Error).message.split("\n")[0], seconds: (performance.now() - started) / 1000 };
  }
}

async function main(): Promise<void> {
  const trials = Number(process.env.BENCH_TRIALS ?? 120);
  const only = process.env.BENCH_CASES?.split(",").map((s) => s.trim());
  const computes = (process.env.BENCH_COMPUTE ?? "fp32,auto").split(",").map((s) => s.trim()) as ForwardCompute[];
  const waves = process.env.BENCH_SEARCH_WAVE ? process.env.BENCH_SEARCH_WAVE.split(",").map((s) => Number(s.trim())) : [undefined];
  console.log(`selection: single-layer rule vs search (${trials} trials), held-out split, greedy completions; forward tables: ${JSON.stringify(runtimeInfo().kernels.forwardCompute)}`);
  console.log("| case | compute | method | behaviour before → after | negative unchanged | KL | search: trials, s/trial, total s | run s |");
  console.log("|---|---|---|---|---|---|---|---|");
  for (const c of CASES) {
    if (only && !only.some((name) => c.name.includes(name))) continue;
    const root = mkdtempSync(join(tmpdir(), "abl-bench-selection-"));
    try {
      const runs = computes.flatMap((compute) => [{ compute, method: "single-layer" as const, wave: undefined }, ...waves.map((wave) => ({ compute, method: "optimize" as const, wave }))]);
      for (const { compute, method, wave } of runs) {
        const { result, error, seconds } = await run(c, root, method, trials, compute, wave);
        if (!result) {
          console.log(`| ${c.name} | ${compute} | ${method} | failed: ${error} | | | | ${seconds.toFixed(1)} |`);
          continue;
        }
        const e = result.evaluation;
        const search = result.search ? `${result.search.trials.length}, ${(result.search.timing.totalSeconds / result.search.trials.length).toFixed(2)}, ${result.search.timing.totalSeconds.toFixed(1)}` : "–";
        console.log(`| ${c.name} | ${compute} | ${method}${result.search ? `${result.search.timing.wave > 1 ? `, waves of ${result.search.timing.wave}` : ""} (#${result.search.chosen.number})` : ` (layer ${result.layer})`} | ${pct(e.before.positiveBehaviour)} → ${pct(e.after.positiveBehaviour)} | ${pct(e.negativeUnchanged)} | ${e.negativeKl.toExponential(2)} | ${search} | ${seconds.toFixed(1)} |`);
      }
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }
}

await main();
