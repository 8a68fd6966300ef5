/**
 * The trial store: a search killed mid-way (between trials, mid-trial, or mid-write leaving a partial line) and
 * rerun ends with exactly the trials of an uninterrupted run; a store made for another search is not reused and
 * the result says which part of the key differs; a corrupt store is a typed error naming the file.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AbliterateError, ErrorCodes } from "../../lib/errors.js";
import { runSearch, type SearchEvent } from "../../lib/directions/search/run-search.js";
import type { Params, SearchSpace } from "../../lib/directions/search/search-space.js";
import { openTrialStore, TRIAL_STORE_FILE, type OpenTrialStoreParams, type TrialStore } from "../../lib/directions/search/trial-store.js";
import type { Evaluation, Trial } from "../../lib/directions/search/trial.js";

const SPACE: SearchSpace = {
  dimensions: [
    { kind: "float", name: "x", low: 0, high: 1, default: 0.5, doc: "the first objective" },
    { kind: "float", name: "scale", low: 0.01, high: 10, log: true, default: 1 },
    { kind: "categorical", name: "mode", choices: ["a", "b", "c"], default: "a" },
    { kind: "int", name: "rank", low: 1, high: 4, default: 1 },
  ],
};
const OBJECTIVES = [{ name: "behaviour", definition: "synthetic" }, { name: "damage", definition: "synthetic" }];
const SEED = 7;
const TRIALS = 36; // past the 20 startup trials, so TPE is resumed too

function objective(p: Params): Evaluation<{ note: string }> {
  const g = 1 + Math.abs(Math.log10(p.scale as number)) + (p.mode === "b" ? 0 : 0.4) + 0.1 * ((p.rank as number) - 2) ** 2;
  const x = p.x as number;
  return { values: [x, g * (1 - Math.sqrt(x / g))], violation: g > 2.5 ? g - 2.5 : 0, payload: { note: `mode ${String(p.mode)}` } };
}

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "abliterate-search-store-"));
}

async function open(dir: string, overrides: Partial<OpenTrialStoreParams> = {}): Promise<TrialStore<{ note: string }>> {
  const opened = await openTrialStore<{ note: string }>({ dir, space: SPACE, objectives: OBJECTIVES, inputKey: "model@abc+prompts@def", seed: SEED, ...overrides });
  assert.ok(opened.ok, opened.ok ? "" : opened.message);
  return opened.store;
}

/** Runs the search on `store`, stopping (like a kill) when `stopAt` says so. */
async function run(store: TrialStore<{ note: string }>, stopAt?: (event: SearchEvent<{ note: string }>) => boolean): Promise<SearchEvent<{ note: string }>[]> {
  const events: SearchEvent<{ note: string }>[] = [];
  for await (const event of runSearch({ space: SPACE, objectives: OBJECTIVES, seed: SEED, trials: TRIALS, store, evaluate: async (p) => objective(p) })) {
    events.push(event);
    if (stopAt?.(event)) break;
  }
  return events;
}

const comparable = (trials: readonly Trial[]) => trials.map(({ seconds: _, ...rest }) => rest);

