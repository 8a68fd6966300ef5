/**
 * The default search end to end on a planted model where some candidates break the model: the chosen point removes the
 * behaviour with the other set intact, report.json holds every trial, the front and the chosen point, report.html plots
 * them, a rerun with more trials continues from the saved ones, a time budget stops cleanly, and apply-trial applies
 * another point of the front exactly (verified) without searching again.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writePlantedSearchCase } from "../helpers/planted-search-case.js";
import { runCli } from "../helpers/run-cli.js";

const ENV = { HF_HUB_OFFLINE: "1" };

test("search: chooses a clean edit, records the front, resumes, stops on a budget, and apply-trial applies another point", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "abl-search-"));
  try {
    const { planted, common } = await writePlantedSearchCase(root);
    const work = join(root, "work");
    const base = [...common, "--work-dir", work];

    const first = await runCli([...base, "--out", join(root, "out"), "--trials", "30"], { env: ENV });
    assert.equal(first.status, 0, first.stderr);
    assert.match(first.stderr, /search: trial \d+\/30, best so far #\d+/);
    const report = JSON.parse(readFileSync(join(root, "out", "report.json"), "utf8"));
    const search = report.search;
    assert.equal(search.trials.length, 30);
    assert.equal(search.singleLayerTrial, 0, "trial 0 is the single-layer rule's edit");
    assert.ok(search.pareto.length >= 1 && search.pareto.every((n: number) => search.trials[n].feasible));
    const chosen = search.trials[search.chosen.number];
    assert.ok(search.pareto.includes(chosen.number));
    assert.ok(chosen.values[0] <= 0.05 && chosen.unchanged >= 0.9, JSON.stringify(chosen));
    // The trials whose direction is the breaking mix are infeasible, not chosen.
    assert.ok(search.trials.some((trial: { feasible: boolean }) => !trial.feasible), "some trial broke the other set");
    // Their damage ruled them out before their behaviour pass ran: measured KL, behaviour not measured; every
    // feasible trial has both.
    for (const trial of search.trials as { number: number; feasible: boolean; values: (number | null)[] }[]) {
      if (trial.feasible) assert.ok(trial.values.every((v) => typeof v === "number"), `feasible trial #${trial.number}: ${JSON.stringify(trial.values)}`);
      // (a null edit, every α 0, is the unedited model: its behaviour is the baseline's and its KL 0, no pass run)
      else assert.ok(trial.values[0] === null || trial.values[1] === 0, `infeasible trial #${trial.number}: ${JSON.stringify(trial.values)}`);
    }
    assert.match(readFileSync(join(root, "out", "report.html"), "utf8"), /infeasible trial\(s\) are not drawn: their damage ruled them out/);
    const e = report.evaluation;
    t.diagnostic(`search: ${search.trials.length} trials (first ${search.timing.firstTrialSeconds.toFixed(3)} s, total ${search.timing.totalSeconds.toFixed(1)} s), chosen #${chosen.number}: behaviour ${chosen.values[0].toFixed(3)}, KL ${chosen.values[1].toFixed(5)}; held-out ${e.before.positiveBehaviour} → ${e.after.positiveBehaviour}, unchanged ${e.negativeUnchanged}`);
    assert.ok(e.after.positiveBehaviour <= 0.05 && e.negativeUnchanged >= 0.95);
    const record = JSON.parse(readFileSync(join(root, "out", "abliteration.json"), "utf8"));
    assert.equal(record.selection.search.chosen.number, chosen.number);
    assert.equal(record.alphas.attn.length, planted.numLayers);
    const html = readFileSync(join(root, "out", "report.html"), "utf8");
    assert.match(html, /aria-label="behaviour against damage of every search trial"/);
    assert.match(html, new RegExp(`chosen #${chosen.number}</text>`));

    // More trials: the saved 30 are continued, not redone.
    const more = await runCli([...base, "--out", join(root, "out2"), "--trials", "36"], { env: ENV });
    assert.equal(more.status, 0, more.stderr);
    assert.match(more.stderr, /continuing from 30 saved trial\(s\)/);
    assert.equal(JSON.parse(readFileSync(join(root, "out2", "report.json"), "utf8")).search.trials.length, 36);

    // A budget stops cleanly and keeps the best so far.
    const budget = await runCli([...common, "--work-dir", join(root, "work-budget"), "--out", join(root, "out3"), "--trials", "100000", "--time-budget", "1s"], { env: ENV });
    assert.equal(budget.status, 0, budget.stderr);
    const budgeted = JSON.parse(readFileSync(join(root, "out3", "report.json"), "utf8")).search;
    assert.equal(budgeted.timing.stopped, "time-budget");
    assert.ok(budgeted.trials.length >= 1 && budgeted.trials.length < 100000);

    // Another point of the front, applied without searching, verified against its own α.
    const other = search.pareto.find((n: number) => n !== chosen.number) ?? chosen.number;
    const applied = await runCli(["apply-trial", planted.dir, work, String(other), "--out", join(root, "other"), "--json"], { env: ENV });
    assert.equal(applied.status, 0, applied.stderr);
    const result = JSON.parse(applied.stdout);
    assert.equal(result.trial, other);
    assert.equal(result.verification.passed, true);
    const verified = await runCli(["verify", planted.dir, join(root, "other"), "--direction", join(work, `trial-${other}-direction.safetensors`)], { env: ENV });
    assert.equal(verified.status, 0, verified.stderr);
    const refused = await runCli(["apply-trial", planted.dir, work, "9999", "--out", join(root, "none")], { env: ENV });
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /has no trial 9999/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
