/**
 * `npm run bench`: performance claims come from here, never from timed tests. Commands are alternated within one
 * run (cp, apply, verify, [torch]) so the page cache and the machine's state are shared fairly, and the printed
 * figures are ratios of medians measured in this run.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { runActivationBench } from "./activation-bench.js";
import { ensureBenchCheckpoint, writeBenchDirection } from "./generate-bench-checkpoint.js";
import { runDigestBench } from "./digest-bench.js";
import { primeMemory } from "./prime-memory.js";
import { runSelectionBench } from "./selection-bench.js";
import { runXetBench } from "./xet-bench.js";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const cache = process.env.ABLITERATE_BENCH_CACHE ?? join(root, ".bench-cache");
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const cli = join(root, "bin", "abliterate.js");

interface Measurement {
  seconds: number;
  /** user + system CPU seconds: against seconds × cores, whether a command waited on the CPU or on the disk. */
  cpuSeconds: number;
  userSeconds: number;
  /**
   * System seconds are where this project's VMs move: writing into page-cache pages that the balloon's free-page
   * reporting has handed back to the host costs several times more than into pages still backed (a 440 MB buffered
   * write measured 0.11 s of system time right after the previous output was deleted, 1.44 s 20 s later).
   */
  systemSeconds: number;
  peakRssMB: number;
  stdout: string;
}

/** Bytes every command gets primed (primeMemory): set once the checkpoint's size is known. */
let primeBytes = 0;

/**
 * Wall time and peak RSS of a child, via GNU time (getrusage of the child). The page cache is flushed first (not
 * timed), so no command pays for writing back what the one before it left dirty, and free memory is primed.
 */
