/**
 * Waves of edits in the selection bench (bench/selection-bench.ts calls these): a model that does not fit the
 * budget streams its layers through every pass, and the scorer runs the candidates' passes (behaviour, then damage
 * and addition in the selection's order) several edits at a time (runForward's `wave`), each layer read once per
 * wave. Two measurements, each alternating one edit a pass (waveSize 1) with the scorer's own wave size:
 * - the bench's 0.43B Llama under a budget of 0.9× its weights, its layers in the page cache (what a wave saves is
 *   their copying and packing);
 * - the Mixtral-shaped MoE (bench-checkpoints.ts) in a child process inside a memory cgroup smaller than the model,
 *   the page cache dropped first, so every pass reads its layers from disk as on a machine with less memory than
 *   the model; the child reports the bytes it read from storage (/proc/self/io read_bytes). Skipped, saying so,
 *   where no writable memory cgroup (v1) exists. Measured twice: the selection's candidates, and search trials
 *   (the search's first startup points after trial 0, which a search in waves and one a trial at a time both run,
 *   scored the search's way: lib/directions/score-trials.ts, one wave of points at a time).
 *
 * Run as a script with `waves-prepare <dir> <case.json>` or `waves-child <dir> <case.json> <waveSize> <budget> <group> <selection|search>`
 * it is one of those children.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createEditScorer } from "../lib/directions/edit-scorer.js";
import { scoreCandidates, type CandidateScores } from "../lib/directions/score-candidates.js";
import { scoreTrials } from "../lib/directions/score-trials.js";
import { editSearchSetup } from "../lib/directions/search-edit.js";
import { suggestTrial } from "../lib/directions/search/suggest-trial.js";
import { loadForwardModel } from "../lib/engine/load-forward-model.js";
import { ensureMoeCheckpoint, MOE_GEOMETRY } from "./bench-checkpoints.js";
import { median, randomModelCase, timed, type NamedCase } from "./selection-bench.js";

/**
 * A model that does not fit the budget (here: a budget of 0.9× the weights, so every pass streams its layers) with
 * the candidates' passes one edit a pass (waveSize 1) and in waves (the scorer's own size), alternated within each
 * round, compute auto. Here the layers come from the page cache, so a wave saves their copying and packing; where
 * they come from disk it saves their reading, once per edit of the wave.
 */
export async function measureWaves(c: NamedCase, rounds: number): Promise<string[]> {
  const budget = Math.floor(c.model.totalBytes * 0.9);
  const common = { model: c.model, directions: c.directions, layers: c.layers, positive: c.positive, negative: c.negative, signature: c.signature, skipDominated: {}, compute: "auto" as const, maxMemoryBytes: budget };
  const times = { single: [] as number[], wave: [] as number[] };
  let same = true;
  for (let round = 0; round < rounds; round += 1) {
    let single: CandidateScores | undefined;
    times.single.push(await timed(async () => (single = await scoreCandidates({ ...common, waveSize: 1 }))));
    let waved: CandidateScores | undefined;
    times.wave.push(await timed(async () => (waved = await scoreCandidates(common))));
    same &&= JSON.stringify(single!.candidates) === JSON.stringify(waved!.candidates);
  }
  const size = (await createEditScorer(common)).waveSize;
  const [single, wave] = [median(times.single), median(times.wave)];
  return [
    `  ${c.name}, streamed from the page cache (budget ${(budget / 1e9).toFixed(2)} GB, 0.9× the weights), compute auto: selection of ${c.layers.length} candidates, one edit a pass → waves of ${size}: ` +
      `${single.toFixed(3)} s → ${wave.toFixed(3)} s (${(single / wave).toFixed(2)}×); scores ${same ? "identical" : "DIFFER"}`,
  ];
}


export const CGROUP_ROOT = "/sys/fs/cgroup/memory";
/** The memory cgroup's limit and the scorer's budget: under the MoE's 1.08 GB, over what its passes hold. */
const DISK_BUDGET_BYTES = 900e6;

/** Search trials the search measurement scores: trials 1–19, the startup points after trial 0, whatever the wave size. */
export const SEARCH_TRIALS = 19;

