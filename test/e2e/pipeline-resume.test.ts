/**
 * The one command's resume keys and output folder (issue: "the rerun that reuses the wrong output"): a rerun with any
 * changed surgery input redoes the surgery (refusing to replace OUT without --force), a rerun with identical inputs
 * reuses every stage and leaves OUT's bytes alone, a damaged OUT is never reused, edited input weights invalidate
 * every stage, and results that change alone are replaced atomically while the shards stay untouched.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUILTIN_HARMFUL_PROMPTS, BUILTIN_HARMLESS_PROMPTS } from "../../lib/directions/builtin-prompts.js";
import { writePlantedRefusalModel } from "../../lib/directions/planted-refusal-model.js";
import { runtimeInfo } from "../../lib/native/addon.js";
import { readSafetensorsHeader } from "../../lib/safetensors/read-header.js";
import { runCli } from "../helpers/run-cli.js";

const ENV = { HF_HUB_OFFLINE: "1" };

function snapshot(dir: string): Record<string, { bytes: string; mtimeMs: number; ino: number }> {
  return Object.fromEntries(
    readdirSync(dir).map((name) => {
      const info = statSync(join(dir, name));
      return [name, { bytes: readFileSync(join(dir, name)).toString("base64"), mtimeMs: info.mtimeMs, ino: info.ino }];
    }),
  );
}

async function setUp() {
  const root = mkdtempSync(join(tmpdir(), "abl-resume-"));
  const planted = await writePlantedRefusalModel({ dir: join(root, "model") });
  writeFileSync(join(root, "harmful.txt"), BUILTIN_HARMFUL_PROMPTS.join("\n"));
  writeFileSync(join(root, "harmless.txt"), BUILTIN_HARMLESS_PROMPTS.join("\n"));
  const out = join(root, "out");
  const base = [planted.dir, "--harmful", join(root, "harmful.txt"), "--harmless", join(root, "harmless.txt"), "--out", out, "--max-new-tokens", "4", "--trials", "30"];
  return { root, planted, out, base };
}

/** Flips one byte inside the named tensor of OUT's shard. */
async function flipByteOf(out: string, tensor: string): Promise<void> {
  const shard = join(out, "model.safetensors");
  const header = await readSafetensorsHeader(shard);
  const entry = header.tensors.find((t) => t.name === tensor)!;
  const bytes = readFileSync(shard);
  bytes[header.dataStart + entry.dataOffsets[0] + 5] ^= 0x10;
  writeFileSync(shard, bytes);
}

