import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { prepareOutputFolder } from "../../lib/surgery/output-folder.js";
import { AbliterateError } from "../../lib/errors.js";

function scratch(): string {
  return mkdtempSync(join(tmpdir(), "abl-out-"));
}

test("output appears only on commit, atomically; abandon leaves nothing", async () => {
  const root = scratch();
  try {
    const final = join(root, "out");
    const first = await prepareOutputFolder({ finalDir: final });
    writeFileSync(join(first.partialDir, "a.txt"), "a");
    assert.ok(!existsSync(final));
    assert.ok(existsSync(`${final}.lock`));
    await first.commit();
    assert.equal(readFileSync(join(final, "a.txt"), "utf8"), "a");
    assert.ok(!existsSync(`${final}.partial`) && !existsSync(`${final}.lock`));

    await assert.rejects(prepareOutputFolder({ finalDir: final }), (error: unknown) => error instanceof AbliterateError && error.code === "OUTPUT_EXISTS");
    assert.ok(!existsSync(`${final}.lock`), "a refused run releases its lock");

    const forced = await prepareOutputFolder({ finalDir: final, force: true });
    writeFileSync(join(forced.partialDir, "b.txt"), "b");
    await forced.abandon();
    assert.ok(existsSync(join(final, "a.txt")), "an abandoned forced run keeps the old output");
    assert.ok(!existsSync(`${final}.partial`));

    const replaced = await prepareOutputFolder({ finalDir: final, force: true });
    writeFileSync(join(replaced.partialDir, "b.txt"), "b");
    await replaced.commit();
    assert.ok(!existsSync(join(final, "a.txt")) && existsSync(join(final, "b.txt")));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a second writer of the same output gets a lock error; a stale lock from a dead process is taken over", async () => {
  const root = scratch();
  try {
    const final = join(root, "out");
    const holder = await prepareOutputFolder({ finalDir: final });
    writeFileSync(`${final}.lock`, "1\n"); // pid 1 is always alive
    await assert.rejects(prepareOutputFolder({ finalDir: final }), (error: unknown) => error instanceof AbliterateError && error.code === "OUTPUT_LOCKED" && /pid 1/.test(error.message));
    await holder.abandon();

    mkdirSync(`${final}.partial`);
    writeFileSync(`${final}.lock`, "999999999\n"); // no such process
    const taker = await prepareOutputFolder({ finalDir: final });
    assert.equal(readFileSync(`${final}.lock`, "utf8").trim(), String(process.pid));
    await taker.abandon();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
