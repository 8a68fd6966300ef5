/**
 * MLP-activation part of `npm run bench` (BENCH_ONLY=activation; bench/run-bench.ts calls runActivationBench()).
 *
 * Gemma, GPT-2 and Phi run gelu(approximate="tanh"), GPT-NeoX and Falcon exact gelu, the Llama family silu. The
 * workload is forward-bench.ts's 0.43B bench checkpoint under each activation: the same weights (linked, not
 * copied) with config.json's hidden_act changed, so every other cost is the same and the ratio to silu is the
 * activation's price. Measured, alternated within each round, each in its own process:
 * - activation capture (the 64 bench prompts, last position, resident, `compute: "auto"`, the second run in the
 *   process, as the pipeline runs many; forward-bench.ts's prompts), tokens/s per activation and its ratio to silu;
 * - the activation kernel alone (activationMul on 64 K elements, gate · up, the fastest of 9 batches of 400 calls)
 *   of the chosen table and of the scalar table (libm's expf / tanhf / erff), ns per element, the call's own cost
 *   included;
 * - Gemma 2's final-logit soft-capping (softCap, cap 30) on one 256 000-token logits row, the same two tables.
 *
 * Run as a script with `child ...` it is the child for one run.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { benchPrompts, ensureCheckpoint } from "./forward-bench.js";
import type { NativeActivation } from "../lib/native/addon.js";

/** hidden_act in config.json for each activation the engine computes. */
const CONFIG_NAMES: Record<NativeActivation, string> = { silu: "silu", gelu_tanh: "gelu_pytorch_tanh", gelu: "gelu" };
const ACTIVATIONS = Object.keys(CONFIG_NAMES) as NativeActivation[];
/** One MLP chunk's worth (e.g. 8 rows × 8192), so the kernel runs from cache as in the engine; timed over many calls. */
const KERNEL_ELEMENTS = 2 ** 16;
const KERNEL_CALLS = 400;
/** Gemma 2's vocabulary. */
const SOFT_CAP_VOCAB = 256_000;
const SOFT_CAP_CALLS = 40;

interface CaptureResult {
  seconds: number;
  tokens: number;
  kernels: string;
}

interface KernelResult {
  nsPerElement: number;
  kernels: string;
}

/** The bench checkpoint under `activation`: every file linked but config.json, whose hidden_act is rewritten. */
function variantOf(modelDir: string, activation: NativeActivation): string {
  const dir = `${modelDir}-${activation}`;
  if (!existsSync(join(dir, "config.json"))) {
    mkdirSync(dir, { recursive: true });
    for (const name of readdirSync(modelDir)) if (name !== "config.json" && !existsSync(join(dir, name))) symlinkSync(join(modelDir, name), join(dir, name));
    const config = JSON.parse(readFileSync(join(modelDir, "config.json"), "utf8")) as Record<string, unknown>;
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, hidden_act: CONFIG_NAMES[activation] }, null, 2));
  }
  return dir;
}

