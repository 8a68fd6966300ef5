/**
 * The signature pass also completes the negative validation prompts, and the run's scorers judge edits against those
 * completions instead of generating them again (test/unit/directions-given-completions.test.ts shows the scores are
 * the same bit for bit). Here, end to end: signature.json holds one completion per negative validation prompt, and a
 * work dir from before the field (its signature.json without it) still scores the candidates to the same numbers.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writePlantedRefusalModel } from "../../lib/directions/planted-refusal-model.js";
import { runCli } from "../helpers/run-cli.js";

const ENV = { HF_HUB_OFFLINE: "1" };

test("signature.json carries the negative validation completions, and a work dir without them scores the same", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-given-"));
  try {
    const planted = await writePlantedRefusalModel({ dir: join(root, "model") });
    const work = join(root, "work");
    const args = (out: string) => [planted.dir, "--out", join(root, out), "--work-dir", work, "--search", "single-layer", "--max-new-tokens", "4"];
    const first = await runCli(args("out1"), { env: ENV });
    assert.equal(first.status, 0, first.stderr);
    const prompts = JSON.parse(readFileSync(join(work, "prompts.json"), "utf8"));
    const signature = JSON.parse(readFileSync(join(work, "signature.json"), "utf8"));
    assert.equal(signature.method, "generation");
    assert.equal(signature.negativeValidation.tokens, signature.tokens);
    assert.equal(signature.negativeValidation.ids.length, prompts.splits.negative.validation.length);
    assert.ok(signature.negativeValidation.ids.every((ids: number[]) => ids.length >= 1 && ids.length <= signature.tokens));
    const scores = readFileSync(join(work, "candidate-scores.json"), "utf8");

    // As a work dir from before: no completions in signature.json, and the selection to redo.
    delete signature.negativeValidation;
    writeFileSync(join(work, "signature.json"), JSON.stringify(signature, null, 2));
    unlinkSync(join(work, "selection.json"));
    const again = await runCli(args("out2"), { env: ENV });
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stderr, /signature: reused/);
    assert.doesNotMatch(again.stderr, /selection: reused/);
    assert.equal(readFileSync(join(work, "candidate-scores.json"), "utf8"), scores);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
