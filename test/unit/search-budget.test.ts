/**
 * The search driver's budget and events: it stops on the trial count (resumed trials included) or on the time
 * budget, never starts a trial predicted to end past the budget, never loses a finished trial (it is stored
 * before its event, and an evaluation that throws keeps the earlier ones), and sizes the default trial count from
 * a measured trial. Time is a fake clock the evaluation advances, so the figures are exact.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AbliterateError, ErrorCodes } from "../../lib/errors.js";
import { runSearch, type RunSearchParams, type SearchEvent, type SearchResult } from "../../lib/directions/search/run-search.js";
import type { Params, SearchSpace } from "../../lib/directions/search/search-space.js";
import { DEFAULT_TRIALS, sizeTrialCount } from "../../lib/directions/search/size-trial-count.js";
import { openTrialStore, type TrialStore } from "../../lib/directions/search/trial-store.js";
import { skippedPassSeconds } from "../../lib/pipeline/search-stage.js";
import type { Evaluation } from "../../lib/directions/search/trial.js";

const SPACE: SearchSpace = { dimensions: [{ kind: "float", name: "x", low: 0, high: 1, default: 0 }, { kind: "float", name: "y", low: 0, high: 1, default: 0 }] };
const OBJECTIVES = [{ name: "behaviour" }, { name: "damage" }];

function fakeClock(trialMs: number) {
  let now = 1_000;
  return {
    clock: () => now,
    evaluate: async (p: Params): Promise<Evaluation> => {
      now += trialMs;
      return { values: [p.x as number, 1 - (p.x as number) + (p.y as number)] };
    },
  };
}

async function drive(params: Partial<RunSearchParams> & Pick<RunSearchParams, "evaluate">): Promise<{ events: SearchEvent[]; result: SearchResult }> {
  const events: SearchEvent[] = [];
  const generator = runSearch({ space: SPACE, objectives: OBJECTIVES, seed: 1, ...params });
  for (;;) {
    const next = await generator.next();
    if (next.done) return { events, result: next.value };
    events.push(next.value);
  }
}

test("the time budget stops before a trial predicted to overrun; without prediction it stops at the budget", async () => {
  const predicted = fakeClock(10_000);
  const { events, result } = await drive({ evaluate: predicted.evaluate, clock: predicted.clock, timeBudgetMs: 35_000 });
  // 3 trials take 30 s; a 4th would end at 40 s > 35 s, so it is not started.
  assert.equal(result.trials.length, 3);
  assert.equal(result.stopped, "time-budget");
  assert.deepEqual(events.at(-1), { type: "stopped", reason: "time-budget", trials: 3, elapsedMs: 30_000, predictedTrialMs: 10_000 });
  assert.deepEqual(result.trials.map((trial) => trial.seconds), [10, 10, 10]);

  const unpredicted = fakeClock(10_000);
  const late = await drive({ evaluate: unpredicted.evaluate, clock: unpredicted.clock, timeBudgetMs: 35_000, startOnlyIfItFits: false });
  assert.equal(late.result.trials.length, 4);
  assert.deepEqual(late.events.at(-1), { type: "stopped", reason: "time-budget", trials: 4, elapsedMs: 40_000 });
});

test("events: started then finished for each trial, with the front and the best so far; stopped last", async () => {
  const { clock, evaluate } = fakeClock(1_000);
  const { events, result } = await drive({ evaluate, clock, trials: 5 });
  assert.deepEqual(events.map((event) => event.type), [...Array.from({ length: 5 }, () => ["trial-started", "trial-finished"]).flat(), "stopped"]);
  const last = events.at(-2);
  assert.ok(last?.type === "trial-finished");
  assert.equal(last.target, 5);
  assert.deepEqual(last.front, result.front);
  assert.deepEqual(last.best, result.best);
  assert.ok(last.front.length >= 1 && last.front.every((trial) => result.trials.includes(trial)));
  assert.equal(result.stopped, "trials");
});

test("the trial count includes resumed trials; a finished trial is stored before its event; a throwing evaluation keeps the earlier ones", async () => {
  const dir = mkdtempSync(join(tmpdir(), "abliterate-search-budget-"));
  const openStore = async (): Promise<TrialStore> => {
    const opened = await openTrialStore({ dir, space: SPACE, objectives: OBJECTIVES, inputKey: "k", seed: 1 });
    assert.ok(opened.ok);
    return opened.store;
  };
  try {
    let store = await openStore();
    const { clock, evaluate } = fakeClock(1_000);
    let calls = 0;
    const failing = async (p: Params) => {
      calls += 1;
      if (calls === 4) throw new Error("the engine ran out of memory");
      return evaluate(p);
    };
    const generator = runSearch({ space: SPACE, objectives: OBJECTIVES, seed: 1, trials: 6, store, evaluate: failing, clock });
    const seen: number[] = [];
    await assert.rejects(async () => {
      for await (const event of generator) {
        if (event.type === "trial-finished") {
          assert.equal(store.trials.length, event.trial.number + 1, "stored before the event");
          seen.push(event.trial.number);
        }
      }
    }, /ran out of memory/);
    assert.deepEqual(seen, [0, 1, 2]);
    await store.close();

    store = await openStore();
    assert.equal(store.trials.length, 3);
    const { events, result } = await drive({ evaluate, clock, trials: 6, store });
    assert.deepEqual(events[0], { type: "resumed", trials: 3 });
    assert.equal(result.trials.length, 6);
    assert.equal(events.filter((event) => event.type === "trial-finished").length, 3);
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("an abort signal stops the search cleanly between trials; onTrial sees each stored trial", async () => {
  const { clock, evaluate } = fakeClock(1_000);
  const controller = new AbortController();
  const seen: number[] = [];
  const { result } = await drive({
    evaluate,
    clock,
    trials: 10,
    signal: controller.signal,
    onTrial: (trial) => {
      seen.push(trial.number);
      if (trial.number === 1) controller.abort();
    },
  });
  assert.equal(result.stopped, "aborted");
  assert.deepEqual(seen, [0, 1]);
  assert.equal(result.trials.length, 2);
});

test("bad evaluations are typed errors that say what to do", async () => {
  const nan = async () => ({ values: [0.1, NaN] });
  await assert.rejects(drive({ evaluate: nan, trials: 1 }), (error: unknown) => error instanceof AbliterateError && error.code === ErrorCodes.INVALID_ARGUMENT && /"damage" is NaN.*violation/.test(error.message));
  const short = async () => ({ values: [0.1] });
  await assert.rejects(drive({ evaluate: short, trials: 1 }), /1 values for 2 objectives/);
  const negative = async () => ({ values: [0.1, 0.2], violation: -1 });
  await assert.rejects(drive({ evaluate: negative, trials: 1 }), /violation must be a finite number ≥ 0/);
});

test("with neither a trial count nor a time budget, DEFAULT_TRIALS run; with only a budget there is no count limit", async () => {
  const { clock, evaluate } = fakeClock(1);
  const { result } = await drive({ evaluate, clock, sampler: { kind: "random" } });
  assert.equal(result.trials.length, DEFAULT_TRIALS);
  const timed = fakeClock(1_000);
  const budgeted = await drive({ evaluate: timed.evaluate, clock: timed.clock, timeBudgetMs: 250_500, sampler: { kind: "random" } });
  assert.equal(budgeted.result.trials.length, 250);
});

test("sizeTrialCount: the trials that fit the budget, capped at the maximum, never below the minimum; the note says so", () => {
  const fit = sizeTrialCount({ firstTrialMs: 12_000, timeBudgetMs: 30 * 60_000 });
  assert.deepEqual({ trials: fit.trials, limitedBy: fit.limitedBy, estimatedSeconds: fit.estimatedSeconds }, { trials: 150, limitedBy: "time-budget", estimatedSeconds: 1800 });
  assert.match(fit.note, /a trial took 12\.0 s; 150 trials will run \(what fits in the time budget\), about 30 min/);
  const capped = sizeTrialCount({ firstTrialMs: 500, timeBudgetMs: 30 * 60_000 });
  assert.equal(capped.trials, DEFAULT_TRIALS);
  assert.equal(capped.limitedBy, "maximum");
  assert.equal(sizeTrialCount({ firstTrialMs: 500 }).trials, DEFAULT_TRIALS);
  const short = sizeTrialCount({ firstTrialMs: 60_000, timeBudgetMs: 10 * 60_000, minTrials: 20 });
  assert.deepEqual([short.trials, short.limitedBy], [20, "minimum"]);
  assert.match(short.note, /startup trials, so the search stays random/);
  assert.throws(() => sizeTrialCount({ firstTrialMs: 0 }), /must be > 0/);
});

test("sizeTrialCount prices a first trial that skipped passes at a feasible trial's cost, and says so", () => {
  // 2 s of damage pass alone, 3 s more for the behaviour pass it skipped: 5 s a trial, 12 in a minute (not 30).
  const sized = sizeTrialCount({ firstTrialMs: 2_000, skippedPassesMs: 3_000, timeBudgetMs: 60_000, minTrials: 1 });
  assert.deepEqual([sized.trials, sized.trialSeconds, sized.estimatedSeconds], [12, 5, 60]);
  assert.match(sized.note, /^a trial took 2\.0 s \(5\.0 s with the passes it skipped, which a feasible trial runs\); 12 trials will run/);
  assert.equal(sizeTrialCount({ firstTrialMs: 2_000, skippedPassesMs: 0, timeBudgetMs: 60_000, minTrials: 1 }).trials, 30);
  assert.throws(() => sizeTrialCount({ firstTrialMs: 2_000, skippedPassesMs: -1 }), /skipped passes' duration must be ≥ 0/);
  assert.throws(() => sizeTrialCount({ firstTrialMs: 2_000, skippedPassesMs: NaN }), /skipped passes' duration/);
});

test("sizeTrialCount prices trials in waves at the first wave's share, not at trial 0's pass alone, and says so", () => {
  // Trial 0 alone took 9 s; the 3 trials after it shared one 6 s pass: 2 s a trial, 30 in a minute (not 6).
  const sized = sizeTrialCount({ firstTrialMs: 9_000, skippedPassesMs: 4_000, firstWave: { trials: 3, waveMs: 6_000 }, timeBudgetMs: 60_000, minTrials: 1 });
  assert.deepEqual([sized.trials, sized.trialSeconds, sized.estimatedSeconds], [30, 2, 60]);
  assert.match(sized.note, /^the 3 trials after trial 0 in its wave took 2\.0 s each, trial 0 alone 9\.0 s; 30 trials will run \(what fits in the time budget\)/);
  // A wave whose damage ruled out all three ran no behaviour pass: one 3 s pass more for the wave, 3 s a trial.
  const skipped = sizeTrialCount({ firstTrialMs: 9_000, firstWave: { trials: 3, waveMs: 6_000, skippedPassesMs: 3_000 }, timeBudgetMs: 60_000, minTrials: 1 });
  assert.deepEqual([skipped.trials, skipped.trialSeconds], [20, 3]);
  assert.match(skipped.note, /^the 3 trials after trial 0 in its wave took 2\.0 s each \(3\.0 s with the pass none of them ran, which feasible trials run\), trial 0 alone 9\.0 s; 20 trials/);
  assert.match(sizeTrialCount({ firstTrialMs: 9_000, firstWave: { trials: 1, waveMs: 2_000 }, minTrials: 1 }).note, /^the 1 trial after trial 0/);
  assert.throws(() => sizeTrialCount({ firstTrialMs: 9_000, firstWave: { trials: 0, waveMs: 2_000 } }), /first wave needs ≥ 1 trial/);
  assert.throws(() => sizeTrialCount({ firstTrialMs: 9_000, firstWave: { trials: 3, waveMs: 0 } }), /first wave needs/);
  assert.throws(() => sizeTrialCount({ firstTrialMs: 9_000, firstWave: { trials: 3, waveMs: 6_000, skippedPassesMs: -1 } }), /first wave needs/);
});

test("skippedPassSeconds: the behaviour pass of a trial its damage ruled out, both passes of one with no edit, none of a scored one", () => {
  const passes = { positive: 3, negative: 2 };
  assert.equal(skippedPassSeconds({ payload: { behaviour: 0.2, kl: 0.01, unchanged: 1 } }, passes), 0);
  assert.equal(skippedPassSeconds({ payload: { behaviour: null, kl: 0.5, unchanged: 0.1 } }, passes), 3);
  assert.equal(skippedPassSeconds({}, passes), 5);
});
