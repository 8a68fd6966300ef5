/**
 * Disk full during `apply`, on a real small filesystem: a tmpfs mounted by the test (needs root; skipped with the
 * reason otherwise). Its size is computed from the model's files so that the disk fills at a chosen phase:
 * while the native executor writes a shard, while the other files are copied, and at the very last write
 * (abliteration.json). One page more must succeed, which shows the boundaries are where the test thinks.
 * Every failure must: exit 1 with `error [DISK_FULL]` naming the file, leave the filesystem empty (no OUT,
 * no OUT.partial, no lock), and leave the input byte-identical.
 * Without root, the file-size limit (RLIMIT_FSIZE with SIGXFSZ ignored, so writes fail with EFBIG) gives the
 * same write failure inside the native executor; that case runs everywhere.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CLI_PATH, PACKAGE_ROOT, runCli, type CliResult } from "../helpers/run-cli.js";
import { makeRandom, randomDirection, writeDirectionFile, writeTinyLlama } from "../helpers/tiny-llama.js";

const HIDDEN = 128;
const OFFLINE = { HF_HUB_OFFLINE: "1", HF_ENDPOINT: "http://127.0.0.1:9" };

function pageSize(): number {
  try {
    return Number(execFileSync("getconf", ["PAGESIZE"], { encoding: "utf8" }).trim()) || 4096;
  } catch {
    return 4096;
  }
}

/** Mounts a tmpfs of `bytes` at a fresh folder, or returns why it cannot. */
function mountTmpfs(root: string, name: string, bytes: number): { dir: string } | { skip: string } {
  const dir = join(root, name);
  mkdirSync(dir);
  const result = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${bytes}`, "tmpfs", dir], { encoding: "utf8" });
  if (result.status !== 0) {
    rmdirSync(dir);
    return { skip: `cannot mount a tmpfs here (${(result.stderr || result.error?.message || `exit ${result.status}`).trim()})` };
  }
  return { dir };
}

function unmount(dir: string): void {
  spawnSync("umount", [dir]);
  rmSync(dir, { recursive: true, force: true });
}

function hashFolder(dir: string): string {
  const hash = createHash("sha256");
  for (const name of readdirSync(dir).sort()) {
    hash.update(name);
    hash.update(readFileSync(join(dir, name)));
  }
  return hash.digest("hex");
}

function setup(root: string) {
  const model = join(root, "model");
  const direction = join(root, "d.safetensors");
  writeTinyLlama({ dir: model, dtype: "F32", tied: false, hidden: HIDDEN, intermediate: 2 * HIDDEN, layers: 2, vocab: 500, shards: 3 });
  // A large non-weight file, as tokenizer.json is in real checkpoints: the copy phase has real bytes to write.
  const random = makeRandom(77);
  writeFileSync(join(model, "tokenizer.json"), JSON.stringify({ vocab: Array.from({ length: 40_000 }, () => random().toString(36).slice(2)) }));
  writeDirectionFile(direction, [{ name: "direction", shape: [HIDDEN], values: randomDirection(HIDDEN, 3) }]);
  return { model, direction };
}

function assertCleanDiskFull(result: CliResult, mount: string, fileHint: RegExp, what: string): void {
  assert.equal(result.status, 1, `${what}: exit 1\n${result.stderr}`);
  assert.match(result.stderr, /^error \[DISK_FULL\]: .*No space left on device/im, `${what}: ${result.stderr}`);
  const line = result.stderr.split("\n").find((text) => text.startsWith("error [")) ?? "";
  assert.match(line, fileHint, `${what}: the error names the file`);
  assert.ok(line.includes(mount), `${what}: the named file is on the full filesystem: ${line}`);
  assert.doesNotMatch(result.stderr, /internal error|\n\s+at /, what);
  assert.deepEqual(readdirSync(mount), [], `${what}: no OUT, OUT.partial, lock or claim file is left`);
}

test("disk full on a small tmpfs: at a shard write, at the file copy, at the last write; one page more succeeds", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "abl-diskfull-"));
  try {
    const { model, direction } = setup(root);
    const before = hashFolder(model);
    const page = pageSize();
    const pages = (bytes: number) => Math.ceil(bytes / page) * page;
    const files = readdirSync(model).map((name) => ({ name, size: statSync(join(model, name)).size }));
    const shardBytes = files.filter((file) => file.name.endsWith(".safetensors")).reduce((sum, file) => sum + pages(file.size), 0);
    const allBytes = files.reduce((sum, file) => sum + pages(file.size), 0);
    // Beside the model's own files the output needs one page for the lock (OUT.lock), one for the resume record and
    // one for the partial folder's marker (.abliterate-partial); abliteration.json is written last, while all three
    // still exist.
    const lastWriteFails = allBytes + 3 * page;
    const cases = [
      { name: "shard", size: Math.floor(shardBytes / 2 / page) * page, file: /model-0000\d-of-00003\.safetensors/ },
      { name: "copy", size: shardBytes + 4 * page + 16 * page, file: /tokenizer\.json/ },
      { name: "last", size: lastWriteFails, file: /abliteration\.json/ },
    ];
    for (const [index, { name, size, file }] of cases.entries()) {
      const mounted = mountTmpfs(root, `mnt-${name}`, size);
      if ("skip" in mounted) {
        t.skip(mounted.skip);
        return;
      }
      try {
        const json = index === 0;
        const result = await runCli(["apply", model, "--direction", direction, "--out", join(mounted.dir, "out"), "--threads", "1", ...(json ? ["--json"] : [])], { env: OFFLINE });
        assertCleanDiskFull(result, mounted.dir, file, `${name} (${size} bytes)`);
        if (json) {
          const printed = JSON.parse(result.stdout);
          assert.equal(printed.ok, false);
          assert.equal(printed.error.code, "DISK_FULL");
          assert.ok(String(printed.error.file).startsWith(mounted.dir));
        } else {
          assert.equal(result.stdout, "", "nothing on stdout for a failure without --json");
        }
      } finally {
        unmount(mounted.dir);
      }
    }

    const roomy = mountTmpfs(root, "mnt-enough", lastWriteFails + page);
    if ("skip" in roomy) return;
    try {
      const out = join(roomy.dir, "out");
      const result = await runCli(["apply", model, "--direction", direction, "--out", out, "--threads", "1", "--quiet"], { env: OFFLINE });
      assert.equal(result.status, 0, `one page more is enough\n${result.stderr}`);
      const verified = await runCli(["verify", model, out, "--direction", direction], { env: OFFLINE });
      assert.equal(verified.status, 0, verified.stderr);
      assert.deepEqual(readdirSync(roomy.dir), ["out"]);
    } finally {
      unmount(roomy.dir);
    }
    assert.equal(hashFolder(model), before, "the input is byte-identical after every failure");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a write refused by the file-size limit (EFBIG) fails cleanly, naming the shard, in any environment", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-fsize-"));
  try {
    const { model, direction } = setup(root);
    const before = hashFolder(model);
    const out = join(root, "out");
    // ulimit -f counts 1024-byte blocks; 300 KiB is below every shard's size. SIGXFSZ is ignored so the write
    // returns EFBIG instead of killing the process.
    const script = `trap '' XFSZ; ulimit -f 300; exec "$0" "$@"`;
    const result = spawnSync("sh", ["-c", script, process.execPath, CLI_PATH, "apply", model, "--direction", direction, "--out", out, "--threads", "1"], {
      cwd: PACKAGE_ROOT,
      env: { ...process.env, ...OFFLINE },
      encoding: "utf8",
    });
    assert.equal(result.status, 1, result.stderr);
    assert.match(result.stderr, /^error \[(IO|DISK_FULL)\]: .*model-0000\d-of-00003\.safetensors.*File too large/m, result.stderr);
    assert.doesNotMatch(result.stderr, /internal error|\n\s+at /);
    assert.equal(result.stdout, "");
    assert.ok(!existsSync(out) && !existsSync(`${out}.partial`) && !existsSync(`${out}.lock`), "nothing is left of the output");
    assert.equal(hashFolder(model), before, "the input is byte-identical");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
