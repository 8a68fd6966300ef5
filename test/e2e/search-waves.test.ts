/**
 * The one command's search in waves (--search-wave): the startup trials are the points and scores of the search one
 * trial at a time, every later trial is the sampler's point from the trials before its wave, a feasible trial has both
 * scores and an infeasible one its damage, and the wave size is recorded and keys the stage. Without a trial count,
 * the rest of trial 0's wave runs before the sizing, which prices every trial at that wave's share.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_STARTUP_TRIALS, suggestTrial } from "../../lib/directions/search/suggest-trial.js";
import type { SearchSpace } from "../../lib/directions/search/search-space.js";
import type { Trial } from "../../lib/directions/search/trial.js";
import { TRIAL_STORE_FILE } from "../../lib/directions/search/trial-store.js";
import { writePlantedSearchCase } from "../helpers/planted-search-case.js";
import { runCli } from "../helpers/run-cli.js";

const ENV = { HF_HUB_OFFLINE: "1" };
const TRIALS = 26;

test("search in waves: startup trials as one at a time, later ones from the trials before their wave", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "abl-search-waves-"));
  try {
    const { common: model } = await writePlantedSearchCase(root);
    const common = [...model, "--trials", String(TRIALS)];
    const searchOf = (out: string) => JSON.parse(readFileSync(join(root, out, "report.json"), "utf8")).search as { trials: unknown[]; timing: { wave: number } };
    // The work dir's trial store: every trial with its payload, after the key line.
    const storeOf = (work: string) => {
      const [head, ...lines] = readFileSync(join(root, work, TRIAL_STORE_FILE), "utf8").trim().split("\n");
      return { key: JSON.parse(head).key as { space: SearchSpace["dimensions"]; seed: number }, trials: lines.map((line) => JSON.parse(line) as Trial) };
    };

    const single = await runCli([...common, "--work-dir", join(root, "w1"), "--out", join(root, "o1")], { env: ENV });
    assert.equal(single.status, 0, single.stderr);
    assert.doesNotMatch(single.stderr, /waves of/, "a resident model's search goes one trial at a time by default");
    const waved = await runCli([...common, "--work-dir", join(root, "w4"), "--out", join(root, "o4"), "--search-wave", "4"], { env: ENV });
    assert.equal(waved.status, 0, waved.stderr);
    assert.match(waved.stderr, /search: trials go in waves of 4, each suggested from the trials before its wave\n/);
    assert.equal(searchOf("o1").timing.wave, 1);
    assert.equal(searchOf("o4").timing.wave, 4);
    assert.equal(searchOf("o4").trials.length, TRIALS);
    const a = storeOf("w1");
    const b = storeOf("w4");
    assert.equal(b.trials.length, TRIALS);
    const scores = (trial: Trial) => ({ number: trial.number, params: trial.params, values: trial.values, violation: trial.violation, feasible: trial.feasible, payload: trial.payload });
    // Trial 0 (the single-layer point) and the startup trials read no history: the same points, scored the same.
    assert.deepEqual(b.trials.slice(0, DEFAULT_STARTUP_TRIALS).map(scores), a.trials.slice(0, DEFAULT_STARTUP_TRIALS).map(scores));
    // Every TPE trial is the sampler's point from the trials before its wave (the wave of trial n starts at n − n mod 4).
    const { key } = b;
    const space: SearchSpace = { dimensions: key.space };
    for (const trial of b.trials.slice(DEFAULT_STARTUP_TRIALS)) {
      const start = trial.number - (trial.number % 4);
      assert.deepEqual(trial.params, suggestTrial({ space, trials: b.trials.slice(0, start), seed: key.seed, number: trial.number }), `trial ${trial.number}`);
    }
    assert.notDeepEqual(b.trials[DEFAULT_STARTUP_TRIALS + 1].params, a.trials[DEFAULT_STARTUP_TRIALS + 1].params, "trial 21 saw one trial fewer than one at a time");
    for (const trial of b.trials) {
      const payload = trial.payload as { behaviour: number | null; kl: number } | undefined;
      if (trial.feasible) assert.ok(trial.values.every((v) => typeof v === "number") && payload?.behaviour === trial.values[0] && payload.kl === trial.values[1], `feasible #${trial.number}`);
      else assert.ok(trial.values[0] === null || trial.values[1] === 0, `infeasible #${trial.number}: ${JSON.stringify(trial.values)}`);
    }
    assert.ok(b.trials.some((trial) => !trial.feasible) && b.trials.some((trial) => trial.feasible), "both kinds of trial in the waves");

    // Another wave size is another search stage (its trials differ), continuing from the saved trials.
    const again = await runCli([...common, "--work-dir", join(root, "w4"), "--out", join(root, "o4b"), "--search-wave", "2"], { env: ENV });
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /continuing from 26 saved trial\(s\)/);
    assert.equal(searchOf("o4b").timing.wave, 2);
    const refused = await runCli([...common, "--work-dir", join(root, "w4"), "--out", join(root, "o5"), "--search-wave", "0"], { env: ENV });
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /--search-wave must be a whole number from 1 to 64; got "0"/);
    t.diagnostic(`${b.trials.filter((trial) => trial.feasible).length} of ${TRIALS} waved trials feasible`);

    // Sized, not counted: the rest of trial 0's wave runs first, and its trials' share of their pass prices the rest.
    const sized = await runCli([...model, "--work-dir", join(root, "ws"), "--out", join(root, "os"), "--search-wave", "4", "--time-budget", "4s"], { env: ENV });
    assert.equal(sized.status, 0, sized.stderr);
    const note = /search: the 3 trials after trial 0 in its wave took (\d+\.\d) s each(?: \([^)]*\))?, trial 0 alone (\d+\.\d) s; (\d+) trials will run/.exec(sized.stderr);
    assert.ok(note, sized.stderr);
    // The first wave's lines come before the plan: they name no total (the wave's size would read as the plan).
    assert.doesNotMatch(sized.stderr, /search: trial \d+\/4,/);
    assert.match(sized.stderr.slice(0, note.index), /search: trial 2 \(first wave, before the sizing\), best so far /);
    const sizedSearch = JSON.parse(readFileSync(join(root, "os", "report.json"), "utf8")).search as { trials: Trial[]; timing: { plannedTrials: number } };
    assert.equal(sizedSearch.timing.plannedTrials, Number(note[3]));
    const share = sizedSearch.trials.slice(1, 4).reduce((sum, trial) => sum + trial.seconds, 0) / 3;
    assert.equal(note[1], share.toFixed(1), "the note's price is the first wave's mean share");
    assert.ok(sizedSearch.trials.length >= 4 && sizedSearch.trials.slice(1, 4).every((trial) => trial.seconds === sizedSearch.trials[1].seconds), "trials 1–3 shared one pass");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
