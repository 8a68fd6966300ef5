/**
 * `node test/hub-emulator/server.js [--port N] [--token hf_x --user name] [--seed org/name=DIR] [--seed datasets/org/name=DIR]`
 * for manual use: starts the emulator, optionally seeds model and dataset repos from local folders, and prints how
 * to point clients at it.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { startHubEmulator, type SeedFile } from "./hub-emulator.js";

function filesOf(dir: string, root = dir): SeedFile[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return filesOf(path, root);
    return [{ path: relative(root, path).split("\\").join("/"), content: readFileSync(path) }];
  });
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string", default: "0" },
      token: { type: "string", multiple: true, default: [] },
      user: { type: "string", default: "user" },
      seed: { type: "string", multiple: true, default: [] },
      "tree-page-size": { type: "string" },
    },
  });
  const emulator = await startHubEmulator({
    port: Number(values.port),
    treePageSize: values["tree-page-size"] ? Number(values["tree-page-size"]) : undefined,
  });
  for (const token of values.token ?? []) emulator.addToken(token, { user: values.user! });
  for (const seed of values.seed ?? []) {
    const [repo, dir] = seed.split("=");
    emulator.addFiles(repo, filesOf(dir));
  }
  process.stdout.write(`hub emulator listening on ${emulator.url}\nexport HF_ENDPOINT=${emulator.url}\n`);
  const stop = () => void emulator.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
