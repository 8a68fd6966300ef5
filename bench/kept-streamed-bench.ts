/**
 * Kept layers in streamed runs (bench/selection-bench.ts calls this): the bench's dense 0.43B Llama and the
 * Mixtral-shaped MoE, each in a memory cgroup smaller than its weights, the page cache dropped first, so every pass
 * reads its layers from disk as on a machine with less memory than the model. Children alternate keepWeights off and on (the one command's setting),
 * each reporting its seconds and the bytes it read from storage (/proc/self/io read_bytes):
 * - a streamed generation (the case's 16 prompts × 16 new tokens): one read of the model per new token, less the
 *   layers kept at its prompt pass;
 * - search trials 1–19 in the scorer's waves (wave-bench.ts searchTrials), each pass reading what is not kept.
 * Skipped, saying so, where no writable memory cgroup (v1) exists.
 *
 * Run as a script with `kept-child <dir> <case.json> <keep 0|1> <budget> <group> <generation|search>` it is one of
 * those children.
 */
import { mkdirSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { completePrompts } from "../lib/directions/complete-prompts.js";
import { loadForwardModel } from "../lib/engine/load-forward-model.js";
import { keptLayerBytes } from "../lib/native/addon.js";
import { ensureCheckpoint, ensureMoeCheckpoint, MOE_GEOMETRY } from "./bench-checkpoints.js";
import { median, timed } from "./selection-bench.js";
import { CGROUP_ROOT, loadCaseInCgroup, runBenchChild, SEARCH_TRIALS, searchTrials, storageReadBytes } from "./wave-bench.js";

const NEW_TOKENS = 16;

type Measured = "generation" | "search";

interface KeptChildResult {
  seconds: number;
  readBytes: number;
  keptBytes: number;
  scores: unknown[];
}

async function keptChild(dir: string, casePath: string, keep: boolean, budget: number, group: string, measured: Measured): Promise<void> {
  const loaded = await loadCaseInCgroup(dir, casePath, group, budget);
  const c = loaded.c;
  const common = { ...loaded.common, keepWeights: keep };
  let result: KeptChildResult;
  if (measured === "search") {
    const trials = await searchTrials(c, common, 0);
    result = { seconds: trials.seconds, readBytes: trials.readBytes, keptBytes: keptLayerBytes(), scores: trials.scores };
  } else {
    const before = storageReadBytes();
    let ids: number[][] = [];
    const seconds = await timed(async () => (ids = (await completePrompts({ model: c.model, prompts: [...c.positive, ...c.negative], maxNewTokens: NEW_TOKENS, compute: "auto", maxMemoryBytes: budget, keepWeights: keep })).ids));
    result = { seconds, readBytes: storageReadBytes() - before, keptBytes: keptLayerBytes(), scores: ids };
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

/** The models and their cgroups: each about 0.7–0.8× its weights, over what its passes hold. */
const KEPT_CASES = [
  { name: "bench model (dense 0.43B)", ensure: ensureCheckpoint, budget: 600e6 },
  { name: `Mixtral-shaped MoE (${MOE_GEOMETRY.layers} layers × ${MOE_GEOMETRY.experts} experts)`, ensure: ensureMoeCheckpoint, budget: 900e6 },
];

export async function measureKeptFromDisk(cache: string, rounds: number): Promise<string[]> {
  const group = join(CGROUP_ROOT, `abliterate-kept-bench-${process.pid}`);
  try {
    mkdirSync(group);
  } catch (error) {
    return [`  models from disk, kept layers: skipped (no writable memory cgroup at ${CGROUP_ROOT}: ${(error as Error).message})`];
  }
  try {
    const lines: string[] = [];
    for (const { name, ensure, budget } of KEPT_CASES) {
      writeFileSync(join(group, "memory.limit_in_bytes"), String(budget));
      lines.push(...(await measureKeptCase(name, ensure(cache), budget, group, rounds)));
    }
    return lines;
  } finally {
    rmdirSync(group);
  }
}

async function measureKeptCase(name: string, dir: string, budget: number, group: string, rounds: number): Promise<string[]> {
  const model = await loadForwardModel(dir);
  const casePath = join(tmpdir(), `abliterate-kept-case-${process.pid}.json`);
  // The case comes from a process of its own, as the wave bench's does: one that mapped the model keeps its pages.
  runBenchChild(fileURLToPath(new URL("./wave-bench.js", import.meta.url)), ["waves-prepare", dir, casePath]);
  const lines: string[] = [];
  for (const measured of ["generation", "search"] as const) {
    const runs: Record<"off" | "on", KeptChildResult[]> = { off: [], on: [] };
    for (let round = 0; round < rounds; round += 1) {
      for (const kind of ["off", "on"] as const) {
        const out = runBenchChild(fileURLToPath(import.meta.url), ["kept-child", dir, casePath, kind === "on" ? "1" : "0", String(budget), group, measured]);
        runs[kind].push(JSON.parse(out) as KeptChildResult);
      }
    }
    const same = runs.off.every((r, i) => JSON.stringify(r.scores) === JSON.stringify(runs.on[i].scores));
    const [off, on] = [median(runs.off.map((r) => r.seconds)), median(runs.on.map((r) => r.seconds))];
    const [readOff, readOn] = [median(runs.off.map((r) => r.readBytes)), median(runs.on.map((r) => r.readBytes))];
    const what = measured === "generation" ? `streamed generation (16 prompts × ${NEW_TOKENS} new tokens)` : `search trials 1–${SEARCH_TRIALS} in the scorer's waves`;
    lines.push(
      `  ${name}, from disk (memory cgroup and budget ${(budget / 1e9).toFixed(2)} GB, weights ${(model.totalBytes / 1e9).toFixed(2)} GB; median of ${rounds}), compute auto: ${what}, layers kept off → on (${(runs.on[0].keptBytes / 1e9).toFixed(2)} GB kept): ` +
        `${off.toFixed(2)} s → ${on.toFixed(2)} s (${(off / on).toFixed(2)}×); read from storage ${(readOff / 1e9).toFixed(2)} → ${(readOn / 1e9).toFixed(2)} GB; ${measured === "generation" ? "tokens" : "scores"} ${same ? "identical" : "DIFFER"}`,
    );
  }
  rmSync(casePath, { force: true });
  return lines;
}

if (process.argv[2] === "kept-child") {
  const [dir, casePath, keep, budget, group, measured] = process.argv.slice(3);
  await keptChild(dir, casePath, keep === "1", Number(budget), group, measured === "search" ? "search" : "generation");
}
