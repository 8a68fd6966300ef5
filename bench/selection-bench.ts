/**
 * Selection part of `npm run bench` (bench/run-bench.ts calls runSelectionBench()): wall time of candidate scoring
 * (the pipeline's selection: every candidate's behaviour, then damage and induced passes while one can still win)
 * and of search-trial scoring, with the scorer's cache of unedited residual streams on and off, alternated within
 * each round, in this process; then the pipeline's scoring arithmetic, shared prefixes, and damage passes that stop
 * once a wall fails, and layers kept between passes, each against its absence.
 *
 * Cases: the planted chat model and the trained own-phrasing model (test/golden/trained/, real tokenizer and chat
 * template, so every prompt shares the template's prefix), and the forward bench's 0.43B checkpoint (random
 * weights, no tokenizer: 24-token prompts behind a shared 32-token prefix, a signature of two-token openings taken
 * from its own greedy output; the times are what matters there, not what gets selected).
 * The search-trial edit has α 0 at the embedding and below the middle layer (as a profile whose band starts there),
 * so it can resume halfway; a trial whose edit starts at the embedding gains nothing.
 */
import { join } from "node:path";
import { BUILTIN_HARMFUL_PROMPTS, BUILTIN_HARMLESS_PROMPTS } from "../lib/directions/builtin-prompts.js";
import { completePrompts } from "../lib/directions/complete-prompts.js";
import { contrastMeans } from "../lib/directions/mean-difference.js";
import { PLANTED_COMMON_WORDS, PLANTED_TRIGGER_WORDS } from "../lib/directions/planted-refusal-model.js";
import { createEditScorer, signatureRows } from "../lib/directions/edit-scorer.js";
import { scoreCandidates } from "../lib/directions/score-candidates.js";
import { distinctInputs, type ForcedRow } from "../lib/directions/forced-scores.js";
import { prefixShares } from "../lib/engine/prefix-shares.js";
import { candidateLayers } from "../lib/directions/select-direction.js";
import { readTrainedPrompts, trainedModelDir } from "../test/golden/trained/trained-fixtures.js";
import { writePlantedChatModel } from "../test/helpers/planted-chat-model.js";
import { prepareSelectionCase, type SelectionCase } from "../test/helpers/selection-case.js";
import type { BehaviourSignature } from "../lib/directions/behaviour-signature.js";
import { loadForwardModel } from "../lib/engine/load-forward-model.js";
import { releaseKeptWeights } from "../lib/engine/release-kept-weights.js";
import { forwardTableFor } from "../lib/engine/forward-arithmetic.js";
import { ensureCheckpoint } from "./forward-bench.js";
import { measureKeptFromDisk } from "./kept-streamed-bench.js";
import { measureWaves, measureWavesFromDisk } from "./wave-bench.js";

export interface NamedCase extends SelectionCase {
  name: string;
}

async function fromPrompts(name: string, dir: string, positive: readonly string[], negative: readonly string[], train: number, validation: number): Promise<NamedCase> {
  return { name, ...(await prepareSelectionCase({ dir, positive, negative, train, validation })) };
}

/** The bench checkpoint has no tokenizer and random weights: token prompts, and a signature read off its own output. */
async function benchModelCase(cache: string): Promise<NamedCase> {
  return randomModelCase(ensureCheckpoint(cache), 3);
}

/**
 * A checkpoint of random weights without a tokenizer (the bench's generated ones) as a selection case: token
 * prompts, and a signature read off its own output; every `layerStep`-th candidate layer.
 */
export async function randomModelCase(dir: string, layerStep: number): Promise<NamedCase> {
  const model = await loadForwardModel(dir);
  let s = 0x51ed270b;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) % model.spec.vocabSize;
  };
  const prefix = Array.from({ length: 32 }, next);
  const prompts = (count: number) => Array.from({ length: count }, () => [...prefix, ...Array.from({ length: 24 }, next)]);
  const [train, positive, negative] = [prompts(16), prompts(8), prompts(8)];
  const means = await contrastMeans({ model, positive: train.slice(0, 8), negative: train.slice(8) });
  // Up to four two-token openings of its own greedy output with distinct first tokens (so prefix-free), as a learned
  // signature has several (the built-in refusal openings alone give a trained model three to eight).
  const own = await completePrompts({ model, prompts: positive, maxNewTokens: 2 });
  const openings = new Map<number, number[]>();
  for (const ids of own.ids) if (ids.length === 2 && !openings.has(ids[0]) && openings.size < 4) openings.set(ids[0], ids);
  const signature = { preamble: [], sequences: [...openings.values()].map((tokens) => ({ tokens })) } as unknown as BehaviourSignature;
  // Every third candidate layer keeps the bench model's case to a minute on two cores.
  const layers = candidateLayers({ numLayers: model.spec.numLayers }).filter((_, i) => i % layerStep === 0);
  return { name: `bench model ${(model.totalBytes / 2 / 1e9).toFixed(2)}B`, model, directions: means.directions, layers, positive, negative, signature };
}

