/**
 * Search trials in waves (run-search.ts): each trial of a wave is suggested from the trials before its wave and
 * from its own number's stream, the wave is evaluated at once, a wave killed half-stored resumes to exactly the
 * uninterrupted run's trials, and the time budget trims a wave to the trials that fit.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AbliterateError, ErrorCodes } from "../../lib/errors.js";
import { runSearch, type RunSearchParams, type SearchEvent, type SearchResult } from "../../lib/directions/search/run-search.js";
import type { Params, SearchSpace } from "../../lib/directions/search/search-space.js";
import { DEFAULT_STARTUP_TRIALS, suggestTrial } from "../../lib/directions/search/suggest-trial.js";
import { openTrialStore, type TrialStore } from "../../lib/directions/search/trial-store.js";
import type { Evaluation, Trial } from "../../lib/directions/search/trial.js";

const SPACE: SearchSpace = {
  dimensions: [
    { kind: "float", name: "x", low: 0, high: 1, default: 0.5 },
    { kind: "float", name: "scale", low: 0.01, high: 10, log: true, default: 1 },
    { kind: "categorical", name: "mode", choices: ["a", "b", "c"], default: "a" },
  ],
};
const OBJECTIVES = [{ name: "behaviour" }, { name: "damage" }];
const SEED = 3;
const TRIALS = 37; // past the startup trials, ending inside a wave

function objective(p: Params): Evaluation {
  const g = 1 + Math.abs(Math.log10(p.scale as number)) + (p.mode === "b" ? 0 : 0.4);
  const x = p.x as number;
  return { values: [x, g * (1 - Math.sqrt(x / g))], violation: g > 2.2 ? g - 2.2 : 0 };
}

async function drive(params: Partial<RunSearchParams> & Pick<RunSearchParams, "evaluate">, stopAt?: (event: SearchEvent) => boolean): Promise<{ events: SearchEvent[]; result?: SearchResult }> {
  const events: SearchEvent[] = [];
  const generator = runSearch({ space: SPACE, objectives: OBJECTIVES, seed: SEED, trials: TRIALS, ...params });
  for (;;) {
    const next = await generator.next();
    if (next.done) return { events, result: next.value };
    events.push(next.value);
    if (stopAt?.(next.value)) {
      await generator.return(undefined as never);
      return { events };
    }
  }
}

const comparable = (trials: readonly Trial[]) => trials.map(({ seconds: _, ...rest }) => rest);

test("a wave's trials are suggested from the trials before it, each from its own stream, and evaluated together", async () => {
  const waves: number[][] = [];
  const { events, result } = await drive({
    waveSize: 5,
    evaluate: async () => assert.fail("a wave goes to evaluateWave"),
    evaluateWave: async (points, { numbers }) => {
      waves.push(numbers);
      return points.map(objective);
    },
  });
  assert.ok(result);
  const trials = result.trials;
  assert.equal(trials.length, TRIALS);
  // Waves are numbered from 0 in fives; the last one stops at the trial count.
  assert.deepEqual(waves, Array.from({ length: 8 }, (_, w) => Array.from({ length: Math.min(5, TRIALS - 5 * w) }, (__, i) => 5 * w + i)));
  for (const trial of trials) {
    const waveStart = trial.number - (trial.number % 5);
    assert.deepEqual(trial.params, suggestTrial({ space: SPACE, trials: trials.slice(0, waveStart), seed: SEED, number: trial.number }), `trial ${trial.number}`);
  }
  // Every trial of a wave starts before any of it finishes.
  const order = events.filter((e) => e.type === "trial-started" || e.type === "trial-finished").map((e) => (e.type === "trial-started" ? `s${e.number}` : `f${e.trial.number}`));
  assert.deepEqual(order.slice(0, 10), ["s0", "s1", "s2", "s3", "s4", "f0", "f1", "f2", "f3", "f4"]);

  // One at a time, the startup trials are the same points; past them a trial sees its own wave's trials, so
  // trials inside a TPE wave differ from the waved run's.
  const single = await drive({ evaluate: async (p) => objective(p) });
  assert.ok(single.result);
  assert.deepEqual(comparable(single.result.trials.slice(0, DEFAULT_STARTUP_TRIALS)), comparable(trials.slice(0, DEFAULT_STARTUP_TRIALS)));
  assert.notDeepEqual(single.result.trials[DEFAULT_STARTUP_TRIALS + 1].params, trials[DEFAULT_STARTUP_TRIALS + 1].params);
  // The points of one TPE wave differ from each other (each from its own number's stream).
  const tpeWave = trials.slice(25, 30).map((t) => JSON.stringify(t.params));
  assert.equal(new Set(tpeWave).size, 5);
});

test("evaluate() serves a wave when there is no evaluateWave, in order", async () => {
  const numbers: number[] = [];
  const { result } = await drive({ waveSize: 4, trials: 24, evaluate: async (p, { number }) => (numbers.push(number), objective(p)) });
  assert.ok(result);
  assert.deepEqual(numbers, Array.from({ length: 24 }, (_, i) => i));
  assert.deepEqual(result.trials[22].params, suggestTrial({ space: SPACE, trials: result.trials.slice(0, 20), seed: SEED, number: 22 }));
});

test("a search killed after part of a wave was stored resumes to exactly the uninterrupted waved run's trials", async () => {
  const dir = mkdtempSync(join(tmpdir(), "abliterate-search-waves-"));
  const open = async (file?: string): Promise<TrialStore> => {
    const opened = await openTrialStore({ dir, space: SPACE, objectives: OBJECTIVES, inputKey: "waves", seed: SEED, ...(file ? { file } : {}) });
    assert.ok(opened.ok, opened.ok ? "" : opened.message);
    return opened.store;
  };
  const evaluateWave = async (points: Params[]) => points.map(objective);
  try {
    const whole = await open("whole.jsonl");
    await drive({ waveSize: 6, store: whole, evaluate: async (p) => objective(p), evaluateWave });
    // Killed after trials 24 and 25 of the wave 24–29 were stored (TPE phase).
    let store = await open();
    await drive({ waveSize: 6, store, evaluate: async (p) => objective(p), evaluateWave }, (event) => event.type === "trial-finished" && event.trial.number === 25);
    await store.close();
    store = await open();
    assert.equal(store.trials.length, 26);
    const rest = await drive({ waveSize: 6, store, evaluate: async (p) => objective(p), evaluateWave });
    assert.equal(rest.events[0].type, "resumed");
    const firstStarted = rest.events.find((e) => e.type === "trial-started");
    assert.ok(firstStarted?.type === "trial-started" && firstStarted.number === 26);
    assert.deepEqual(comparable(store.trials), comparable(whole.trials));
    assert.ok(whole.trials.some((t) => !t.feasible) && whole.trials.some((t) => t.feasible), "both kinds of trial ran");
    await store.close();
    await whole.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the time budget trims a wave to the trials predicted to fit; each trial records its share of the wave", async () => {
  let now = 0;
  const sizes: number[] = [];
  const { result, events } = await drive({
    waveSize: 4,
    trials: 100,
    timeBudgetMs: 100_000,
    clock: () => now,
    evaluate: async (p) => objective(p),
    // A wave costs 8 s plus 2 s a trial: 4 trials 16 s, 4 s each.
    evaluateWave: async (points) => {
      sizes.push(points.length);
      now += 8_000 + 2_000 * points.length;
      return points.map(objective);
    },
  });
  assert.ok(result);
  // 6 waves of 4 end at 96 s; 4 s are left for one trial predicted at 4 s.
  assert.deepEqual(sizes, [4, 4, 4, 4, 4, 4, 1]);
  assert.deepEqual(result.trials.slice(0, 4).map((t) => t.seconds), [4, 4, 4, 4]);
  assert.equal(result.trials.at(-1)?.seconds, 10);
  assert.equal(result.stopped, "time-budget");
  assert.deepEqual(events.at(-1), { type: "stopped", reason: "time-budget", trials: 25, elapsedMs: 106_000 });
});

test("a wave size that is not a whole number ≥ 1, or a wave answered with the wrong count, is a typed error", async () => {
  for (const waveSize of [0, 1.5, Number.NaN]) {
    await assert.rejects(drive({ waveSize, evaluate: async (p) => objective(p) }), (error: unknown) => error instanceof AbliterateError && error.code === ErrorCodes.INVALID_ARGUMENT && /wave size/.test(error.message));
  }
  await assert.rejects(
    drive({ waveSize: 3, evaluate: async (p) => objective(p), evaluateWave: async (points) => points.slice(1).map(objective) }),
    (error: unknown) => error instanceof AbliterateError && error.code === ErrorCodes.INVALID_ARGUMENT && /trials 0–2: evaluateWave returned 2 evaluations for 3 points/.test(error.message),
  );
  assert.throws(() => suggestTrial({ space: SPACE, trials: [], seed: 1, number: -1 }), /trial number/);
});