type Measured = "selection" | "search";

interface ChildResult {
  seconds: number;
  waveSize: number;
  readBytes: number;
  /** The selection's candidates, or the search trials' evaluations. */
  scores: unknown[];
}

/** Bytes this process read from storage so far (page-cache hits not counted). */
export function storageReadBytes(): number {
  const match = /^read_bytes:\s+(\d+)/m.exec(readFileSync("/proc/self/io", "utf8"));
  return match ? Number(match[1]) : NaN;
}

/**
 * The case, prepared in a process of its own: a process that ran the model keeps its files mapped (mapped_files.h),
 * and mapped pages stay in memory whatever the cgroup or a dropped page cache, so the scoring children never map
 * the model before they are in the cgroup.
 */
async function prepareChild(dir: string, out: string): Promise<void> {
  const c = await randomModelCase(dir, 1);
  writeFileSync(out, JSON.stringify({ ...c, model: undefined, directions: c.directions.map((d) => Array.from(d)) }));
}

/**
 * Search trials scored as the search stage scores them: its scorer (positive and negative streams cached), one wave of
 * points at a time, the wave the scorer's size (or 1). Timed and counted from after the scorer's own unedited passes,
 * which a search runs once for all its trials.
 */
export async function searchTrials(c: NamedCase, common: Parameters<typeof createEditScorer>[0], waveSize: number): Promise<{ scores: unknown[]; waveSize: number; seconds: number; readBytes: number }> {
  const scorer = await createEditScorer({ ...common, cacheStreams: ["positive", "negative"], ...(waveSize > 0 ? { waveSize } : {}) });
  const zeros = c.directions.map((row) => new Float64Array(row.length));
  const candidates = { directions: c.directions, positiveMean: zeros, negativeMean: zeros, positiveRows: 0, negativeRows: 0, metadata: {} };
  const setup = editSearchSetup({ candidates, numLayers: c.model.spec.numLayers });
  const points = Array.from({ length: SEARCH_TRIALS }, (_, i) => suggestTrial({ space: setup.space, trials: [], seed: 0, number: i + 1 }));
  const scores: unknown[] = [];
  const before = storageReadBytes();
  const seconds = await timed(async () => {
    for (let first = 0; first < points.length; first += scorer.waveSize) scores.push(...(await scoreTrials({ scorer, setup, candidates, minUnchanged: 0.9 }, points.slice(first, first + scorer.waveSize))));
  });
  return { scores, waveSize: scorer.waveSize, seconds, readBytes: storageReadBytes() - before };
}

/**
 * In a scoring child: joins the cgroup, drops the page cache, then loads the model and the prepared case (prepareChild),
 * with the scorer's parameters for it under `budget`.
 */
export async function loadCaseInCgroup(dir: string, casePath: string, group: string, budget: number) {
  writeFileSync(join(group, "cgroup.procs"), String(process.pid));
  writeFileSync("/proc/sys/vm/drop_caches", "1");
  const prepared = JSON.parse(readFileSync(casePath, "utf8")) as Omit<NamedCase, "model" | "directions"> & { directions: number[][] };
  const c: NamedCase = { ...prepared, model: await loadForwardModel(dir), directions: prepared.directions.map((d) => Float64Array.from(d)) };
  const common = { model: c.model, directions: c.directions, layers: c.layers, positive: c.positive, negative: c.negative, signature: c.signature, skipDominated: {}, compute: "auto" as const, maxMemoryBytes: budget };
  return { c, common };
}

/** Runs a bench script as a child process: its stdout's last line, or an error with the end of its stderr. */
export function runBenchChild(script: string, args: string[]): string {
  const run = spawnSync(process.execPath, [script, ...args], { encoding: "utf8", maxBuffer: 64 << 20 });
  if (run.status !== 0) throw new Error(`bench child ${args[0]} failed (${run.status ?? run.signal}): ${run.stderr.slice(-2000)}`);
  return run.stdout.trim().split("\n").pop() ?? "";
}

