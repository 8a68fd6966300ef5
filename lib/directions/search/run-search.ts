/**
 * The search loop as an async generator of typed events: suggest a point, evaluate it, store it (fsynced) before
 * announcing it, repeat until the trial count or the time budget is reached. A finished trial is never lost: it is
 * durable before the next event is yielded, so a consumer that stops iterating, a kill, or an evaluation that
 * throws costs at most the trials in flight (one, or a wave's). With a time budget, a trial is not started when the
 * mean duration of the trials so far says it would end past the budget (set startOnlyIfItFits: false to run up to the budget).
 * `trials` counts every trial in the store, resumed ones included (heretic's n_trials); the time budget is this run's.
 *
 * Waves (`waveSize` > 1): trials are numbered in waves of waveSize (trial n is in wave ⌊n / waveSize⌋), and every
 * trial of a wave is suggested from the trials before the wave, each from its own number's stream, then the wave is
 * evaluated at once (`evaluateWave`: one pass over a streamed model's layers for all of them). optuna suggests so
 * with n_jobs > 1 and its constant liar off. A trial's point depends on its number and the trials before its wave
 * only, so a search resumed inside a wave suggests what the uninterrupted one would. Startup trials read no history,
 * so waves change no startup point; later ones see up to waveSize − 1 fewer trials than one at a time would.
 */
import { AbliterateError, ErrorCodes } from "../../errors.js";
import { canonicalJson } from "./canonical-json.js";
import { paretoFront } from "./pareto.js";
import { DEFAULT_PICK_POLICY, pick, type PickPolicy, type PickResult } from "./pick-trial.js";
import { paramsProblem, validateSpace, type Params, type SearchSpace } from "./search-space.js";
import { DEFAULT_TRIALS } from "./size-trial-count.js";
import { suggestTrial, type SamplerOptions } from "./suggest-trial.js";
import { storeKey, type TrialStore } from "./trial-store.js";
import type { Evaluation, Objective, Trial } from "./trial.js";

export type StopReason = "trials" | "time-budget" | "aborted";

export type SearchEvent<P = unknown> =
  | { type: "resumed"; trials: number }
  | { type: "trial-started"; number: number; params: Params; target?: number; elapsedMs: number }
  | { type: "trial-finished"; trial: Trial<P>; front: Trial<P>[]; best: PickResult<P>; target?: number; elapsedMs: number }
  | { type: "stopped"; reason: StopReason; trials: number; elapsedMs: number; /** Set when the budget stopped a trial from starting. */ predictedTrialMs?: number };

export interface SearchResult<P = unknown> {
  trials: Trial<P>[];
  front: Trial<P>[];
  best: PickResult<P>;
  stopped: StopReason;
}

export interface RunSearchParams<P = unknown> {
  space: SearchSpace;
  objectives: readonly Objective[];
  evaluate: (params: Params, context: { number: number }) => Promise<Evaluation<P>>;
  /** Evaluates a wave's points, in order (default: evaluate() on each in turn). */
  evaluateWave?: (points: Params[], context: { numbers: number[] }) => Promise<Evaluation<P>[]>;
  /** Trials suggested from one history and evaluated together. Default 1: each trial sees every trial before it. */
  waveSize?: number;
  seed: number;
  /** Total trials to reach, resumed ones included. Default DEFAULT_TRIALS, or no limit when only a time budget is given. */
  trials?: number;
  /** Wall-clock budget of this run in ms. */
  timeBudgetMs?: number;
  /** Never start a trial predicted to end past the budget. Default true. */
  startOnlyIfItFits?: boolean;
  /** Where trials persist; its trials are the history the search resumes from. */
  store?: TrialStore<P>;
  /** Called after each trial is stored, before its event. */
  onTrial?: (trial: Trial<P>) => void | Promise<void>;
  sampler?: SamplerOptions;
  /** The policy behind each event's best-so-far. Default DEFAULT_PICK_POLICY. */
  pickPolicy?: PickPolicy;
  signal?: AbortSignal;
  /** Milliseconds; default performance.now. For tests. */
  clock?: () => number;
}

/** The best-so-far never stops a search: a policy that cannot apply yet (a trial number not run yet) says so instead. */
function bestSoFar<P>(trials: readonly Trial<P>[], policy: PickPolicy): PickResult<P> {
  try {
    return pick(trials, policy);
  } catch (error) {
    if (error instanceof AbliterateError) return { satisfied: false, note: error.message };
    throw error;
  }
}

const positiveZero = (x: number): number => (x === 0 ? 0 : x); // JSON writes −0 as 0: keep memory and disk equal

function checkEvaluation<P>(evaluation: Evaluation<P>, objectives: readonly Objective[], number: number): void {
  const { values, violation } = evaluation;
  if (!Array.isArray(values) || values.length !== objectives.length) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `trial ${number}: evaluate returned ${Array.isArray(values) ? values.length : "no"} values for ${objectives.length} objectives`);
  }
  values.forEach((value, i) => {
    if (value === null && violation !== undefined && violation > 0) return; // not measured: nothing reads it
    if (value === null || !Number.isFinite(value)) {
      throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `trial ${number}: objective "${objectives[i].name}" is ${value}; return a finite value, or null (not measured) on a trial whose violation > 0 marks it infeasible`);
    }
  });
  if (violation !== undefined && !(Number.isFinite(violation) && violation >= 0)) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `trial ${number}: the violation must be a finite number ≥ 0, got ${violation}`);
  }
}

