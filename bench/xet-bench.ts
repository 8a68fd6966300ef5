/**
 * What a push of an abliterated checkpoint costs on the wire, against the Hub emulator with Xet on: the bench
 * checkpoint is pushed as the base, downloaded back through Xet, abliterated, and pushed to a new repo by
 * `abliterate push` (a child process, timed with GNU time for its peak RSS) and, in the same run, by
 * @huggingface/hub's own Xet path (its `commit`, the peer at its default setting). An LFS push sends every byte
 * of the checkpoint by construction. Printed: checkpoint bytes, changed bytes, bytes sent, time.
 * `node dist/bench/xet-bench.js` alone, or from `npm run bench` (`BENCH_ONLY=xet` for this part only).
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { open } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { commit } from "@huggingface/hub";
import { DiskFileBlob } from "../lib/hub/disk-file-blob.js";
import { downloadModel } from "../lib/hub/download-model.js";
import { pushModel } from "../lib/hub/push-model.js";
import { parseSafetensorsHeader } from "../lib/safetensors/parse-header.js";
import { applyModel } from "../lib/surgery/apply-model.js";
import { startHubEmulator } from "../test/hub-emulator/hub-emulator.js";
import { ensureBenchCheckpoint, writeBenchDirection } from "./generate-bench-checkpoint.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const TOKEN = "hf_BenchXet0123456789abcdef";

async function drain<E, R>(run: AsyncGenerator<E, R>): Promise<R> {
  let step = await run.next();
  while (!step.done) step = await run.next();
  return step.value;
}

/** Bytes of tensors whose data differ, compared tensor by tensor in 16 MiB pieces. */
async function changedBytes(base: string, out: string): Promise<{ total: number; changed: number }> {
  let total = 0;
  let changed = 0;
  for (const name of readdirSync(base).filter((file) => file.endsWith(".safetensors"))) {
    const left = await open(join(base, name), "r");
    const right = await open(join(out, name), "r");
    try {
      const size = (await left.stat()).size;
      total += size;
      const head = Buffer.alloc(Math.min(size, 8 << 20));
      await left.read(head, 0, head.length, 0);
      const header = parseSafetensorsHeader({ bytes: head, fileSize: size, path: name });
      const a = Buffer.alloc(16 << 20);
      const b = Buffer.alloc(16 << 20);
      for (const tensor of header.tensors) {
        for (let at = 0; at < tensor.byteLength; at += a.length) {
          const n = Math.min(a.length, tensor.byteLength - at);
          await left.read(a, 0, n, tensor.byteOffset + at);
          await right.read(b, 0, n, tensor.byteOffset + at);
          if (!a.subarray(0, n).equals(b.subarray(0, n))) {
            changed += tensor.byteLength;
            break;
          }
        }
      }
    } finally {
      await left.close();
      await right.close();
    }
  }
  return { total, changed };
}

/** A child process's wall time and peak RSS (GNU time), without blocking the emulator in this process. */
function timedChild(args: string[], env: NodeJS.ProcessEnv): Promise<{ seconds: number; maxRssKiB?: number; stdout: string; status: number | null; stderr: string }> {
  const useTime = existsSync("/usr/bin/time");
  const [command, argv] = useTime ? ["/usr/bin/time", ["-f", "%e %M", process.execPath, ...args]] : [process.execPath, args];
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(command, argv as string[], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("close", (status) => {
      const last = stderr.trim().split("\n").pop() ?? "";
      const match = useTime ? /^([\d.]+) (\d+)$/.exec(last) : null;
      resolve({ seconds: match ? Number(match[1]) : (Date.now() - started) / 1000, ...(match ? { maxRssKiB: Number(match[2]) } : {}), stdout, status, stderr });
    });
  });
}

const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