/** A scoring child: joins the cgroup, drops the page cache, loads the model and times the selection or the trials. */
async function wavesChild(dir: string, casePath: string, waveSize: number, budget: number, group: string, measured: Measured): Promise<void> {
  const { c, common } = await loadCaseInCgroup(dir, casePath, group, budget);
  let result: ChildResult;
  if (measured === "search") result = await searchTrials(c, common, waveSize);
  else {
    const before = storageReadBytes();
    let scores: unknown[] = [];
    const seconds = await timed(async () => (scores = (await scoreCandidates(waveSize > 0 ? { ...common, waveSize } : common)).candidates));
    const readBytes = storageReadBytes() - before;
    result = { seconds, readBytes, scores, waveSize: waveSize > 0 ? waveSize : (await createEditScorer(common)).waveSize };
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

export async function measureWavesFromDisk(cache: string, rounds: number): Promise<string[]> {
  const { layers, experts, perToken } = MOE_GEOMETRY;
  const name = `Mixtral-shaped MoE (${layers} layers × ${experts} experts, ${perToken} per token)`;
  const group = join(CGROUP_ROOT, `abliterate-bench-${process.pid}`);
  try {
    mkdirSync(group);
    writeFileSync(join(group, "memory.limit_in_bytes"), String(DISK_BUDGET_BYTES));
  } catch (error) {
    return [`  ${name} from disk: skipped (no writable memory cgroup at ${CGROUP_ROOT} to stand for a machine with less memory than the model: ${(error as Error).message})`];
  }
  try {
    const dir = ensureMoeCheckpoint(cache);
    const model = await loadForwardModel(dir);
    const casePath = join(tmpdir(), `abliterate-wave-case-${process.pid}.json`);
    const child = (args: string[]) => runBenchChild(fileURLToPath(import.meta.url), args);
    child(["waves-prepare", dir, casePath]);
    const lines: string[] = [];
    for (const measured of ["selection", "search"] as const) {
      const runs: Record<"single" | "wave", ChildResult[]> = { single: [], wave: [] };
      for (let round = 0; round < rounds; round += 1) {
        for (const kind of ["single", "wave"] as const) {
          const out = child(["waves-child", dir, casePath, kind === "single" ? "1" : "0", String(DISK_BUDGET_BYTES), group, measured]);
          runs[kind].push(JSON.parse(out) as ChildResult);
        }
      }
      const same = runs.single.every((s, i) => JSON.stringify(s.scores) === JSON.stringify(runs.wave[i].scores));
      const [single, wave] = [median(runs.single.map((r) => r.seconds)), median(runs.wave.map((r) => r.seconds))];
      const [readSingle, readWave] = [median(runs.single.map((r) => r.readBytes)), median(runs.wave.map((r) => r.readBytes))];
      const what = measured === "selection" ? `selection of ${runs.single[0].scores.length} candidates, one edit a pass` : `search trials 1–${SEARCH_TRIALS} (startup points; from after the scorer's unedited passes), one trial a pass`;
      lines.push(
        `  ${name}, from disk (memory cgroup and budget ${(DISK_BUDGET_BYTES / 1e9).toFixed(2)} GB, weights ${(model.totalBytes / 1e9).toFixed(2)} GB; median of ${rounds}), compute auto: ${what} → waves of ${runs.wave[0].waveSize}: ` +
          `${single.toFixed(2)} s → ${wave.toFixed(2)} s (${(single / wave).toFixed(2)}×); read from storage ${(readSingle / 1e9).toFixed(2)} → ${(readWave / 1e9).toFixed(2)} GB; scores ${same ? "identical" : "DIFFER"}`,
      );
    }
    rmSync(casePath, { force: true });
    return lines;
  } finally {
    rmdirSync(group);
  }
}

if (process.argv[2] === "waves-prepare") await prepareChild(process.argv[3], process.argv[4]);
if (process.argv[2] === "waves-child") {
  const [dir, casePath, waveSize, budget, group, measured] = process.argv.slice(3);
  await wavesChild(dir, casePath, Number(waveSize), Number(budget), group, measured === "search" ? "search" : "selection");
}
