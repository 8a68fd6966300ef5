/**
 * SIGKILL during apply, at seeded points: no OUT may exist unless it is complete and verified, a rerun succeeds,
 * and a rerun reuses shards a killed run finished (they are verified again like every other shard).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI_PATH, runCli } from "../helpers/run-cli.js";
import { makeRandom, randomDirection, writeDirectionFile, writeTinyLlama } from "../helpers/tiny-llama.js";

const HIDDEN = 256;

function setup(root: string) {
  const model = join(root, "model");
  const direction = join(root, "d.safetensors");
  // ~30 MB of F32 in 4 shards: long enough to be killed mid-way, short enough for CI.
  writeTinyLlama({ dir: model, dtype: "F32", tied: false, hidden: HIDDEN, intermediate: 512, layers: 6, vocab: 2000, shards: 4 });
  writeDirectionFile(direction, [{ name: "direction", shape: [HIDDEN], values: randomDirection(HIDDEN, 11) }]);
  return { model, direction };
}

function startApply(model: string, direction: string, out: string) {
  return spawn(process.execPath, [CLI_PATH, "apply", model, "--direction", direction, "--out", out, "--quiet", "--threads", "1"], { stdio: "ignore" });
}

function waitExit(child: ReturnType<typeof spawn>): Promise<void> {
  // A child that already exited has emitted its events; waiting for them would never end.
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("close", () => resolve()));
}

/** Wall time of one uninterrupted apply, so the kills land inside a run however fast this machine is. */
async function applyMilliseconds(model: string, direction: string, out: string): Promise<number> {
  const started = Date.now();
  const child = startApply(model, direction, out);
  await waitExit(child);
  assert.equal(child.exitCode, 0, "the uninterrupted apply must succeed");
  rmSync(out, { recursive: true, force: true });
  return Date.now() - started;
}

test("killed at seeded points during apply: OUT exists only when complete and verified; reruns succeed", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-kill-"));
  try {
    const { model, direction } = setup(root);
    const random = makeRandom(2024);
    const duration = await applyMilliseconds(model, direction, join(root, "timing"));
    for (let trial = 0; trial < 5; trial += 1) {
      const out = join(root, `out-${trial}`);
      const child = startApply(model, direction, out);
      const delay = 30 + Math.floor(random() * duration);
      await new Promise((resolve) => setTimeout(resolve, delay));
      child.kill("SIGKILL");
      await waitExit(child);
      if (existsSync(out)) {
        // The kill came after the rename: the output must be complete and verified.
        const verified = await runCli(["verify", model, out, "--direction", direction]);
        assert.equal(verified.status, 0, `trial ${trial} (killed at ${delay} ms): an existing OUT must verify\n${verified.stdout}${verified.stderr}`);
      }
      const rerun = await runCli(["apply", model, "--direction", direction, "--out", out, "--json"]);
      if (existsSync(out) && rerun.status !== 0) {
        assert.match(rerun.stderr, /OUTPUT_EXISTS/, `trial ${trial}: ${rerun.stderr}`);
      } else {
        assert.equal(rerun.status, 0, `trial ${trial} (killed at ${delay} ms): rerun failed\n${rerun.stderr}`);
      }
      assert.ok(!existsSync(`${out}.partial`), `trial ${trial}: no partial folder after a successful rerun`);
      assert.equal((await runCli(["verify", model, out, "--direction", direction])).status, 0);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a rerun after a kill reuses the shards the killed run finished", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-kill-"));
  try {
    const { model, direction } = setup(root);
    const out = join(root, "out");
    const record = join(`${out}.partial`, ".abliterate-resume.json");
    const child = startApply(model, direction, out);
    const exited = waitExit(child);
    let killed = false;
    const deadline = Date.now() + 60_000;
    while (!killed && Date.now() < deadline) {
      try {
        if (Object.keys(JSON.parse(readFileSync(record, "utf8"))).length >= 1) {
          child.kill("SIGKILL");
          killed = true;
        }
      } catch {
        // Not written yet.
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await exited;
    assert.ok(killed, "the run was killed after finishing at least one shard");
    assert.ok(!existsSync(out), "a killed run leaves no OUT");
    const finished = Object.keys(JSON.parse(readFileSync(record, "utf8"))).length;
    const rerun = await runCli(["apply", model, "--direction", direction, "--out", out, "--json"]);
    assert.equal(rerun.status, 0, rerun.stderr);
    const report = JSON.parse(rerun.stdout);
    assert.ok(report.reusedShards >= 1 && report.reusedShards <= finished, `reused ${report.reusedShards} of ${finished} finished shards`);
    assert.equal(report.verification.passed, true);
    assert.ok(!existsSync(join(out, ".abliterate-resume.json")), "the resume record never reaches the output");

    // Different options give different bytes: nothing may be reused.
    const other = join(root, "other");
    const first = startApply(model, direction, other);
    await new Promise((resolve) => setTimeout(resolve, 150));
    first.kill("SIGKILL");
    await waitExit(first);
    const scaled = await runCli(["apply", model, "--direction", direction, "--out", other, "--scale", "2", "--json"]);
    assert.equal(scaled.status, 0, scaled.stderr);
    assert.equal(JSON.parse(scaled.stdout).reusedShards, 0);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
