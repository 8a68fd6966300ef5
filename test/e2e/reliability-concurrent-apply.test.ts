/**
 * Several `apply` processes writing the same OUT at once: exactly one succeeds; every other one fails with
 * OUTPUT_LOCKED (it overlapped the winner) or OUTPUT_EXISTS (it started after the winner finished), naming OUT.
 * OUT verifies, and no partial folder, lock or claim file is left. One round starts from a stale lock of a dead
 * run, so all contenders race to take it over.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "../helpers/run-cli.js";
import { randomDirection, writeDirectionFile, writeTinyLlama } from "../helpers/tiny-llama.js";

const HIDDEN = 128;
const OFFLINE = { HF_HUB_OFFLINE: "1", HF_ENDPOINT: "http://127.0.0.1:9" };

test("concurrent applies into one OUT: one winner, the others get a lock (or exists) error, OUT is never corrupt", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-concurrent-"));
  try {
    const model = join(root, "model");
    const direction = join(root, "d.safetensors");
    // ~5 MB of F32: each run takes long enough for the others to start while it writes.
    writeTinyLlama({ dir: model, dtype: "F32", tied: false, hidden: HIDDEN, intermediate: 512, layers: 4, vocab: 4000, shards: 3 });
    writeDirectionFile(direction, [{ name: "direction", shape: [HIDDEN], values: randomDirection(HIDDEN, 5) }]);
    const rounds = [
      { contenders: 2, staleLock: false },
      { contenders: 3, staleLock: true },
    ];
    for (const [round, { contenders, staleLock }] of rounds.entries()) {
      const out = join(root, `out-${round}`);
      if (staleLock) writeFileSync(`${out}.lock`, "999999999\n");
      const runs = await Promise.all(
        Array.from({ length: contenders }, () => runCli(["apply", model, "--direction", direction, "--out", out, "--threads", "1", "--quiet"], { env: OFFLINE })),
      );
      const winners = runs.filter((run) => run.status === 0);
      assert.equal(winners.length, 1, `round ${round}: exactly one run succeeds\n${runs.map((run) => `${run.status}: ${run.stderr}`).join("\n")}`);
      for (const run of runs.filter((candidate) => candidate.status !== 0)) {
        assert.equal(run.status, 1, `round ${round}: a loser exits 1\n${run.stderr}`);
        assert.match(run.stderr, /^error \[(OUTPUT_LOCKED|OUTPUT_EXISTS)\]: .*out-\d/m, `round ${round}: ${run.stderr}`);
        assert.doesNotMatch(run.stderr, /internal error|\n\s+at /);
      }
      const verified = await runCli(["verify", model, out, "--direction", direction, "--json"], { env: OFFLINE });
      assert.equal(verified.status, 0, `round ${round}: OUT verifies\n${verified.stdout}${verified.stderr}`);
      assert.equal(JSON.parse(verified.stdout).passed, true);
      const leftovers = readdirSync(root).filter((name) => name.startsWith(`out-${round}.`));
      assert.deepEqual(leftovers, [], `round ${round}: no partial folder, lock or claim file remains`);
      assert.ok(existsSync(join(out, "abliteration.json")));
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
