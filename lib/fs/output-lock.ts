/**
 * The lock that keeps two runs from writing the same output (a folder or a single file): `TARGET.lock` holding
 * the owner's pid. docs/reliability.md § "Two runs writing the same output" explains each rule below; the races are
 * tested deterministically by test/unit/reliability-output-lock.test.ts.
 */
import { randomBytes } from "node:crypto";
import { closeSync, fstatSync, linkSync, openSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from "node:fs";
import { resolve } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";

export interface OutputLock {
  lockPath: string;
  /**
   * The lock was taken over from a dead run: that run was killed while writing this output, so what it left
   * beside the output (a partial folder) is abliterate's own.
   */
  tookOverStale: boolean;
  /** Removes the lock if it is still ours. */
  release(): void;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Locks held by this process: a second run inside the same process carries our pid, so the pid alone cannot refuse it. */
const heldLocks = new Set<string>();

interface LockOwner {
  pid: number;
  inode: number;
}

/** The lock's owner and inode, read through one descriptor so both describe the same file; undefined when it is gone. */
function readLockOwner(lockPath: string): LockOwner | undefined {
  let fd: number;
  try {
    fd = openSync(lockPath, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  try {
    return { inode: fstatSync(fd).ino, pid: Number.parseInt(readFileSync(fd, "utf8"), 10) };
  } finally {
    closeSync(fd);
  }
}

/**
 * Creates the lock with the pid already in it and returns its inode, or undefined when a lock exists: the pid goes
 * into a private claim file that is then hard-linked to the lock path (atomic, fails when the lock exists). Creating
 * the lock and then writing the pid would let a second run read an empty lock in between and take it for a stale one.
 */
function createLock(lockPath: string, claimPath: string): number | undefined {
  try {
    linkSync(claimPath, lockPath);
    return statSync(claimPath).ino;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return undefined;
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "ENOSYS") throw error;
  }
  // A filesystem without hard links: exclusive create, which leaves a moment where the lock is still empty.
  let fd: number;
  try {
    fd = openSync(lockPath, "wx");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return undefined;
    throw error;
  }
  try {
    writeSync(fd, `${process.pid}\n`);
    return fstatSync(fd).ino;
  } finally {
    closeSync(fd);
  }
}

/**
 * Removes a stale lock only if it is still the file judged stale. Two runs can both judge the same dead lock
 * stale; unlinking by name would let the slower one delete the lock the faster one just created. Renaming is
 * atomic, so the lock is moved aside first and checked (inode and pid); a live lock moved by mistake is put back.
 */
function removeStaleLock(lockPath: string, stale: LockOwner): boolean {
  const aside = `${lockPath}.stale-${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    renameSync(lockPath, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw error;
  }
  try {
    // Inode numbers are reused at once after an unlink, so the pid must match too; a new lock never holds a dead pid.
    const moved = readLockOwner(aside);
    if (moved !== undefined && (moved.inode !== stale.inode || moved.pid !== stale.pid)) {
      try {
        linkSync(aside, lockPath);
      } catch {
        // A third run took the lock meanwhile; it holds it now.
      }
      return false;
    }
    return moved !== undefined;
  } finally {
    unlinkSync(aside);
  }
}

/** Releases the lock only while it is still ours: a lock taken over in error must not cost its new owner theirs. */
function releaseLock(lockPath: string, inode: number): void {
  heldLocks.delete(resolve(lockPath));
  const owner = readLockOwner(lockPath);
  if (owner !== undefined && owner.inode === inode && owner.pid === process.pid) rmSync(lockPath, { force: true });
}

export interface AcquireOutputLockParams {
  /** The output the lock guards (named in the errors). */
  target: string;
  /** Default `TARGET.lock`. */
  lockPath?: string;
}

/** Takes the lock on `target`, or throws OUTPUT_LOCKED naming it when another live run holds it. */
export function acquireOutputLock(params: AcquireOutputLockParams): OutputLock {
  const lockPath = params.lockPath ?? `${params.target}.lock`;
  const key = resolve(lockPath);
  const claimPath = `${lockPath}.claim-${process.pid}-${randomBytes(4).toString("hex")}`;
  writeFileSync(claimPath, `${process.pid}\n`, { flag: "wx" });
  let tookOverStale = false;
  try {
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const inode = createLock(lockPath, claimPath);
      if (inode !== undefined) {
        heldLocks.add(key);
        return { lockPath, tookOverStale, release: () => releaseLock(lockPath, inode) };
      }
      const owner = readLockOwner(lockPath);
      if (owner === undefined) continue; // released between our attempt and our look
      if (owner.pid === process.pid && heldLocks.has(key)) {
        throw new AbliterateError(ErrorCodes.OUTPUT_LOCKED, `another run in this process is writing this output (lock ${lockPath})`, { file: params.target });
      }
      // Our own pid on a lock this process does not hold is a dead run's pid reused (containers restart at low pids).
      if (Number.isInteger(owner.pid) && owner.pid > 0 && owner.pid !== process.pid && processAlive(owner.pid)) {
        throw new AbliterateError(ErrorCodes.OUTPUT_LOCKED, `another abliterate run (pid ${owner.pid}) is writing this output; wait for it or remove ${lockPath} if it is gone`, { file: params.target });
      }
      if (removeStaleLock(lockPath, owner)) tookOverStale = true;
    }
  } finally {
    rmSync(claimPath, { force: true });
  }
  throw new AbliterateError(ErrorCodes.OUTPUT_LOCKED, `could not take the lock ${lockPath}`, { file: params.target });
}

/** Whether `pid` names a live process (used to tell a dead run's leftovers from a live run's). */
export function isProcessAlive(pid: number): boolean {
  return Number.isInteger(pid) && pid > 0 && processAlive(pid);
}
