/**
 * lib/fs/write-output-file.ts, the single-file output rule of `activations --out` and `direction --out` (issue 17
 * item 4): atomic (temporary name, fsync, rename), refused over an existing file without `force` and over a folder
 * or FIFO even with it, never over an input, locked against a second writer, and leaving nothing else behind.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs, { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AbliterateError, ErrorCodes } from "../../lib/errors.js";
import { checkOutputFile, writeOutputFile } from "../../lib/fs/write-output-file.js";

function scratch(): string {
  return mkdtempSync(join(tmpdir(), "abl-outfile-"));
}

function hasCode(code: string, pattern?: RegExp): (error: unknown) => boolean {
  return (error) => error instanceof AbliterateError && error.code === code && (pattern === undefined || pattern.test(error.message));
}

test("writes the parts in order, creates the parent, and leaves no lock or temporary", async () => {
  const root = scratch();
  try {
    const path = join(root, "sub", "acts.safetensors");
    await writeOutputFile({ path, data: [Buffer.from("head"), new Uint8Array([1, 2, 3]), Buffer.from("tail")] });
    assert.deepEqual([...readFileSync(path)], [...Buffer.from("head"), 1, 2, 3, ...Buffer.from("tail")]);
    assert.deepEqual(readdirSync(join(root, "sub")), ["acts.safetensors"]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("an existing file is kept without force and replaced whole with it", async () => {
  const root = scratch();
  try {
    const path = join(root, "dirs.safetensors");
    writeFileSync(path, "the user's file");
    await assert.rejects(writeOutputFile({ path, data: Buffer.from("new") }), hasCode(ErrorCodes.OUTPUT_EXISTS, /already exists; pass --force/));
    await assert.rejects(checkOutputFile({ path }), hasCode(ErrorCodes.OUTPUT_EXISTS));
    assert.equal(readFileSync(path, "utf8"), "the user's file");
    assert.equal(await checkOutputFile({ path, force: true }), path);
    await writeOutputFile({ path, data: Buffer.from("new"), force: true });
    assert.equal(readFileSync(path, "utf8"), "new");
    assert.deepEqual(readdirSync(root), ["dirs.safetensors"]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a folder or a FIFO at the path is refused even with force", async () => {
  const root = scratch();
  try {
    mkdirSync(join(root, "folder"));
    writeFileSync(join(root, "folder", "inside"), "x");
    await assert.rejects(writeOutputFile({ path: join(root, "folder"), data: Buffer.from("x"), force: true }), hasCode(ErrorCodes.OUTPUT_EXISTS, /is a folder, not a file/));
    assert.ok(existsSync(join(root, "folder", "inside")));
    execFileSync("mkfifo", [join(root, "fifo")]);
    await assert.rejects(writeOutputFile({ path: join(root, "fifo"), data: Buffer.from("x"), force: true }), hasCode(ErrorCodes.OUTPUT_EXISTS, /is a FIFO/));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("empty, folder-like and dot paths are refused before anything is created", async () => {
  const root = scratch();
  try {
    for (const [path, pattern] of [["", /--out is empty/], [`${join(root, "d")}/`, /ends with "\/"/], [`${join(root, "x")}/.`, /ends in "\."/], [`${join(root, "x")}/..`, /ends in "\.\."/]] as const) {
      await assert.rejects(writeOutputFile({ path, data: Buffer.from("x") }), hasCode(ErrorCodes.INVALID_ARGUMENT, pattern), path);
    }
    assert.deepEqual(readdirSync(root), []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a path inside an input (the model folder) or equal to one (the prompts) is refused, with force too", async () => {
  const root = scratch();
  try {
    const model = join(root, "model");
    mkdirSync(model);
    writeFileSync(join(model, "model.safetensors"), "weights");
    writeFileSync(join(root, "prompts.txt"), "a\n");
    const inputs = [{ path: model, label: "the model" }, { path: join(root, "prompts.txt"), label: "the prompts file" }];
    await assert.rejects(writeOutputFile({ path: join(model, "model.safetensors"), data: Buffer.from("x"), force: true, inputs }), hasCode(ErrorCodes.INVALID_ARGUMENT, /lies inside the model/));
    await assert.rejects(writeOutputFile({ path: join(root, "prompts.txt"), data: Buffer.from("x"), force: true, inputs }), hasCode(ErrorCodes.INVALID_ARGUMENT, /is the prompts file/));
    assert.equal(readFileSync(join(model, "model.safetensors"), "utf8"), "weights");
    assert.equal(readFileSync(join(root, "prompts.txt"), "utf8"), "a\n");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a live writer's lock refuses a second one; a dead run's temporaries are removed", async () => {
  const root = scratch();
  try {
    const path = join(root, "acts.safetensors");
    writeFileSync(`${path}.lock`, "1\n"); // pid 1 is alive in every pid namespace
    await assert.rejects(writeOutputFile({ path, data: Buffer.from("x") }), hasCode(ErrorCodes.OUTPUT_LOCKED, /pid 1/));
    assert.ok(!existsSync(path));
    rmSync(`${path}.lock`);
    writeFileSync(`${path}.tmp-999999999-0badc0de`, "torn by a killed run");
    writeFileSync(`${path}.tmp-1-0badc0de`, "a live process's");
    await writeOutputFile({ path, data: Buffer.from("x") });
    assert.deepEqual(readdirSync(root).sort(), ["acts.safetensors", "acts.safetensors.tmp-1-0badc0de"]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("the data is fsynced before the rename; a failed rename leaves the old file and no temporary", async () => {
  const root = scratch();
  const originalRename = fs.promises.rename;
  const probe = await fs.promises.open(join(root, "probe"), "w");
  const handlePrototype = Object.getPrototypeOf(probe) as { sync: () => Promise<void> };
  await probe.close();
  rmSync(join(root, "probe"));
  const originalSync = handlePrototype.sync;
  const events: string[] = [];
  try {
    const path = join(root, "acts.safetensors");
    writeFileSync(path, "old");
    handlePrototype.sync = async function (this: unknown) {
      events.push("fsync");
      return originalSync.call(this);
    };
    (fs.promises as { rename: typeof originalRename }).rename = async () => {
      events.push("rename");
      throw Object.assign(new Error("EIO: i/o error, rename"), { code: "EIO", syscall: "rename" });
    };
    syncBuiltinESMExports();
    await assert.rejects(writeOutputFile({ path, data: Buffer.from("new"), force: true }), hasCode(ErrorCodes.IO));
    assert.deepEqual(events, ["fsync", "rename"]);
    assert.equal(readFileSync(path, "utf8"), "old");
    assert.deepEqual(readdirSync(root), ["acts.safetensors"]);
  } finally {
    (fs.promises as { rename: typeof originalRename }).rename = originalRename;
    handlePrototype.sync = originalSync;
    syncBuiltinESMExports();
    rmSync(root, { recursive: true, force: true });
  }
});
