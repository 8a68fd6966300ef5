/**
 * Model-digest part of `npm run bench` (bench/run-bench.ts calls runDigestBench()): the sha256 of every file of the
 * bench checkpoint, as the pipeline's model identity takes it for a local folder it has not hashed before, on one
 * thread and on every core (lib/fs/sha256-files.ts), alternated within each round, from a warm page cache. The
 * baselines: a read stream per file on one thread (how the model identity hashed before), and the openssl CLI
 * hashing the same files one after another.
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, readdirSync, readFileSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { sha256Files } from "../lib/fs/sha256-files.js";

/** The earlier way: one read stream per file, a fresh buffer per chunk. */
async function streamed(paths: readonly string[]): Promise<void> {
  for (const path of paths) {
    const hash = createHash("sha256");
    for await (const chunk of createReadStream(path, { highWaterMark: 4 << 20 })) hash.update(chunk as Buffer);
    hash.digest("hex");
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function timed(run: () => unknown): Promise<number> {
  const started = performance.now();
  await run();
  return (performance.now() - started) / 1000;
}

export async function runDigestBench(modelDir: string, rounds: number): Promise<string[]> {
  const files = readdirSync(modelDir)
    .map((name) => join(modelDir, name))
    .filter((path) => statSync(path).isFile())
    .map((path) => ({ path, bytes: statSync(path).size }));
  const bytes = files.reduce((sum, f) => sum + f.bytes, 0);
  for (const f of files) readFileSync(f.path);  // into the page cache: the figures are the hashing's, not the disk's
  const openssl = spawnSync("openssl", ["version"]).status === 0;
  const times = { stream: [] as number[], one: [] as number[], all: [] as number[], openssl: [] as number[] };
  for (let round = 0; round < rounds; round += 1) {
    times.stream.push(await timed(() => streamed(files.map((f) => f.path))));
    times.one.push(await timed(() => sha256Files(files, { threads: 1 })));
    times.all.push(await timed(() => sha256Files(files)));
    if (openssl) times.openssl.push(await timed(() => spawnSync("openssl", ["dgst", "-sha256", ...files.map((f) => f.path)])));
  }
  const [stream, one, all, ssl] = [median(times.stream), median(times.one), median(times.all), openssl ? median(times.openssl) : NaN];
  const rate = (seconds: number) => `${(bytes / seconds / 1e9).toFixed(2)} GB/s`;
  return [
    `model digests (sha256 of ${files.length} files, ${(bytes / 1e9).toFixed(2)} GB, page cache warm, median of ${rounds}): ` +
      `read streams ${stream.toFixed(2)} s (${rate(stream)}) → one reused buffer ${one.toFixed(2)} s (${rate(one)}, ${(stream / one).toFixed(2)}×) → ` +
      `${availableParallelism()} worker threads ${all.toFixed(2)} s (${rate(all)}, ${(one / all).toFixed(2)}×; ${(stream / all).toFixed(2)}× in all)` +
      (openssl ? `; openssl dgst, one process: ${ssl.toFixed(2)} s (${rate(ssl)})` : "; openssl: not found"),
  ];
}
