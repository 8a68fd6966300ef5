/**
 * How many trials to run, from how long one took. The first trial is measured by the caller (it is a real trial:
 * it stays in the history) and usually includes warm-up, so the estimate errs on the side of fewer trials; the
 * time budget stops the search cleanly anyway. A first trial whose damage ruled it out skipped its behaviour pass,
 * which every feasible trial runs: the caller passes that pass's time (measured on the unedited model) as
 * `skippedPassesMs`, so a model whose first trial breaks it is not planned at the price of half a trial.
 *
 * Trials in waves (run-search.ts) share one pass per wave, so trial 0, which ran alone, prices them at several times
 * their cost: the caller runs the rest of trial 0's wave first and passes its time (`firstWave`), which then prices
 * every trial, with the passes none of its trials ran (a wave whose damage ruled every trial out ran no behaviour
 * pass) added once for the wave: a wave's pass costs about one pass where reading the layers dominates, which is
 * where waves run.
 */
import { AbliterateError, ErrorCodes } from "../../errors.js";
import { DEFAULT_STARTUP_TRIALS } from "./suggest-trial.js";

/** heretic's n_trials: the count when nothing limits it. */
export const DEFAULT_TRIALS = 200;

export interface TrialCountSizing {
  trials: number;
  /** Seconds per trial the count assumes: the first trial's, plus the passes it skipped; or the first wave's share. */
  trialSeconds: number;
  /** trials × trialSeconds. */
  estimatedSeconds: number;
  limitedBy: "time-budget" | "maximum" | "minimum";
  /** One line for the user: how long a trial took and how many will run. */
  note: string;
}

export function sizeTrialCount(params: {
  firstTrialMs: number;
  skippedPassesMs?: number;
  /** The trials after trial 0 in its wave: how many, their wave's time, and the passes none of them ran. */
  firstWave?: { trials: number; waveMs: number; skippedPassesMs?: number };
  timeBudgetMs?: number;
  maxTrials?: number;
  minTrials?: number;
  startupTrials?: number;
}): TrialCountSizing {
  const { firstTrialMs, timeBudgetMs, firstWave } = params;
  const skippedMs = params.skippedPassesMs ?? 0;
  const maxTrials = params.maxTrials ?? DEFAULT_TRIALS;
  const minTrials = params.minTrials ?? 1;
  const startupTrials = params.startupTrials ?? DEFAULT_STARTUP_TRIALS;
  if (!(Number.isFinite(firstTrialMs) && firstTrialMs > 0)) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `a trial's duration must be > 0 ms, got ${firstTrialMs}`);
  if (!(Number.isFinite(skippedMs) && skippedMs >= 0)) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `the skipped passes' duration must be ≥ 0 ms, got ${skippedMs}`);
  if (timeBudgetMs !== undefined && !(timeBudgetMs > 0)) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `the time budget must be > 0, got ${timeBudgetMs} ms`);
  if (!(Number.isInteger(minTrials) && Number.isInteger(maxTrials) && 1 <= minTrials && minTrials <= maxTrials)) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `trial bounds must be whole numbers with 1 ≤ min ≤ max, got ${minTrials}..${maxTrials}`);
  }
  const waveSkippedMs = firstWave?.skippedPassesMs ?? 0;
  if (firstWave && !(Number.isInteger(firstWave.trials) && firstWave.trials >= 1 && Number.isFinite(firstWave.waveMs) && firstWave.waveMs > 0 && Number.isFinite(waveSkippedMs) && waveSkippedMs >= 0)) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `the first wave needs ≥ 1 trial, > 0 ms and skipped passes ≥ 0 ms, got ${firstWave.trials} trial(s) in ${firstWave.waveMs} ms, ${waveSkippedMs} ms skipped`);
  }
  const trialMs = firstWave ? (firstWave.waveMs + waveSkippedMs) / firstWave.trials : firstTrialMs + skippedMs;
  const fit = timeBudgetMs === undefined ? Infinity : Math.floor(timeBudgetMs / trialMs);
  let trials = Math.min(maxTrials, fit);
  let limitedBy: TrialCountSizing["limitedBy"] = fit < maxTrials ? "time-budget" : "maximum";
  if (trials < minTrials) {
    trials = minTrials;
    limitedBy = "minimum";
  }
  const trialSeconds = trialMs / 1000;
  const estimatedSeconds = trials * trialSeconds;
  const reason = limitedBy === "time-budget" ? "what fits in the time budget" : limitedBy === "maximum" ? "the maximum" : "the minimum (more than the time budget holds)";
  const random = trials <= startupTrials ? `; no more than the ${startupTrials} startup trials, so the search stays random` : "";
  const shared = firstWave && `${(firstWave.waveMs / firstWave.trials / 1000).toFixed(1)} s each`;
  const took = firstWave
    ? `the ${firstWave.trials} trial${firstWave.trials === 1 ? "" : "s"} after trial 0 in its wave took ${waveSkippedMs > 0 ? `${shared} (${trialSeconds.toFixed(1)} s with the pass none of them ran, which feasible trials run)` : shared}, trial 0 alone ${(firstTrialMs / 1000).toFixed(1)} s`
    : skippedMs > 0
      ? `a trial took ${(firstTrialMs / 1000).toFixed(1)} s (${trialSeconds.toFixed(1)} s with the passes it skipped, which a feasible trial runs)`
      : `a trial took ${trialSeconds.toFixed(1)} s`;
  const note = `${took}; ${trials} trials will run (${reason}), about ${Math.ceil(estimatedSeconds / 60)} min${random}`;
  return { trials, trialSeconds, estimatedSeconds, limitedBy, note };
}