function spawnJson<T>(args: string[], env: NodeJS.ProcessEnv = process.env): T {
  const result = spawnSync(process.execPath, [fileURLToPath(import.meta.url), ...args], { encoding: "utf8", env, maxBuffer: 16 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`activation bench child ${args.join(" ")} failed:\n${result.stderr}`);
  return JSON.parse(result.stdout.trim().split("\n").pop()!) as T;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export async function runActivationBench(cache: string): Promise<string[]> {
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const modelDir = ensureCheckpoint(cache);
  const promptsPath = join(cache, "activation-prompts.json");
  writeFileSync(promptsPath, JSON.stringify(benchPrompts()));
  const threads = String(cpus().length);
  const capture: Record<string, CaptureResult[]> = {};
  const kernel: Record<string, KernelResult[]> = {};
  for (let round = 0; round < rounds; round += 1) {
    for (const activation of ACTIVATIONS) {
      (capture[activation] ??= []).push(spawnJson<CaptureResult>(["child", "capture", variantOf(modelDir, activation), promptsPath, threads]));
      (kernel[activation] ??= []).push(spawnJson<KernelResult>(["child", "kernel", activation]));
      (kernel[`${activation}-scalar`] ??= []).push(spawnJson<KernelResult>(["child", "kernel", activation], { ...process.env, ABLITERATE_KERNELS: "scalar" }));
    }
    (kernel["soft-cap"] ??= []).push(spawnJson<KernelResult>(["child", "soft-cap"]));
    (kernel["soft-cap-scalar"] ??= []).push(spawnJson<KernelResult>(["child", "soft-cap"], { ...process.env, ABLITERATE_KERNELS: "scalar" }));
    process.stderr.write(`bench: activation round ${round + 1}/${rounds} done\n`);
  }
  const rate = (samples: CaptureResult[]) => median(samples.map((r) => r.tokens / r.seconds));
  const ns = (samples: KernelResult[]) => median(samples.map((r) => r.nsPerElement));
  const lines = [
    `activation bench: the forward bench checkpoint under each MLP activation (same weights, config.json's hidden_act), ` +
      `${capture.silu[0].tokens} prompt tokens, residual stream at the last position, resident, second run in the process, ${rounds} rounds, medians`,
  ];
  for (const activation of ACTIVATIONS) {
    const samples = capture[activation];
    lines.push(
      `${activation.padEnd(10)} ${rate(samples).toFixed(0).padStart(6)} tokens/s = ${(rate(samples) / rate(capture.silu)).toFixed(2)}× silu (${samples[0].kernels}); ` +
        `kernel ${ns(kernel[activation]).toFixed(2)} ns/element (${kernel[activation][0].kernels}) vs ${ns(kernel[`${activation}-scalar`]).toFixed(2)} scalar libm = ` +
        `${(ns(kernel[`${activation}-scalar`]) / ns(kernel[activation])).toFixed(1)}×`,
    );
  }
  const row = (samples: KernelResult[]) => (ns(samples) * SOFT_CAP_VOCAB) / 1e6;
  lines.push(
    `soft-cap   Gemma 2's final logits, one ${SOFT_CAP_VOCAB}-token row: ${row(kernel["soft-cap"]).toFixed(3)} ms (${kernel["soft-cap"][0].kernels}, ` +
      `${ns(kernel["soft-cap"]).toFixed(2)} ns/element) vs ${row(kernel["soft-cap-scalar"]).toFixed(3)} ms scalar libm = ${(ns(kernel["soft-cap-scalar"]) / ns(kernel["soft-cap"])).toFixed(1)}× (one thread; the engine splits rows over the pool)`,
  );
  return lines;
}

async function softCapChild(): Promise<void> {
  const { softCap, runtimeInfo } = await import("../lib/native/addon.js");
  // Logits as a trained head spreads them, about ±20 before the cap.
  const logits = Float32Array.from({ length: SOFT_CAP_VOCAB }, (_, i) => 12 * Math.sin(i * 0.7133) * Math.cos(i * 0.0131));
  softCap(logits, 30);
  const times: number[] = [];
  for (let k = 0; k < 9; k += 1) {
    const started = performance.now();
    for (let call = 0; call < SOFT_CAP_CALLS; call += 1) softCap(logits, 30);
    times.push(performance.now() - started);
  }
  const result: KernelResult = { nsPerElement: (Math.min(...times) * 1e6) / (SOFT_CAP_VOCAB * SOFT_CAP_CALLS), kernels: runtimeInfo().kernels.forward };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function captureChild(modelDir: string, promptsPath: string, threads: number): Promise<void> {
  const { loadForwardModel } = await import("../lib/engine/load-forward-model.js");
  const { runForward } = await import("../lib/engine/run-forward.js");
  const prompts = JSON.parse(readFileSync(promptsPath, "utf8")) as number[][];
  const model = await loadForwardModel(modelDir);
  const request = { model, prompts, positions: "last" as const, mode: "resident" as const, threads, compute: "auto" as const };
  await runForward(request);
  const started = performance.now();
  const output = await runForward(request);
  const seconds = (performance.now() - started) / 1000;
  const result: CaptureResult = { seconds, tokens: prompts.reduce((n, p) => n + p.length, 0), kernels: output.kernels };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

async function kernelChild(activation: NativeActivation): Promise<void> {
  const { activationMul, runtimeInfo } = await import("../lib/native/addon.js");
  // Gate values as an MLP's pre-activations are spread (a normal of scale 2), up in [−1, 1].
  const gate = new Float32Array(KERNEL_ELEMENTS);
  const up = new Float32Array(KERNEL_ELEMENTS);
  for (let i = 0; i < KERNEL_ELEMENTS; i += 1) {
    gate[i] = 2 * Math.sin(i * 0.7133) * Math.cos(i * 0.0131);
    up[i] = Math.cos(i * 0.377);
  }
  activationMul(activation, gate, up);
  const times: number[] = [];
  for (let k = 0; k < 9; k += 1) {
    const started = performance.now();
    for (let call = 0; call < KERNEL_CALLS; call += 1) activationMul(activation, gate, up);
    times.push(performance.now() - started);
  }
  // The fastest of 9 batches: each call returns a new 256 KB array, and a batch the collector stopped in is slower
  // by what the kernel does not cost.
  const result: KernelResult = { nsPerElement: (Math.min(...times) * 1e6) / (KERNEL_ELEMENTS * KERNEL_CALLS), kernels: runtimeInfo().kernels.forward };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === "child" && process.argv[3] === "capture") await captureChild(process.argv[4], process.argv[5], Number(process.argv[6]));
  else if (process.argv[2] === "child" && process.argv[3] === "kernel") await kernelChild(process.argv[4] as NativeActivation);
  else if (process.argv[2] === "child" && process.argv[3] === "soft-cap") await softCapChild();
  else {
    const cache = process.env.ABLITERATE_BENCH_CACHE ?? join(fileURLToPath(new URL("../..", import.meta.url)), ".bench-cache");
    process.stdout.write(`${(await runActivationBench(cache)).join("\n")}\n`);
  }
}