test("a search killed between trials, mid-trial and mid-write, then rerun, ends with exactly the uninterrupted run's trials", async () => {
  const dir = tempDir();
  try {
    const whole = await open(dir, { file: "whole.jsonl" });
    await run(whole);
    await whole.close();

    // Kill 1: after trial 11 finished.
    let store = await open(dir);
    await run(store, (event) => event.type === "trial-finished" && event.trial.number === 11);
    await store.close();
    // Kill 2: during trial 25 (TPE phase): it started, its evaluation never finished.
    store = await open(dir);
    let inFlight: Params | undefined;
    const events = await run(store, (event) => {
      if (event.type === "trial-started" && event.number === 25) inFlight = event.params;
      return event.type === "trial-started" && event.number === 25;
    });
    assert.equal(events[0].type, "resumed");
    await store.close();
    // Kill 3: mid-write of trial 25's line.
    appendFileSync(join(dir, TRIAL_STORE_FILE), '{"number":25,"params":{"x":0.1');

    const reopened = await openTrialStore<{ note: string }>({ dir, space: SPACE, objectives: OBJECTIVES, inputKey: "model@abc+prompts@def", seed: SEED });
    assert.ok(reopened.ok);
    assert.equal(reopened.resumed, 25);
    assert.equal(reopened.droppedPartialLine, true);
    assert.ok(readFileSync(join(dir, TRIAL_STORE_FILE), "utf8").endsWith("\n"), "the partial line is cut from the file");
    const rest = await run(reopened.store);
    await reopened.store.close();
    const rerunFirst = rest.find((event) => event.type === "trial-started");
    assert.ok(rerunFirst?.type === "trial-started" && rerunFirst.number === 25);
    assert.deepEqual(rerunFirst.params, inFlight, "the trial lost in flight is run again with the same point");

    const fromDisk = await open(dir);
    const wholeFromDisk = await open(dir, { file: "whole.jsonl" });
    assert.equal(fromDisk.trials.length, TRIALS);
    assert.deepEqual(comparable(fromDisk.trials), comparable(wholeFromDisk.trials));
    assert.ok(fromDisk.trials.some((trial) => !trial.feasible), "the run exercised infeasible trials");
    assert.deepEqual(fromDisk.trials[3].payload, objective(fromDisk.trials[3].params).payload);
    await fromDisk.close();
    await wholeFromDisk.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a store made for another search is not reused: the result names the part of the key that differs", async () => {
  const dir = tempDir();
  try {
    const store = await open(dir);
    await run(store, (event) => event.type === "trial-finished" && event.trial.number === 2);
    await store.close();
    const base = { dir, space: SPACE, objectives: OBJECTIVES, inputKey: "model@abc+prompts@def", seed: SEED };
    const widened: SearchSpace = { dimensions: SPACE.dimensions.map((d) => (d.name === "x" ? { ...d, high: 2 } : d)) };
    const cases: [Partial<OpenTrialStoreParams>, string[]][] = [
      [{ space: widened }, ["space"]],
      [{ space: { dimensions: SPACE.dimensions.slice(0, 3) } }, ["space"]],
      [{ objectives: [OBJECTIVES[0], { name: "damage", definition: "KL over 8 tokens" }] }, ["objectives"]],
      [{ inputKey: "model@abc+prompts@xyz" }, ["input"]],
      [{ seed: 8 }, ["seed"]],
      [{ seed: 8, inputKey: "other" }, ["input", "seed"]],
    ];
    for (const [overrides, differs] of cases) {
      const result = await openTrialStore({ ...base, ...overrides });
      assert.equal(result.ok, false);
      if (!result.ok) {
        assert.equal(result.reason, "key-mismatch");
        assert.deepEqual(result.differs, differs);
        assert.match(result.message, new RegExp(TRIAL_STORE_FILE));
      }
    }
    // Docs and defaults are not part of the key: editing them keeps the trials.
    const redocumented: SearchSpace = { dimensions: SPACE.dimensions.map((d) => ({ ...d, doc: "reworded" })) };
    const same = await openTrialStore({ ...base, space: redocumented });
    assert.ok(same.ok && same.resumed === 3);
    if (same.ok) await same.store.close();
    // fresh: true replaces the store.
    const fresh = await openTrialStore({ ...base, seed: 8, fresh: true });
    assert.ok(fresh.ok && fresh.resumed === 0);
    if (fresh.ok) await fresh.store.close();
    assert.equal(readFileSync(join(dir, TRIAL_STORE_FILE), "utf8").trim().split("\n").length, 1);
    // runSearch refuses a store opened for another seed rather than mixing histories.
    const other = await open(dir, { seed: 8 });
    await assert.rejects(run(other), (error: unknown) => error instanceof AbliterateError && error.code === ErrorCodes.INVALID_ARGUMENT);
    await other.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a corrupt store is a SEARCH_STORE_INVALID error naming the file and the line", async () => {
  const dir = tempDir();
  try {
    const store = await open(dir);
    await run(store, (event) => event.type === "trial-finished" && event.trial.number === 3);
    await store.close();
    const path = join(dir, TRIAL_STORE_FILE);
    const lines = readFileSync(path, "utf8").split("\n");
    const expectInvalid = async (content: string, pattern: RegExp) => {
      writeFileSync(path, content);
      await assert.rejects(openTrialStore({ dir, space: SPACE, objectives: OBJECTIVES, inputKey: "model@abc+prompts@def", seed: SEED }), (error: unknown) => {
        assert.ok(error instanceof AbliterateError && error.code === ErrorCodes.SEARCH_STORE_INVALID, String(error));
        assert.ok(error.message.includes(path), error.message);
        assert.match(error.message, pattern);
        return true;
      });
    };
    await expectInvalid([lines[0], lines[1], "{not json", lines[3], ""].join("\n"), /line 3 is not JSON/);
    await expectInvalid([lines[0], lines[2], ""].join("\n"), /line 2: trial number 1 where 0 was expected/);
    await expectInvalid([lines[0], lines[1].replace(/"mode":"."/, '"mode":"z"'), ""].join("\n"), /line 2: "mode" = "z" is not one of the choices/);
    // A value may be null (not measured) only on an infeasible trial.
    const first = JSON.parse(lines[1]);
    const withNull = (feasible: boolean) => JSON.stringify({ ...first, values: [null, first.values[1]], violation: feasible ? 0 : 0.5, feasible });
    await expectInvalid([lines[0], withNull(true), ""].join("\n"), /line 2: values must be 2 finite numbers \(null only on an infeasible trial\)/);
    writeFileSync(path, [lines[0], withNull(false), ""].join("\n"));
    const reopened = await openTrialStore({ dir, space: SPACE, objectives: OBJECTIVES, inputKey: "model@abc+prompts@def", seed: SEED });
    assert.ok(reopened.ok);
    assert.deepEqual(reopened.store.trials[0].values, [null, first.values[1]]);
    await reopened.store.close();
    await expectInvalid("", /no header line/);
    await expectInvalid('{"format":"something-else","version":1}\n', /header/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
