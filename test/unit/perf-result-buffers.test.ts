/**
 * A forward result's hidden and logits arrays lie on the engine's own pages (no copy into JS): an array stays
 * intact while later jobs of the same shape run, and once JS drops one, its pages serve a later job, which still
 * returns the right numbers. In a child with --expose-gc, so the test decides when arrays are collected. The
 * trained own-phrasing model's 32 000-token vocabulary makes 40 rows of logits 5 MB, past the large-page threshold.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { trainedModelDir } from "../golden/trained/trained-fixtures.js";

const engineModule = fileURLToPath(new URL("../../lib/engine/load-forward-model.js", import.meta.url));
const runModule = fileURLToPath(new URL("../../lib/engine/run-forward.js", import.meta.url));

test("result arrays survive later jobs, and their pages serve a job after JS drops them", (t) => {
  const script = `
    const { loadForwardModel } = await import(${JSON.stringify(engineModule)});
    const { runForward } = await import(${JSON.stringify(runModule)});
    const model = await loadForwardModel(${JSON.stringify(trainedModelDir("own-phrasing"))});
    const prompt = (seed) => Array.from({ length: 48 }, (_, i) => 1 + ((seed * 7919 + i * 104729) % 31000));
    const run = (seed) => runForward({ model, prompts: [prompt(seed), prompt(seed + 1)], positions: "all", logits: { last: [20, 20] } });
    const same = (a, b) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
    const first = await run(1);
    const kept = { logits: Float32Array.from(first.logits), hidden: Float32Array.from(first.hidden) };
    const checks = { logitsBytes: first.logits.byteLength, ownBuffer: first.logits.buffer.byteLength === first.logits.byteLength };
    // Same shape, other tokens, while the first arrays are alive: they must not change.
    let other = await run(5);
    checks.otherDiffers = !same(other.logits, kept.logits);
    checks.firstIntactWhileAlive = same(first.logits, kept.logits) && same(first.hidden, kept.hidden);
    // Drop the other run's arrays and collect them: their pages go back for reuse. The addon's finalizers run after
    // the collection, on a later turn of the loop (under load, later than one setImmediate), so a job that found
    // nothing to reuse yet is dropped too and the next try waits longer; the first job that reuses ends it.
    other = undefined;
    let again;
    checks.tries = 0;
    while (checks.tries < 8) {
      checks.tries += 1;
      again = undefined;
      globalThis.gc();
      await new Promise((resolve) => setTimeout(resolve, 5 * 2 ** checks.tries));
      globalThis.gc();
      await new Promise((resolve) => setImmediate(resolve));
      again = await run(1);
      if (again.reusedBufferBytes >= checks.logitsBytes) break;
    }
    checks.reusedBytes = again.reusedBufferBytes;
    checks.againEqualsFirst = same(again.logits, kept.logits) && same(again.hidden, kept.hidden);
    checks.firstIntactAfterReuse = same(first.logits, kept.logits) && same(first.hidden, kept.hidden);
    // Writing into a returned array touches only that array.
    again.logits.fill(0);
    checks.firstIntactAfterWrite = same(first.logits, kept.logits);
    process.stdout.write(JSON.stringify(checks));`;
  const checks = JSON.parse(execFileSync(process.execPath, ["--expose-gc", "--input-type=module", "-e", script], { encoding: "utf8" }));
  assert.ok(checks.logitsBytes >= 4 << 20, `logits of ${checks.logitsBytes} bytes: below the large-page threshold, the test would not exercise it`);
  assert.equal(checks.ownBuffer, true, "each array has a buffer of its own");
  assert.equal(checks.otherDiffers, true);
  assert.equal(checks.firstIntactWhileAlive, true, "a live result array changed while a later job ran");
  assert.ok(checks.reusedBytes >= checks.logitsBytes, `the collected arrays' pages served a later job (${checks.reusedBytes} bytes reused after ${checks.tries} tries)`);
  t.diagnostic(`${checks.reusedBytes} bytes reused on try ${checks.tries}`);
  assert.equal(checks.againEqualsFirst, true, "a job on reused pages returned other numbers");
  assert.equal(checks.firstIntactAfterReuse, true);
  assert.equal(checks.firstIntactAfterWrite, true);
});