export const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

export async function timed(run: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await run();
  return (performance.now() - started) / 1000;
}

/** The search-trial edit every measurement times: the middle layer's direction, α 1 from that layer on, 0 below. */
function middleTrial(c: NamedCase) {
  const L = c.model.spec.numLayers;
  const start = Math.floor(L / 2);
  const alphas = Array.from({ length: L }, (_, l) => (l >= start ? 1 : 0));
  const trialEdit = { ablation: { directions: [Array.from(c.directions[start])], strengths: { embedding: 0, attention: alphas, mlp: alphas } } };
  return { L, start, trialEdit };
}

async function measure(c: NamedCase, rounds: number): Promise<string[]> {
  const common = { model: c.model, directions: c.directions, layers: c.layers, positive: c.positive, negative: c.negative, signature: c.signature, skipDominated: {} };
  const { L, start, trialEdit } = middleTrial(c);
  const times = { selectCached: [] as number[], selectPlain: [] as number[], trialCached: [] as number[], trialPlain: [] as number[], damageOnly: [] as number[] };
  let cachedMB = 0;
  for (let round = 0; round < rounds; round += 1) {
    times.selectCached.push(await timed(() => scoreCandidates(common)));
    times.selectPlain.push(await timed(() => scoreCandidates({ ...common, cacheStreams: [] })));
    const scorer = await createEditScorer({ ...common, cacheStreams: ["positive", "negative"] });
    const plain = await createEditScorer({ ...common, cacheStreams: [] });
    cachedMB = Object.values(scorer.cachedStreamBytes).reduce((a, b) => a + b, 0) / 1e6;
    times.trialCached.push(await timed(() => scorer.score(trialEdit)));
    times.trialPlain.push(await timed(() => plain.score(trialEdit)));
    // What a trial its damage rules out costs now: the damage pass alone (its behaviour pass is skipped).
    times.damageOnly.push(await timed(() => scorer.damageOf(trialEdit)));
  }
  const [sc, sp, tc, tp, td] = [median(times.selectCached), median(times.selectPlain), median(times.trialCached), median(times.trialPlain), median(times.damageOnly)];
  return [
    `  ${c.name}: selection of ${c.layers.length} candidates ${sp.toFixed(3)} s → ${sc.toFixed(3)} s with the stream cache (${(sp / sc).toFixed(2)}×); ` +
      `a search trial starting at layer ${start} of ${L}: ${tp.toFixed(3)} s → ${tc.toFixed(3)} s (${(tp / tc).toFixed(2)}×, ${cachedMB.toFixed(0)} MB of streams kept); ` +
      `one its damage makes infeasible, behaviour skipped: ${tc.toFixed(3)} s → ${td.toFixed(3)} s (${(tc / td).toFixed(2)}×)`,
  ];
}

/** Tokens a pass over these rows runs: all of them, past a prefix common to every row, past shared inputs and prefixes. */
function tokensRun(rows: readonly ForcedRow[]): { whole: number; common: number; shared: number } {
  const inputs = rows.map((r) => [...r.prompt, ...r.continuation.slice(0, -1)]);
  const whole = inputs.reduce((a, r) => a + r.length, 0);
  const limit = Math.min(...inputs.map((r) => r.length)) - 1;
  let common = 0;
  while (common < limit && inputs.every((r) => r[common] === inputs[0][common])) common += 1;
  // Rows with the same input run once (forcedPass), the rest past their shared prefixes.
  const distinct = distinctInputs(rows, true).inputs;
  const shared = distinct.reduce((a, r) => a + r.length, 0) - prefixShares(distinct).sharedTokens;
  return { whole, common: whole - common * (inputs.length - 1), shared };
}

