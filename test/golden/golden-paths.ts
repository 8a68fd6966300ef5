/** Locations of committed fixtures and goldens, resolved from the compiled test file (dist/test/...) or the source. */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "test", "golden"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error("cannot find the repository root above " + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

export const repoRoot = findRepoRoot();
export const goldenDir = join(repoRoot, "test", "golden");
export const tokenizerFixturesDir = join(repoRoot, "test", "fixtures", "tokenizers");
