/**
 * The output lock under races that a plain two-process test hits only by luck. Other runs are simulated at the
 * exact moment that matters by wrapping node:fs (syncBuiltinESMExports makes lib/ see the wrappers):
 * - a run that judged a dead lock stale must not delete a live lock another run created meanwhile;
 * - the lock file is never visible without its owner's pid (an empty lock reads as stale to everyone else);
 * - two runs inside one process (same pid) cannot both hold the lock;
 * - releasing a lock that is no longer ours leaves the new owner's lock alone.
 */
import { afterEach, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AbliterateError, ErrorCodes } from "../../lib/errors.js";
import { prepareOutputFolder } from "../../lib/surgery/output-folder.js";

type FsFunction = (...args: unknown[]) => unknown;
const fsTable = fs as unknown as Record<string, FsFunction>;
const originals = new Map<string, FsFunction>();

function wrapFs(name: string, wrapper: (original: FsFunction, args: unknown[]) => unknown): void {
  const original = originals.get(name) ?? fsTable[name];
  originals.set(name, original);
  fsTable[name] = (...args: unknown[]) => wrapper(original, args);
  syncBuiltinESMExports();
}

function restoreFs(): void {
  for (const [name, original] of originals) fsTable[name] = original;
  originals.clear();
  syncBuiltinESMExports();
}

afterEach(restoreFs);

function scratch(): string {
  return fs.mkdtempSync(join(tmpdir(), "abl-lock-"));
}

// pid 1 exists in every Linux pid namespace; a pid past pid_max exists in none.
const LIVE_PID = 1;
const DEAD_PID = 999_999_999;

function isLocked(error: unknown): boolean {
  return error instanceof AbliterateError && error.code === ErrorCodes.OUTPUT_LOCKED;
}

test("a run that judged a dead lock stale does not delete the live lock another run took meanwhile", async () => {
  const root = scratch();
  try {
    const final = join(root, "out");
    const lockPath = `${final}.lock`;
    fs.writeFileSync(lockPath, `${DEAD_PID}\n`);
    let raced = false;
    // The moment our run has read the dead pid, a faster run replaces the stale lock with its own live one.
    wrapFs("readFileSync", (original, args) => {
      const result = original(...args);
      if (!raced && String(result).trim() === String(DEAD_PID)) {
        raced = true;
        (originals.get("unlinkSync") ?? fs.unlinkSync)(lockPath);
        fs.writeFileSync(lockPath, `${LIVE_PID}\n`, { flag: "wx" });
      }
      return result;
    });
    await assert.rejects(prepareOutputFolder({ finalDir: final }), isLocked);
    assert.ok(raced, "the race was simulated");
    assert.equal(fs.readFileSync(lockPath, "utf8").trim(), String(LIVE_PID), "the live run keeps its lock");
    assert.ok(!fs.existsSync(`${final}.partial`), "the refused run created nothing");
    assert.deepEqual(fs.readdirSync(root).sort(), ["out.lock"], "no claim or aside files are left behind");
  } finally {
    restoreFs();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("the lock file is never visible without its owner's pid", async () => {
  const root = scratch();
  try {
    const final = join(root, "out");
    const lockPath = `${final}.lock`;
    const seen: string[] = [];
    // After every file-system call the lock code makes, look at the lock the way a concurrent run would.
    const look = () => {
      let text: string;
      try {
        text = (originals.get("readFileSync") as FsFunction)(lockPath, "utf8") as string;
      } catch {
        return; // not there: nothing another run could misread
      }
      seen.push(text);
    };
    for (const name of ["openSync", "writeSync", "closeSync", "linkSync", "renameSync", "writeFileSync", "readFileSync", "unlinkSync", "fstatSync", "statSync"]) {
      wrapFs(name, (original, args) => {
        const result = original(...args);
        look();
        return result;
      });
    }
    const held = await prepareOutputFolder({ finalDir: final });
    restoreFs();
    await held.abandon();
    assert.ok(seen.length > 0, "the lock was observed while it was taken");
    for (const text of seen) assert.equal(text.trim(), String(process.pid), `a concurrent run could have read the lock as ${JSON.stringify(text)}`);
  } finally {
    restoreFs();
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("two runs in one process cannot both hold the lock (they share a pid)", async () => {
  const root = scratch();
  try {
    const final = join(root, "out");
    const first = await prepareOutputFolder({ finalDir: final });
    await assert.rejects(prepareOutputFolder({ finalDir: final }), isLocked);
    // The same folder spelled differently is the same lock.
    await assert.rejects(prepareOutputFolder({ finalDir: `${final}/` }), isLocked);
    assert.ok(fs.existsSync(first.partialDir), "the refused run left the holder's partial folder alone");
    await first.abandon();
    const second = await prepareOutputFolder({ finalDir: final });
    await second.abandon();
    assert.deepEqual(fs.readdirSync(root), []);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("a stale lock carrying our own pid (a reused pid) is taken over", async () => {
  const root = scratch();
  try {
    const final = join(root, "out");
    fs.writeFileSync(`${final}.lock`, `${process.pid}\n`);
    const taker = await prepareOutputFolder({ finalDir: final });
    await taker.abandon();
    assert.ok(!fs.existsSync(`${final}.lock`));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("releasing a lock that another run has since taken leaves that run's lock in place", async () => {
  const root = scratch();
  try {
    const final = join(root, "out");
    const lockPath = `${final}.lock`;
    const held = await prepareOutputFolder({ finalDir: final });
    fs.unlinkSync(lockPath);
    fs.writeFileSync(lockPath, `${LIVE_PID}\n`);
    await held.abandon();
    assert.equal(fs.readFileSync(lockPath, "utf8").trim(), String(LIVE_PID));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