/**
 * Shared prefixes (every row takes the keys and values of the first tokens it has in common with an earlier row)
 * against running every row whole, alternated within each round; with the token counts of the behaviour pass
 * (prompts × signature sequences) whole, past the chat template's common prefix alone (what was shared before),
 * and past shared prefixes.
 */
async function measureSharing(c: NamedCase, rounds: number): Promise<string[]> {
  const common = { model: c.model, directions: c.directions, layers: c.layers, positive: c.positive, negative: c.negative, signature: c.signature, skipDominated: {}, compute: "auto" as const };
  const times = { whole: [] as number[], shared: [] as number[] };
  for (let round = 0; round < rounds; round += 1) {
    times.whole.push(await timed(() => scoreCandidates({ ...common, reusePrefix: false })));
    times.shared.push(await timed(() => scoreCandidates(common)));
  }
  const [whole, shared] = [median(times.whole), median(times.shared)];
  const behaviour = tokensRun(signatureRows(c.positive, c.signature));
  return [
    `  ${c.name} (${c.signature.sequences.length} signature sequences), compute auto: selection of ${c.layers.length} candidates, every row whole → shared prefixes ${whole.toFixed(3)} s → ${shared.toFixed(3)} s (${(whole / shared).toFixed(2)}×); ` +
      `the behaviour pass runs ${behaviour.whole} → ${behaviour.common} (common prefix alone) → ${behaviour.shared} tokens`,
  ];
}

/**
 * Damage passes that stop once their first rows fail a wall (and no addition scored for such a candidate) against
 * scoring every candidate's damage whole, alternated within each round, with the stream cache as the pipeline runs.
 */
async function measureEarlyStops(c: NamedCase, rounds: number): Promise<string[]> {
  const common = { model: c.model, directions: c.directions, layers: c.layers, positive: c.positive, negative: c.negative, signature: c.signature, skipDominated: {}, compute: "auto" as const };
  const times = { whole: [] as number[], early: [] as number[] };
  let stopped = 0;
  for (let round = 0; round < rounds; round += 1) {
    times.whole.push(await timed(() => scoreCandidates({ ...common, stopFailedDamage: false })));
    const started = performance.now();
    const scores = await scoreCandidates(common);
    times.early.push((performance.now() - started) / 1000);
    stopped = scores.candidates.filter((s) => s.damageRows !== undefined).length;
  }
  const [whole, early] = [median(times.whole), median(times.early)];
  return [
    `  ${c.name}, compute auto: selection of ${c.layers.length} candidates, damage scored whole → stopped once a wall fails ${whole.toFixed(3)} s → ${early.toFixed(3)} s (${(whole / early).toFixed(2)}×); ` +
      `${stopped} damage passes stopped early`,
  ];
}

/**
 * Layers kept between passes (runForward's keepWeights, as the one command's passes run) against every pass reading
 * and packing each layer again, alternated within each round, compute auto, with the stream cache. A run without
 * keeping frees the kept layers, so each kept selection starts cold, as the one command's does; the search trial
 * runs on a scorer whose own unedited passes have filled them.
 */
