/**
 * Imports flow one way (docs/layers.md): every relative import under lib/ must point to the same folder or to a
 * folder of a lower rank. The table here is the one in docs/layers.md; a folder missing from it fails the test, so a
 * new folder has to be placed deliberately.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative, sep } from "node:path";
import { repoRoot } from "../golden/golden-paths.js";

const RANK: Record<string, number> = {
  "index.ts": 8,
  cli: 7,
  pipeline: 6,
  hub: 5,
  directions: 5,
  surgery: 5,
  engine: 4,
  provenance: 3,
  arch: 2,
  "direction-files": 2,
  tokenize: 2,
  safetensors: 1,
  fs: 0,
  native: 0,
  "errors.ts": -1,
  "version.ts": -1,
  "event-channel.ts": -1,
};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? sourceFiles(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : [],
  );
}

/** The unit an import lands in: a folder directly under lib/, or a file directly in lib/. */
function unitOf(file: string): string {
  return relative(join(repoRoot, "lib"), file).split(sep)[0];
}

test("no file under lib/ imports from a folder of the same or a higher rank (docs/layers.md)", () => {
  const lib = join(repoRoot, "lib");
  const violations: string[] = [];
  const importPattern = /(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g;
  let imports = 0;
  for (const file of sourceFiles(lib)) {
    const from = unitOf(file);
    assert.ok(from in RANK, `${relative(repoRoot, file)}: lib/${from} has no rank in docs/layers.md`);
    for (const match of readFileSync(file, "utf8").matchAll(importPattern)) {
      const target = normalize(join(dirname(file), match[1])).replace(/\.js$/, ".ts");
      const to = unitOf(target);
      imports += 1;
      if (to === from) continue;
      assert.ok(to in RANK, `${relative(repoRoot, file)} imports ${match[1]}: lib/${to} has no rank in docs/layers.md`);
      if (RANK[to] >= RANK[from]) violations.push(`${relative(repoRoot, file)} (lib/${from}, rank ${RANK[from]}) imports ${match[1]} (lib/${to}, rank ${RANK[to]})`);
    }
  }
  assert.ok(imports > 100, `only ${imports} imports found: the pattern no longer matches the sources`);
  assert.deepEqual(violations, []);
});
