import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PARTIAL_MARKER, prepareOutputFolder } from "../../lib/surgery/output-folder.js";
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

test("the partial folder carries a marker until commit; a folder without one is never emptied (issue 17 item 11)", async () => {
  const root = scratch();
  try {
    const final = join(root, "out");
    const first = await prepareOutputFolder({ finalDir: final });
    assert.equal(JSON.parse(readFileSync(join(first.partialDir, PARTIAL_MARKER), "utf8")).tool, "abliterate");
    writeFileSync(join(first.partialDir, "a.txt"), "a");
    await first.commit();
    assert.ok(!existsSync(join(final, PARTIAL_MARKER)), "OUT never carries the marker");

    // Someone else's OUT.partial: refused with or without --force, keepPartial or not, and left as it was.
    mkdirSync(`${final}2.partial`);
    writeFileSync(join(`${final}2.partial`, "thesis.tex"), "years of work");
    for (const options of [{}, { force: true }, { keepPartial: true }, { force: true, keepPartial: true }]) {
      await assert.rejects(
        prepareOutputFolder({ finalDir: `${final}2`, ...options }),
        (error: unknown) => error instanceof AbliterateError && error.code === "OUTPUT_EXISTS" && /no \.abliterate-partial marker/.test(error.message),
      );
      assert.equal(readFileSync(join(`${final}2.partial`, "thesis.tex"), "utf8"), "years of work");
      assert.ok(!existsSync(`${final}2.lock`), "the refusal released the lock");
    }
    // An empty unmarked one holds nothing to lose: it is used (and marked).
    mkdirSync(`${final}3.partial`);
    const third = await prepareOutputFolder({ finalDir: `${final}3` });
    assert.ok(existsSync(join(third.partialDir, PARTIAL_MARKER)));
    await third.abandon();
    // A marked one is a killed run's: kept for resume, emptied otherwise.
    const killed = await prepareOutputFolder({ finalDir: `${final}4` });
    writeFileSync(join(killed.partialDir, "shard"), "x");
    rmSync(`${final}4.lock`); // the run dies holding it
    const resumed = await prepareOutputFolder({ finalDir: `${final}4`, keepPartial: true });
    assert.ok(existsSync(join(resumed.partialDir, "shard")));
    await resumed.abandon();
    // Killed between removing the marker and the rename: unmarked, but its dead run's lock is still there.
    mkdirSync(`${final}5.partial`);
    writeFileSync(join(`${final}5.partial`, "shard"), "complete");
    writeFileSync(`${final}5.lock`, "999999999\n");
    const recovered = await prepareOutputFolder({ finalDir: `${final}5`, keepPartial: true });
    assert.equal(readFileSync(join(recovered.partialDir, "shard"), "utf8"), "complete");
    assert.ok(existsSync(join(recovered.partialDir, PARTIAL_MARKER)), "and marked again");
    await recovered.abandon();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("an interrupted --force replace is repaired by the next run (issue 17 item 14)", async () => {
  const root = scratch();
  try {
    const final = join(root, "out");
    // Killed between its two renames: the old output is OUT.old-PID and there is no OUT.
    mkdirSync(`${final}.old-999999999`);
    writeFileSync(join(`${final}.old-999999999`, "a.txt"), "previous output");
    await assert.rejects(prepareOutputFolder({ finalDir: final }), (error: unknown) => error instanceof AbliterateError && error.code === "OUTPUT_EXISTS" && /restored .*out from out\.old-999999999/.test(error.message));
    assert.equal(readFileSync(join(final, "a.txt"), "utf8"), "previous output");
    assert.ok(!existsSync(`${final}.old-999999999`));
    // Killed while removing the old one after both renames: OUT is the new output, the old one goes.
    mkdirSync(`${final}.old-888888888`);
    const forced = await prepareOutputFolder({ finalDir: final, force: true });
    assert.deepEqual(forced.notes, ["removed out.old-888888888, the output a killed --force run had already replaced"]);
    assert.ok(!existsSync(`${final}.old-888888888`));
    assert.ok(existsSync(join(final, "a.txt")), "OUT itself is untouched until commit");
    await forced.abandon();
    // Names that only look similar are not ours.
    mkdirSync(`${final}.old-backup`);
    const again = await prepareOutputFolder({ finalDir: final, force: true });
    assert.deepEqual(again.notes, []);
    assert.ok(existsSync(`${final}.old-backup`));
    await again.abandon();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("output paths that are empty or end in . or .. are refused before anything is created (issue 17 item 17)", async () => {
  const root = scratch();
  try {
    for (const finalDir of ["", "   ", `${join(root, "x")}/.`, `${join(root, "x")}/..`, "/"]) {
      await assert.rejects(prepareOutputFolder({ finalDir }), (error: unknown) => error instanceof AbliterateError && error.code === "INVALID_ARGUMENT", JSON.stringify(finalDir));
    }
    assert.deepEqual(readdirSync(root), []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