export async function runXetBench(cache: string): Promise<string[]> {
  mkdirSync(cache, { recursive: true });
  const model = ensureBenchCheckpoint(cache);
  const direction = join(cache, "direction.safetensors");
  writeBenchDirection(direction);
  const work = join(cache, "xet");
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const hub = await startHubEmulator({ xet: true });
  hub.addToken(TOKEN, { user: "me", orgs: ["org"] });
  const lines: string[] = [];
  try {
    let started = Date.now();
    await drain(pushModel({ dir: model, repo: "org/base", token: TOKEN, endpoint: hub.url }));
    const baseSeconds = (Date.now() - started) / 1000;
    const baseSent = hub.counter("xorb-upload").bytesIn;

    hub.resetCounters();
    started = Date.now();
    const hubCache = join(work, "hub-cache");
    const downloaded = await drain(downloadModel({ repo: "org/base", token: TOKEN, endpoint: hub.url, cacheDir: hubCache }));
    const downloadSeconds = (Date.now() - started) / 1000;
    const downloadBytes = hub.counter("xorb-download").bytesOut;

    const out = join(work, "abliterated");
    await drain(applyModel({ modelDir: downloaded.dir, outDir: out, direction, source: { repo: "org/base", revision: "main", commit: downloaded.commit } }));
    const { total, changed } = await changedBytes(model, out);

    hub.resetCounters();
    const ours = await timedChild([join(root, "bin", "abliterate.js"), "push", out, "me/abl", "--json"], { ...process.env, HF_ENDPOINT: hub.url, HF_TOKEN: TOKEN, HF_HUB_CACHE: hubCache, HF_HOME: join(work, "hf-home") });
    if (ours.status !== 0) throw new Error(`abliterate push failed: ${ours.stderr.slice(-2000)}`);
    const oursSent = hub.counter("xorb-upload").bytesIn;
    const oursMeta = hub.counter("shard-upload").bytesIn;

    const shards = readdirSync(model).filter((name) => name.endsWith(".safetensors")).length;
    const say = (line: string) => {
      lines.push(line);
      process.stderr.write(`${line}\n`);
    };
    say(`xet: checkpoint ${total} bytes (${mb(total)}, ${shards} shards); changed by apply ${changed} bytes (${((100 * changed) / total).toFixed(1)} %)`);
    say(`xet: push of the abliterated model, abliterate: sent ${oursSent} bytes (${((100 * oursSent) / changed).toFixed(1)} % of changed, ${((100 * oursSent) / total).toFixed(1)} % of the checkpoint) + ${oursMeta} bytes of shard metadata in ${ours.seconds.toFixed(1)} s${ours.maxRssKiB ? `, peak RSS ${(ours.maxRssKiB / 1024).toFixed(0)} MiB` : ""}`);

    hub.resetCounters();
    hub.createRepo("me/abl-peer");
    started = Date.now();
    const operations = [];
    for (const name of readdirSync(out)) operations.push({ operation: "addOrUpdate" as const, path: name, content: await DiskFileBlob.open(join(out, name)) });
    // The peer's line is a comparison, not what the bench measures: a failure of it is printed, not fatal.
    const peerLine = await commit({ repo: "me/abl-peer", hubUrl: hub.url, accessToken: TOKEN, title: "peer", operations }).then(
      () => {
        const peerSent = hub.counter("xorb-upload").bytesIn;
        return `xet: push of the abliterated model, @huggingface/hub 2.17.5 commit (its Xet path): sent ${peerSent} bytes (${((100 * peerSent) / changed).toFixed(1)} % of changed) in ${((Date.now() - started) / 1000).toFixed(1)} s`;
      },
      (error: unknown) => `xet: push of the abliterated model, @huggingface/hub 2.17.5 commit (its Xet path): failed after ${((Date.now() - started) / 1000).toFixed(1)} s (${(error as Error).message}${(error as { cause?: Error }).cause ? `: ${(error as { cause?: Error }).cause!.message}` : ""})`,
    );

    lines.push(
      peerLine,
      `xet: push through LFS: sends the whole checkpoint, ${total} bytes (${((100 * total) / changed).toFixed(1)} % of changed)`,
      `xet: base push (nothing on the Hub yet): sent ${baseSent} bytes in ${baseSeconds.toFixed(1)} s; download through Xet: ${downloadBytes} bytes of xorb ranges in ${downloadSeconds.toFixed(1)} s`,
    );
  } finally {
    await hub.close();
    rmSync(work, { recursive: true, force: true });
  }
  return lines;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const lines = await runXetBench(process.env.ABLITERATE_BENCH_CACHE ?? join(root, ".bench-cache"));
  process.stdout.write(`${lines.join("\n")}\n`);
}
