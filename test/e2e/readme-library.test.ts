/**
 * The README's "Library" example runs as written: its code block is extracted, `abliterate` resolves to this
 * package (a node_modules link, as after `npm install abliterate`), and ./model is the planted-refusal model.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writePlantedRefusalModel } from "../../lib/directions/planted-refusal-model.js";
import { PACKAGE_ROOT } from "../helpers/run-cli.js";

test("the README's Library example runs and prints what it says", async () => {
  const readme = readFileSync(join(PACKAGE_ROOT, "README.md"), "utf8");
  const section = readme.slice(readme.indexOf("## Library"));
  const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(code, "the Library section has a js code block");
  const root = mkdtempSync(join(tmpdir(), "abl-readme-"));
  try {
    await writePlantedRefusalModel({ dir: join(root, "model") });
    mkdirSync(join(root, "node_modules"));
    symlinkSync(PACKAGE_ROOT, join(root, "node_modules", "abliterate"), "dir");
    writeFileSync(join(root, "example.mjs"), code);
    const run = spawnSync(process.execPath, ["example.mjs"], { cwd: root, encoding: "utf8", env: { ...process.env, HF_HUB_OFFLINE: "1" }, timeout: 120_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^layer \d+: refused 1 → 0, 1 of harmless completions unchanged$/m);
    assert.match(run.stdout, /^verified: true, 9 tensors, max 0\.\d+ ulp$/m);
    assert.match(run.stderr, /surgery: done/);
    assert.equal(JSON.parse(readFileSync(join(root, "model-reflected", "abliteration.json"), "utf8")).scale, 2);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