export async function* runSearch<P = unknown>(params: RunSearchParams<P>): AsyncGenerator<SearchEvent<P>, SearchResult<P>> {
  const { space, objectives, evaluate, seed, store } = params;
  validateSpace(space);
  if (objectives.length === 0) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "the search needs at least one objective");
  const clock = params.clock ?? (() => performance.now());
  const target = params.trials ?? (params.timeBudgetMs !== undefined ? Infinity : DEFAULT_TRIALS);
  if (!(target === Infinity || (Number.isInteger(target) && target >= 0))) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `the trial count must be a whole number ≥ 0, got ${target}`);
  const waveSize = params.waveSize ?? 1;
  if (!(Number.isInteger(waveSize) && waveSize >= 1)) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `the wave size must be a whole number ≥ 1, got ${waveSize}`);
  const budget = params.timeBudgetMs;
  if (budget !== undefined && !(budget > 0)) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `the time budget must be > 0 ms, got ${budget}`);
  if (store && canonicalJson(store.key) !== canonicalJson(storeKey({ space, objectives, inputKey: store.key.input, seed }))) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "the trial store was opened for another space, objective list or seed", { file: store.path });
  }
  const policy = params.pickPolicy ?? DEFAULT_PICK_POLICY;
  const history: Trial<P>[] = store ? [...store.trials] : [];
  const shownTarget = target === Infinity ? undefined : target;
  const start = clock();
  if (history.length > 0) yield { type: "resumed", trials: history.length };

  const evaluateWave = params.evaluateWave ?? (async (points: Params[], context: { numbers: number[] }) => {
    const evaluations: Evaluation<P>[] = [];
    for (let i = 0; i < points.length; i += 1) evaluations.push(await evaluate(points[i], { number: context.numbers[i] }));
    return evaluations;
  });
  // Each trial's share of its wave's time.
  const durations: number[] = [];
  const predictedMs = (): number | undefined => {
    const seconds = durations.length > 0 ? durations : history.map((trial) => trial.seconds * 1000);
    return seconds.length > 0 ? seconds.reduce((sum, s) => sum + s, 0) / seconds.length : undefined;
  };
  let stopped: StopReason;
  let predictedTrialMs: number | undefined;
  for (;;) {
    const elapsed = clock() - start;
    if (history.length >= target) {
      stopped = "trials";
      break;
    }
    if (params.signal?.aborted) {
      stopped = "aborted";
      break;
    }
    const first = history.length;
    const waveStart = first - (first % waveSize);
    let count = Math.min(waveStart + waveSize, target) - first;
    if (budget !== undefined) {
      const predicted = predictedMs();
      // The trials of this wave that fit the budget; none: stop.
      const fit = elapsed >= budget ? 0 : predicted === undefined || !(params.startOnlyIfItFits ?? true) ? count : Math.floor((budget - elapsed) / predicted);
      if (fit < 1) {
        stopped = "time-budget";
        predictedTrialMs = elapsed < budget ? predicted : undefined;
        break;
      }
      count = Math.min(count, fit);
    }
    const before = history.slice(0, waveStart);
    const numbers = Array.from({ length: count }, (_, i) => first + i);
    const points = numbers.map((number) => {
      const suggested = suggestTrial({ space, trials: before, seed, number, options: params.sampler });
      const point = Object.fromEntries(Object.entries(suggested).map(([name, value]) => [name, typeof value === "number" ? positiveZero(value) : value]));
      const problem = paramsProblem(space, point);
      if (problem) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `trial ${number}: the sampler produced a point outside the space (${problem})`);
      return point;
    });
    for (let i = 0; i < count; i += 1) yield { type: "trial-started", number: numbers[i], params: points[i], target: shownTarget, elapsedMs: elapsed };
    const began = clock();
    const evaluations = await evaluateWave(points, { numbers });
    const durationMs = (clock() - began) / count;
    if (!Array.isArray(evaluations) || evaluations.length !== count) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `trials ${first}–${first + count - 1}: evaluateWave returned ${Array.isArray(evaluations) ? evaluations.length : "no"} evaluations for ${count} points`);
    evaluations.forEach((evaluation, i) => checkEvaluation(evaluation, objectives, numbers[i]));
    for (let i = 0; i < count; i += 1) {
      const evaluation = evaluations[i];
      const violation = positiveZero(evaluation.violation ?? 0);
      const trial: Trial<P> = { number: numbers[i], params: points[i], values: evaluation.values.map((value) => (value === null ? null : positiveZero(value))), violation, feasible: !(violation > 0), seconds: durationMs / 1000 };
      if (evaluation.payload !== undefined) trial.payload = evaluation.payload;
      await store?.append(trial);
      history.push(trial);
      durations.push(durationMs);
      await params.onTrial?.(trial);
      yield { type: "trial-finished", trial, front: paretoFront(history), best: bestSoFar(history, policy), target: shownTarget, elapsedMs: clock() - start };
    }
  }
  const elapsedMs = clock() - start;
  yield predictedTrialMs === undefined ? { type: "stopped", reason: stopped, trials: history.length, elapsedMs } : { type: "stopped", reason: stopped, trials: history.length, elapsedMs, predictedTrialMs };
  return { trials: history, front: paretoFront(history), best: bestSoFar(history, policy), stopped };
}