function measure(command: string, args: string[]): Measurement {
  execFileSync("sync");
  primeMemory(primeBytes);
  const result = spawnSync("/usr/bin/time", ["-f", "%e %M %U %S", command, ...args], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed:\n${result.stderr}`);
  const last = result.stderr.trim().split("\n").pop()!.trim().split(/\s+/);
  // BENCH_VERBOSE=1 prints every sample (wall s, peak RSS KB, user s, system s), not only the medians.
  if (process.env.BENCH_VERBOSE) process.stderr.write(`  ${[command, ...args].slice(0, 3).join(" ")}: ${last.join(" ")}\n`);
  return {
    seconds: Number(last[0]),
    peakRssMB: Number(last[1]) / 1024,
    cpuSeconds: Number(last[2]) + Number(last[3]),
    userSeconds: Number(last[2]),
    systemSeconds: Number(last[3]),
    stdout: result.stdout,
  };
}

/**
 * The disk's sequential write speed with the page cache bypassed (dd, O_DIRECT): the floor under any command that
 * must have its output on disk when it returns, as apply does and cp -r does not.
 */
function directWriteBytesPerSecond(folder: string): number | undefined {
  const probe = join(folder, "direct-write-probe");
  const result = spawnSync("dd", ["if=/dev/zero", `of=${probe}`, "bs=16M", "count=64", "oflag=direct"], { encoding: "utf8" });
  rmSync(probe, { force: true });
  const match = /^(\d+) bytes .* copied, ([\d.]+) s/m.exec(result.stderr ?? "");
  return result.status === 0 && match ? Number(match[1]) / Number(match[2]) : undefined;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

function findTorchPython(): string | undefined {
  for (const candidate of [process.env.ABLITERATE_BENCH_PYTHON, "python3", "/opt/goldenv/bin/python"].filter(Boolean) as string[]) {
    const probe = spawnSync(candidate, ["-c", "import torch, safetensors"], { stdio: "ignore" });
    if (probe.status === 0) return candidate;
  }
  return undefined;
}

async function main(): Promise<void> {
  // BENCH_ONLY=xet: only the push-through-Xet figures (bench/xet-bench.ts).
  if (process.env.BENCH_ONLY === "xet") {
    process.stdout.write(`${(await runXetBench(cache)).join("\n")}\n`);
    return;
  }
  // BENCH_ONLY=forward: only the forward-engine figures (bench/forward-bench.ts).
  if (process.env.BENCH_ONLY === "forward") {
    const { runForwardBench } = await import("./forward-bench.js");
    process.stdout.write(`${(await runForwardBench()).join("\n")}\n`);
    return;
  }
  // BENCH_ONLY=activation: only the MLP-activation figures (bench/activation-bench.ts).
  if (process.env.BENCH_ONLY === "activation") {
    process.stdout.write(`${(await runActivationBench(cache)).join("\n")}\n`);
    return;
  }
  // BENCH_ONLY=digest: only the model-digest figures (bench/digest-bench.ts).
  if (process.env.BENCH_ONLY === "digest") {
    process.stdout.write(`${(await runDigestBench(ensureBenchCheckpoint(cache), rounds)).join("\n")}\n`);
    return;
  }
  // BENCH_ONLY=selection: only the candidate-scoring figures (bench/selection-bench.ts).
  if (process.env.BENCH_ONLY === "selection") {
    process.stdout.write(`${(await runSelectionBench(cache)).join("\n")}\n`);
    return;
  }
  mkdirSync(cache, { recursive: true });
  process.stderr.write(`bench: workload in ${cache} (generated once)\n`);
  const model = ensureBenchCheckpoint(cache);
  const direction = join(cache, "direction.safetensors");
  writeBenchDirection(direction);
  const outputs = { cp: join(cache, "out-cp"), apply: join(cache, "out-apply"), torch: join(cache, "out-torch") };
  const python = findTorchPython();
  const times: Record<string, Measurement[]> = { cp: [], cpSync: [], apply: [], verify: [], torch: [] };
  const modelBytes = Number(execFileSync("du", ["-sb", model], { encoding: "utf8" }).split("\t")[0]);
  // Enough for any command's output and working memory (the torch loop holds ~1.1 GB besides its output).
  primeBytes = modelBytes + 1.5 * 2 ** 30;
  // Each round runs the same steps in an order rotated by one, so every command follows every other equally often:
  // on a VM what ran just before (pages freed, a disk still absorbing a write) moves a command's time by tens of %.
  const steps: Array<() => void> = [
    () => {
      rmSync(outputs.cp, { recursive: true, force: true });
      times.cp.push(measure("cp", ["-r", model, outputs.cp]));
    },
    () => {
      // apply fsyncs its shards before the atomic rename (a crash must not leave a complete-looking, torn DIR), so
      // the like-for-like anchor is a copy that is also on disk when it returns.
      rmSync(outputs.cp, { recursive: true, force: true });
      times.cpSync.push(measure("sh", ["-c", `cp -r "$0" "$1" && sync "$1"/*`, model, outputs.cp]));
    },
    () => {
      rmSync(outputs.apply, { recursive: true, force: true });
      times.apply.push(measure(process.execPath, [cli, "apply", model, "--direction", direction, "--out", outputs.apply, "--json"]));
      times.verify.push(measure(process.execPath, [cli, "verify", model, outputs.apply, "--direction", direction, "--quiet"]));
    },
    ...(python
      ? [
          () => {
            rmSync(outputs.torch, { recursive: true, force: true });
            times.torch.push(measure(python, [join(root, "bench", "torch_shard_loop.py"), model, outputs.torch, direction]));
          },
        ]
      : []),
  ];
  // One warm-up round, discarded: on this project's VMs the first command to refill memory that earlier runs freed
  // pays several times its system time (seen: apply 6.7 s, then 1.5 s; the torch loop 8.7 s, then 4.4 s).
  for (const step of steps) step();
  for (const samples of Object.values(times)) samples.length = 0;
  process.stderr.write("bench: warm-up round done (discarded)\n");
  for (let round = 0; round < rounds; round += 1) {
    for (let step = 0; step < steps.length; step += 1) steps[(round + step) % steps.length]();
    process.stderr.write(`bench: round ${round + 1}/${rounds} done\n`);
  }
  for (const path of Object.values(outputs)) rmSync(path, { recursive: true, force: true });
  const diskSpeed = directWriteBytesPerSecond(cache);

  const cp = median(times.cp.map((m) => m.seconds));
  const cpSync = median(times.cpSync.map((m) => m.seconds));
  const line = (label: string, samples: Measurement[], extra = "") => {
    const seconds = median(samples.map((m) => m.seconds));
    const rss = Math.max(...samples.map((m) => m.peakRssMB));
    const cpu = median(samples.map((m) => m.cpuSeconds));
    const user = median(samples.map((m) => m.userSeconds));
    const system = median(samples.map((m) => m.systemSeconds));
    return (
      `${label.padEnd(10)} ${seconds.toFixed(2).padStart(7)} s  ${(seconds / cp).toFixed(2).padStart(5)}× cp  ` +
      `${(seconds / cpSync).toFixed(2).padStart(5)}× cp+sync  ${(modelBytes / seconds / 1e9).toFixed(2)} GB/s  ` +
      `cpu ${cpu.toFixed(2).padStart(5)} s (${(cpu / (modelBytes / 1e9)).toFixed(2)} s/GB; median user ${user.toFixed(2)}, system ${system.toFixed(2)})  ` +
      `peak RSS ${rss.toFixed(0)} MB${extra}`
    );
  };
  const lines = [
    `surgery bench: ${(modelBytes / 1e9).toFixed(2)} GB bf16 Llama-shaped checkpoint, ${rounds} rounds after a warm-up, medians, ${availableParallelism()} cores ` +
      `(cpu: user + system seconds of the command; ${process.env.BENCH_PRIME === "0" ? "free memory not primed" : `${(primeBytes / 2 ** 30).toFixed(1)} GiB of free memory primed before each command`})`,
    line("cp -r", times.cp),
    line("cp+sync", times.cpSync),
    line("apply", times.apply, "   (surgery + fsync + built-in verify + atomic rename; target ≤ 1.3× cp, RSS ≤ 256 MB)"),
    line("verify", times.verify, "   (target ≤ 1.5× cp)"),
  ];
  // Where apply's time goes, from its own report (seconds since it started): the last shard written, the last one
  // verified (verification overlaps the surgery of the next shard), everything fsynced.
  const timelines = times.apply.map((m) => (JSON.parse(m.stdout) as { timeline: { surgeryDone: number; verified: number; durable: number } }).timeline);
  const at = (key: "surgeryDone" | "verified" | "durable") => median(timelines.map((timeline) => timeline[key]));
  lines.push(
    `  apply timeline: last shard written at ${at("surgeryDone").toFixed(2)} s (${(at("surgeryDone") / cp).toFixed(2)}× cp), ` +
      `last shard verified at ${at("verified").toFixed(2)} s, on disk at ${at("durable").toFixed(2)} s (${(at("durable") / cpSync).toFixed(2)}× cp+sync)`,
  );
  if (diskSpeed) {
    lines.push(
      `  disk: ${(diskSpeed / 1e9).toFixed(2)} GB/s direct write, so a durable copy of the checkpoint takes ≥ ${(modelBytes / diskSpeed).toFixed(2)} s ` +
        `(${(modelBytes / diskSpeed / cp).toFixed(2)}× cp -r, which returns with its output still in the page cache)`,
    );
  }
  if (python) {
    const torchSeconds = median(times.torch.map((m) => m.seconds));
    lines.push(line("torch", times.torch), `apply is ${(torchSeconds / median(times.apply.map((m) => m.seconds))).toFixed(1)}× faster than the torch shard loop (target ≥ 5×)`);
  } else {
    lines.push("torch shard loop: skipped (no python with torch + safetensors found)");
  }
  lines.push(...(await runDigestBench(model, rounds)));
  const forwardBench = join(root, "dist", "bench", "forward-bench.js");
  // BENCH_ONLY=surgery skips the forward bench (minutes) while iterating on the surgery path.
  if (existsSync(forwardBench) && process.env.BENCH_ONLY !== "surgery") {
    const module = (await import(forwardBench)) as { runForwardBench?: () => Promise<string[]> };
    if (module.runForwardBench) lines.push("", ...(await module.runForwardBench()), "", ...(await runActivationBench(cache)));
  }
  if (process.env.BENCH_ONLY !== "surgery") lines.push("", ...(await runSelectionBench(cache)), "", ...(await runXetBench(cache)));
  process.stdout.write(`${lines.join("\n")}\n`);
}

await main();