async function measureKeptWeights(c: NamedCase, rounds: number): Promise<string[]> {
  const { L, start, trialEdit } = middleTrial(c);
  const ones = Array.from({ length: L }, () => 1);
  const fullEdit = { ablation: { directions: [Array.from(c.directions[start])], strengths: { embedding: 1, attention: ones, mlp: ones } } };
  const times = { plain: { select: [] as number[], trial: [] as number[], full: [] as number[] }, kept: { select: [] as number[], trial: [] as number[], full: [] as number[] } };
  for (let round = 0; round < rounds; round += 1) {
    for (const keepWeights of [false, true]) {
      const common = { model: c.model, directions: c.directions, layers: c.layers, positive: c.positive, negative: c.negative, signature: c.signature, skipDominated: {}, compute: "auto" as const, keepWeights };
      const into = times[keepWeights ? "kept" : "plain"];
      into.select.push(await timed(() => scoreCandidates(common)));
      const scorer = await createEditScorer({ ...common, cacheStreams: ["positive", "negative"] });
      into.trial.push(await timed(() => scorer.score(trialEdit)));
      into.full.push(await timed(() => scorer.damageOf(fullEdit)));
    }
  }
  releaseKeptWeights();
  const m = (values: number[]) => median(values);
  const [sp, sk, tp, tk, fp, fk] = [m(times.plain.select), m(times.kept.select), m(times.plain.trial), m(times.kept.trial), m(times.plain.full), m(times.kept.full)];
  return [
    `  ${c.name}, compute auto: every pass reads its layers → layers kept between passes: selection of ${c.layers.length} candidates (from cold) ${sp.toFixed(3)} s → ${sk.toFixed(3)} s (${(sp / sk).toFixed(2)}×); ` +
      `a search trial from layer ${start}: ${tp.toFixed(3)} s → ${tk.toFixed(3)} s (${(tp / tk).toFixed(2)}×); ` +
      `a damage pass from the embedding: ${fp.toFixed(3)} s → ${fk.toFixed(3)} s (${(fp / fk).toFixed(2)}×)`,
  ];
}

/**
 * The pipeline's scoring arithmetic against the library's fp32 default, alternated within each round: candidate
 * scoring and one search trial, both with the stream cache, as the one command runs them.
 */
async function measureCompute(c: NamedCase, rounds: number): Promise<string[]> {
  const { start, trialEdit } = middleTrial(c);
  const computes = ["fp32", "auto"] as const;
  const times = { fp32: { select: [] as number[], trial: [] as number[] }, auto: { select: [] as number[], trial: [] as number[] } };
  for (let round = 0; round < rounds; round += 1) {
    for (const compute of computes) {
      const common = { model: c.model, directions: c.directions, layers: c.layers, positive: c.positive, negative: c.negative, signature: c.signature, skipDominated: {}, compute };
      times[compute].select.push(await timed(() => scoreCandidates(common)));
      const scorer = await createEditScorer({ ...common, cacheStreams: ["positive", "negative"] });
      times[compute].trial.push(await timed(() => scorer.score(trialEdit)));
    }
  }
  const table = forwardTableFor("auto");
  const [s32, sAuto, t32, tAuto] = [median(times.fp32.select), median(times.auto.select), median(times.fp32.trial), median(times.auto.trial)];
  return [
    `  ${c.name}, compute fp32 → auto (${table}, the one command's default for scoring): selection of ${c.layers.length} candidates ${s32.toFixed(3)} s → ${sAuto.toFixed(3)} s (${(s32 / sAuto).toFixed(2)}×); ` +
      `a search trial from layer ${start}: ${t32.toFixed(3)} s → ${tAuto.toFixed(3)} s (${(t32 / tAuto).toFixed(2)}×)`,
  ];
}

export async function runSelectionBench(cache: string): Promise<string[]> {
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const lines = [`selection: candidate scoring and search-trial scoring without → with the cache of unedited streams (median of ${rounds}, alternated)`];
  const plantedDir = join(cache, "selection-planted");
  const planted = await writePlantedChatModel({ dir: plantedDir, behaviour: ["sorry", "i", "will", "not", "."], normal: ["sure", "here", "is", "the", "answer"], triggers: PLANTED_TRIGGER_WORDS, words: PLANTED_COMMON_WORDS });
  const cases = [
    await fromPrompts("planted chat model", planted.dir, BUILTIN_HARMFUL_PROMPTS, BUILTIN_HARMLESS_PROMPTS, 32, 16),
    await fromPrompts("trained own-phrasing", trainedModelDir("own-phrasing"), readTrainedPrompts("harmfulTrain"), readTrainedPrompts("harmlessTrain"), 40, 20),
    await benchModelCase(cache),
  ];
  for (const c of cases) lines.push(...(await measure(c, rounds)));
  lines.push(...(await measureCompute(cases[2], rounds)));
  for (const c of cases) lines.push(...(await measureSharing(c, rounds)));
  for (const c of cases) lines.push(...(await measureEarlyStops(c, rounds)));
  for (const c of cases) lines.push(...(await measureKeptWeights(c, rounds)));
  lines.push(...(await measureWaves(cases[2], rounds)), ...(await measureWavesFromDisk(cache, rounds)), ...(await measureKeptFromDisk(cache, rounds)));
  return lines;
}