test("a rerun with a changed α does not reuse OUT: refused without --force, redone with it, and every record says 1.5", async () => {
  const { root, out, base } = await setUp();
  try {
    const first = await runCli([...base, "--direction-layer", "2"], { env: ENV });
    assert.equal(first.status, 0, first.stderr);
    assert.equal(JSON.parse(readFileSync(join(out, "abliteration.json"), "utf8")).scale, 1);
    const before = snapshot(out);

    const changed = await runCli([...base, "--direction-layer", "2", "--scale", "1.5"], { env: ENV });
    assert.equal(changed.status, 1, changed.stderr);
    assert.match(changed.stderr, /OUTPUT_EXISTS.*other inputs \(α 1, layers 0:4.*direction row 2.*pass --force to replace it/s);
    assert.doesNotMatch(changed.stderr, /surgery: reused/);
    assert.deepEqual(snapshot(out), before, "a refused run leaves OUT as it was");

    const forced = await runCli([...base, "--direction-layer", "2", "--scale", "1.5", "--force"], { env: ENV });
    assert.equal(forced.status, 0, forced.stderr);
    assert.doesNotMatch(forced.stderr, /surgery: reused/);
    const provenance = JSON.parse(readFileSync(join(out, "abliteration.json"), "utf8"));
    assert.equal(provenance.scale, 1.5);
    assert.equal(JSON.parse(readFileSync(join(out, "report.json"), "utf8")).surgery.scale, 1.5);
    // The layer was given, not selected: the card's note says so.
    assert.ok(provenance.notes.some((n: string) => n.includes("layer index 2 (given with --direction-layer)")), provenance.notes.join("\n"));
    assert.ok(!provenance.notes.some((n: string) => n.includes("selected automatically")));
    // The evaluation was redone for the new edit: its key covers the surgery's.
    assert.doesNotMatch(forced.stderr, /evaluation: reused/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a rerun with identical inputs reuses every stage, says so, and changes no byte (nor inode) of OUT", async () => {
  const { root, out, base } = await setUp();
  try {
    const first = await runCli(base, { env: ENV });
    assert.equal(first.status, 0, first.stderr);
    const before = snapshot(out);
    const second = await runCli(base, { env: ENV });
    assert.equal(second.status, 0, second.stderr);
    for (const stage of ["prompts", "signature", "directions", "selection", "surgery", "evaluation", "report"]) assert.match(second.stderr, new RegExp(`^${stage}: reused`, "m"), second.stderr);
    assert.match(second.stderr, /surgery: reused .* \(same inputs; verified again just now\)/);
    assert.deepEqual(snapshot(out), before);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("when only the evaluation changes, the shards stay untouched and the results are replaced atomically", async () => {
  const { root, out, base } = await setUp();
  try {
    assert.equal((await runCli(base, { env: ENV })).status, 0);
    const before = snapshot(out);
    const run = await runCli(base.map((arg, i) => (base[i - 1] === "--max-new-tokens" ? "6" : arg)), { env: ENV });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /surgery: reused/);
    assert.doesNotMatch(run.stderr, /evaluation: reused/);
    const after = snapshot(out);
    assert.deepEqual(after["model.safetensors"], before["model.safetensors"]);
    assert.deepEqual(after["config.json"], before["config.json"]);
    for (const name of ["abliteration.json", "report.json"]) assert.notEqual(after[name].ino, before[name].ino, `${name} was replaced, not rewritten in place`);
    assert.equal(JSON.parse(readFileSync(join(out, "abliteration.json"), "utf8")).evaluation.maxNewTokens, 6);
    assert.deepEqual(readdirSync(out).filter((n) => n.endsWith(".tmp")), [], "no temporary file left");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a byte flipped in OUT (edited or untouched tensor) is caught by a fresh verification: OUT is rebuilt, never reused", async () => {
  const { root, out, base } = await setUp();
  try {
    assert.equal((await runCli(base, { env: ENV })).status, 0);
    const good = readFileSync(join(out, "model.safetensors"));
    for (const tensor of ["model.layers.0.self_attn.o_proj.weight", "model.layers.1.mlp.up_proj.weight"]) {
      await flipByteOf(out, tensor);
      const rerun = await runCli(base, { env: ENV });
      assert.equal(rerun.status, 0, rerun.stderr);
      assert.doesNotMatch(rerun.stderr, /surgery: reused/, tensor);
      assert.match(rerun.stderr, /no longer verifies .*rebuilding it/, tensor);
      assert.deepEqual(readFileSync(join(out, "model.safetensors")), good, `${tensor}: the rebuilt shard is the good one`);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a rerun in other arithmetic (--compute) recomputes exactly the stages whose arithmetic changes", async () => {
  const { root, out, base } = await setUp();
  const tables = runtimeInfo().kernels.forwardCompute;
  const reused = (stderr: string, stage: string) => new RegExp(`^${stage}: reused`, "m").test(stderr);
  try {
    // Default: directions in fp32, the other forward stages under auto, which on this F32 model sums as fp32 does
    // (test/unit/forward-arithmetic.test.ts): the report names fp32's table, and --compute fp32 reuses every stage.
    assert.equal((await runCli(base, { env: ENV })).status, 0);
    const arithmetic = () => JSON.parse(readFileSync(join(out, "report.json"), "utf8")).arithmetic;
    assert.deepEqual(arithmetic(), { directions: tables.fp32, scoring: tables.fp32 }, "the report says which arithmetic ran");
    const fp32 = await runCli([...base, "--compute", "fp32", "--force"], { env: ENV });
    assert.equal(fp32.status, 0, fp32.stderr);
    for (const stage of ["prompts", "directions", "signature", "selection", "evaluation"]) assert.ok(reused(fp32.stderr, stage), `--compute fp32 after auto on F32 weights: ${stage}\n${fp32.stderr}`);
    const bf16 = await runCli([...base, "--compute", "bf16", "--force"], { env: ENV });
    assert.equal(bf16.status, 0, bf16.stderr);
    assert.ok(reused(bf16.stderr, "prompts"), bf16.stderr);
    assert.deepEqual(arithmetic(), { directions: tables.bf16, scoring: tables.bf16 });
    for (const stage of ["signature", "directions", "selection", "evaluation"]) assert.equal(reused(bf16.stderr, stage), tables.bf16 === tables.fp32, `--compute bf16 after fp32: ${stage}`);
    const again = await runCli([...base, "--compute", "bf16"], { env: ENV });
    for (const stage of ["prompts", "signature", "directions", "selection", "surgery", "evaluation", "report"]) assert.ok(reused(again.stderr, stage), `--compute bf16 twice: ${stage}\n${again.stderr}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("edited input weights invalidate every stage (with --force), whatever the folder is called", async () => {
  const { root, planted, out, base } = await setUp();
  try {
    assert.equal((await runCli(base, { env: ENV })).status, 0);
    const shard = join(planted.dir, "model.safetensors");
    const header = await readSafetensorsHeader(shard);
    const entry = header.tensors.find((t) => t.name === "model.layers.2.mlp.gate_proj.weight")!;
    const bytes = readFileSync(shard);
    bytes[header.dataStart + entry.dataOffsets[0] + 3] ^= 0x01;
    writeFileSync(shard, bytes);
    const rerun = await runCli([...base, "--force"], { env: ENV });
    assert.equal(rerun.status, 0, rerun.stderr);
    assert.match(rerun.stderr, /^prompts: reused/m, "the prompts do not depend on the weights");
    for (const stage of ["signature", "directions", "selection", "surgery", "evaluation"]) assert.doesNotMatch(rerun.stderr, new RegExp(`^${stage}: reused`, "m"), rerun.stderr);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("--work-dir equal to --out, or inside it, is refused before anything runs", async () => {
  const { root, out, base } = await setUp();
  try {
    for (const workDir of [out, join(out, "work")]) {
      const run = await runCli([...base, "--work-dir", workDir, "--force"], { env: ENV });
      assert.equal(run.status, 1, run.stderr);
      assert.match(run.stderr, /--work-dir .* and --out .* overlap/);
      assert.throws(() => statSync(out), /ENOENT/);
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
