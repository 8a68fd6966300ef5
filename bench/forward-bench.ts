/**
 * Forward-engine part of `npm run bench` (bench/run-bench.ts calls runForwardBench()).
 *
 * Workload: a ~0.43B-parameter Llama-shaped checkpoint (hidden 1024, 16 heads / 4 KV heads, intermediate 4096,
 * 24 layers, vocab 32000, BF16, random finite values) generated once into the bench cache, and 64 prompts of 16–40
 * random tokens. Measured, alternated within each round:
 * - activation capture (residual stream at every layer, last position) in resident and layer-streamed mode with
 *   the default kernels, and resident with `compute: "fp32"` (the reference path);
 * - HF transformers on CPU on the same token ids in fp32 and in bf16 (`model.model(..., output_hidden_states=True)`,
 *   one left-padded batch; only real tokens counted);
 * - generation: 32 greedy new tokens on 32 prompts with the KV cache, the engine against HF `generate` in bf16, and
 *   the engine's second run in one process (the pipeline's case: one run per batch of prompts and per candidate);
 * - the CPU's multiply-add peak (bench/peak-flops.cpp, compiled here), fp32 and bf16-dot, so the engine's GFLOP/s
 *   (counted from the geometry: projections, attention, lm_head) is printed as a share of what the silicon does.
 * HF in bf16 runs each task twice in its process and reports the second call as "again", beside the engine's second run in
 * one process ("resident again", "engine again"), so the warm case compares like with like.
 * Python with torch and transformers comes from ABLITERATE_BENCH_PYTHON, python3 or /opt/goldenv/bin/python. Each
 * run is a child process, so its peak RSS (getrusage maxrss) is its own, started after priming free memory
 * (prime-memory.ts), so no run pays for the host backing pages the one before it freed; medians are printed.
 *
 * Run as a script with `child <mode> <cache>` it is the child for one engine run.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureCheckpoint, GEOMETRY } from "./bench-checkpoints.js";
import { primeMemory } from "./prime-memory.js";

export { ensureCheckpoint } from "./bench-checkpoints.js";

const PROMPTS = 64;
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");

/**
 * Chat-shaped prompts: one 32-token prefix shared by all (a template's system turn and role header) and 4–20 tokens
 * of their own, the shape of every prompt the pipeline runs.
 */
function chatPrompts(): number[][] {
  let s = 0x1234567;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  const prefix = Array.from({ length: 32 }, () => next() % GEOMETRY.vocab);
  return Array.from({ length: PROMPTS }, () => [...prefix, ...Array.from({ length: 4 + (next() % 17) }, () => next() % GEOMETRY.vocab)]);
}

export function benchPrompts(): number[][] {
  let s = 0x9e3779b9;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  return Array.from({ length: PROMPTS }, () => Array.from({ length: 16 + (next() % 25) }, () => next() % GEOMETRY.vocab));
}

interface RunResult {
  seconds: number;
  /** CPU time of the whole process over the same span (all threads): robust where other jobs share the cores. */
  cpuSeconds: number;
  tokens: number;
  peakRssMB: number;
  baselineRssMB: number;
  /** The engine's own estimate of its activation and scratch bytes (engine runs only). */
  activationBytes?: number;
  /** The kernel table the engine ran (engine runs only). */
  kernels?: string;
  /** HF runs: the same task run again in the same process. */
  again?: RunResult;
}

/** Free memory primed before every run (prime-memory.ts): more than the largest peak RSS here (HF in fp32, 2.8 GB). */
const PRIME_BYTES = 3 * 2 ** 30;

function spawnJson(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): RunResult {
  primeMemory(PRIME_BYTES);
  const result = spawnSync(command, args, { encoding: "utf8", env, maxBuffer: 16 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed:\n${result.stderr}`);
  return JSON.parse(result.stdout.trim().split("\n").pop()!) as RunResult;
}

const HF_SCRIPT = String.raw`
import json, resource, sys, time
import torch
from transformers import AutoModelForCausalLM
model_dir, prompts_path, threads, dtype, task = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
new_tokens = int(sys.argv[6]) if len(sys.argv) > 6 else 0
torch.set_num_threads(threads)
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
prompts = json.load(open(prompts_path))
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).eval()
longest = max(len(p) for p in prompts)
ids = torch.zeros((len(prompts), longest), dtype=torch.long)
mask = torch.zeros((len(prompts), longest), dtype=torch.long)
for i, p in enumerate(prompts):
    ids[i, longest - len(p):] = torch.tensor(p)
    mask[i, longest - len(p):] = 1
def run_once():
    start = time.perf_counter()
    cpu_start = time.process_time()
    with torch.no_grad():
        if task == "generate":
            # Greedy, exactly new_tokens per prompt (no stop id), KV cache on: transformers at its fastest on CPU.
            model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                           do_sample=False, eos_token_id=None, pad_token_id=0, use_cache=True)
            tokens = len(prompts) * new_tokens
        else:
            out = model.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
            torch.stack([h[:, -1, :] for h in out.hidden_states], dim=1)
            tokens = sum(len(p) for p in prompts)
    return {"seconds": time.perf_counter() - start, "cpuSeconds": time.process_time() - cpu_start, "tokens": tokens}
# The first call, and with "again" a second one in the same process (warm allocator and kernels), as the engine's
# "again" runs.
first = run_once()
again = run_once() if len(sys.argv) > 7 and sys.argv[7] == "again" else None
rss = {"peakRssMB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "baselineRssMB": baseline / 1024}
print(json.dumps({**first, **rss, **({"again": {**again, **rss}} if again else {})}))
`;

function findTorchPython(): string | undefined {
  for (const candidate of [process.env.ABLITERATE_BENCH_PYTHON, "python3", "/opt/goldenv/bin/python"].filter(Boolean) as string[]) {
    const probe = spawnSync(candidate, ["-c", "import torch, transformers"], { stdio: "ignore" });
    if (probe.status === 0) return candidate;
  }
  return undefined;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** Generation workload: the first GENERATE_PROMPTS bench prompts, GENERATE_TOKENS greedy tokens each (no stop id). */
const GENERATE_PROMPTS = 32;
const GENERATE_TOKENS = 32;
/** The layer a resumed run starts at (half the stack). */
const RESUME_LAYER = 12;

/**
 * Multiply-add FLOPs of one prompt pass: every projection (2 · params · tokens), attention scores and weighted sums
 * (4 · q_dim · keys per query) and, when `headRows` > 0, the lm_head for that many rows. Norms, activations and
 * RoPE are left out (a few % of it), so the GFLOP/s printed is a lower bound of the work done.
 */
function promptFlops(lengths: number[], headRows = 0): number {
  const { hidden: d, heads, kvHeads, headDim, intermediate, layers, vocab } = GEOMETRY;
  const perTokenParams = layers * (d * heads * headDim * 2 + d * kvHeads * headDim * 2 + 3 * d * intermediate);
  const tokens = lengths.reduce((a, b) => a + b, 0);
  const keys = lengths.reduce((sum, n) => sum + (n * (n + 1)) / 2, 0);
  return 2 * perTokenParams * tokens + 4 * layers * heads * headDim * keys + 2 * d * vocab * headRows;
}

/** FLOPs of greedy generation: the prompt pass with logits at each prompt's last row, then one row per prompt per step. */
function generationFlops(lengths: number[], newTokens: number): number {
  const { hidden: d, heads, headDim, layers, vocab } = GEOMETRY;
  let flops = promptFlops(lengths, lengths.length);
  for (let step = 1; step < newTokens; step += 1) {
    flops += promptFlops(lengths.map(() => 1)) - 4 * layers * heads * headDim * lengths.length + 2 * d * vocab * lengths.length;
    flops += lengths.reduce((sum, n) => sum + 4 * layers * heads * headDim * (n + step + 1), 0);
  }
  return flops;
}

interface Peak {
  threads: number;
  fp32_avx2?: number;
  fp32_avx512?: number;
  bf16_dot?: number;
}

/** Compiles bench/peak-flops.cpp once into the cache and runs it: this CPU's multiply-add peak on `threads` threads. */
function measurePeak(cache: string, threads: number): Peak | undefined {
  const binary = join(cache, "peak-flops");
  const source = join(root, "bench", "peak-flops.cpp");
  const built = spawnSync(process.env.CXX ?? "c++", ["-O2", "-std=c++17", "-pthread", "-o", binary, source], { encoding: "utf8" });
  if (built.status !== 0) {
    process.stderr.write(`bench: could not build the peak-FLOP probe:\n${built.stderr}\n`);
    return undefined;
  }
  const run = spawnSync(binary, [String(threads), "1"], { encoding: "utf8" });
  return run.status === 0 ? (JSON.parse(run.stdout) as Peak) : undefined;
}

type EngineRun = "resident" | "resident-again" | "streamed" | "resident-fp32" | "generate" | "generate-again" | "generate-fp32" | "chat" | "chat-whole" | "edit-full" | "edit-resumed";

export async function runForwardBench(): Promise<string[]> {
  const cache = process.env.ABLITERATE_BENCH_CACHE ?? join(root, ".bench-cache");
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  mkdirSync(cache, { recursive: true });
  const modelDir = ensureCheckpoint(cache);
  const prompts = benchPrompts();
  const promptsPath = join(cache, "forward-prompts.json");
  writeFileSync(promptsPath, JSON.stringify(prompts));
  const generatePrompts = prompts.slice(0, GENERATE_PROMPTS);
  const chatPath = join(cache, "chat-prompts.json");
  const chat = chatPrompts();
  writeFileSync(chatPath, JSON.stringify(chat));
  const generatePath = join(cache, "generate-prompts.json");
  writeFileSync(generatePath, JSON.stringify(generatePrompts));
  const threads = cpus().length;
  const python = findTorchPython();
  const engineRuns: EngineRun[] = ["resident", "resident-again", "streamed", "resident-fp32", "generate", "generate-again", "generate-fp32", "chat", "chat-whole", "edit-full", "edit-resumed"];
  const runs: Record<string, RunResult[]> = { hf: [], hfBf16: [], hfGenerate: [] };
  for (const name of engineRuns) runs[name] = [];
  const self = fileURLToPath(import.meta.url);
  const peaks: Peak[] = [];
  for (let round = 0; round < rounds; round += 1) {
    // The peak is measured in every round, between the runs, so it sees the same machine state they do.
    const peak = measurePeak(cache, threads);
    if (peak) peaks.push(peak);
    for (const name of engineRuns) {
      const path = name.startsWith("generate") ? generatePath : name.startsWith("chat") ? chatPath : promptsPath;
      runs[name].push(spawnJson(process.execPath, [self, "child", name, modelDir, path, String(threads)]));
    }
    if (python) {
      runs.hf.push(spawnJson(python, ["-c", HF_SCRIPT, modelDir, promptsPath, String(threads), "float32", "capture"]));
      runs.hfBf16.push(spawnJson(python, ["-c", HF_SCRIPT, modelDir, promptsPath, String(threads), "bfloat16", "capture", "0", "again"]));
      runs.hfGenerate.push(
        spawnJson(python, ["-c", HF_SCRIPT, modelDir, generatePath, String(threads), "bfloat16", "generate", String(GENERATE_TOKENS), "again"]),
      );
    }
    process.stderr.write(`bench: forward round ${round + 1}/${rounds} done\n`);
  }

  const { loadForwardModel } = await import("../lib/engine/load-forward-model.js");
  const model = await loadForwardModel(modelDir);
  const tokens = prompts.reduce((n, p) => n + p.length, 0);
  const layerMB = Math.max(...model.layerBytes) / 2 ** 20;
  const activationMB = Math.max(...runs.streamed.map((r) => r.activationBytes ?? 0)) / 2 ** 20;
  const seconds = (samples: RunResult[]) => median(samples.map((r) => r.seconds));
  const rate = (samples: RunResult[]) => median(samples.map((r) => r.tokens)) / seconds(samples);
  const cpuRate = (samples: RunResult[]) => median(samples.map((r) => r.tokens)) / median(samples.map((r) => r.cpuSeconds));
  const peak = (samples: RunResult[]) => Math.max(...samples.map((r) => r.peakRssMB));
  const baseline = (samples: RunResult[]) => Math.min(...samples.map((r) => r.baselineRssMB));
  const params = (model.totalBytes / 2 / 1e9).toFixed(2);
  const captureGflop = promptFlops(prompts.map((p) => p.length)) / 1e9;
  const generateGflop = generationFlops(generatePrompts.map((p) => p.length), GENERATE_TOKENS) / 1e9;
  const peakOf = (key: "fp32_avx2" | "fp32_avx512" | "bf16_dot") => {
    const values = peaks.map((p) => p[key]).filter((v): v is number => v !== undefined);
    return values.length ? median(values) : undefined;
  };
  // peak-flops prints one core's peak per CPU-second; the machine's is that times the threads.
  const fp32Core = Math.max(peakOf("fp32_avx2") ?? 0, peakOf("fp32_avx512") ?? 0) || undefined;
  const bf16Core = peakOf("bf16_dot");
  const fp32Peak = fp32Core && fp32Core * threads;
  const bf16Peak = bf16Core && bf16Core * threads;
  const kernelsOf = (samples: RunResult[]) => samples[0]?.kernels ?? "?";
  /** The peak the run's kernels can reach: the BF16 dot-product peak for bf16 kernels, else the fp32 FMA peak. */
  const peakFor = (samples: RunResult[]) => (kernelsOf(samples).includes("bf16") ? bf16Peak : fp32Peak);
  // Two views: wall GFLOP/s against the all-core peak, and GFLOP per CPU-second against one core's peak. On a machine
  // shared with other jobs the second is the steadier one (time the run waited for a core does not count).
  const gflops = (samples: RunResult[], gflop: number) => {
    const achieved = gflop / seconds(samples);
    const perCpuSecond = gflop / median(samples.map((r) => r.cpuSeconds));
    const against = peakFor(samples);
    if (!against) return `${achieved.toFixed(0)} GFLOP/s, ${perCpuSecond.toFixed(0)} per CPU-second`;
    const perCore = against / threads;
    return (
      `${achieved.toFixed(0)} GFLOP/s = ${((100 * achieved) / against).toFixed(0)} % of peak, ` +
      `${perCpuSecond.toFixed(0)} per CPU-second = ${((100 * perCpuSecond) / perCore).toFixed(0)} % of one core's`
    );
  };
  const lines = [
    `forward bench: ${params}B-parameter Llama-shaped BF16 checkpoint (${GEOMETRY.layers} layers, d ${GEOMETRY.hidden}), ` +
      `${prompts.length} prompts, ${tokens} tokens, residual stream at every layer (last position), ${threads} threads, ${rounds} rounds, medians`,
    `cpu peak (tight multiply-add loop, per core per CPU-second; × ${threads} cores for the machine): ` +
      `fp32 AVX2 ${peakOf("fp32_avx2")?.toFixed(0) ?? "n/a"} GFLOP/s, fp32 AVX-512 ${peakOf("fp32_avx512")?.toFixed(0) ?? "n/a"} GFLOP/s, ` +
      `bf16 dot (vdpbf16ps) ${bf16Core?.toFixed(0) ?? "n/a"} GFLOP/s`,
  ];
  const engineLine = (label: string, samples: RunResult[], gflop: number) =>
    `${label.padEnd(13)} ${rate(samples).toFixed(0).padStart(6)} tokens/s (${cpuRate(samples).toFixed(0)} per CPU-second)  ` +
    `${gflops(samples, gflop)} (${kernelsOf(samples)})  peak RSS ${peak(samples).toFixed(0)} MB`;
  lines.push(engineLine("resident", runs.resident, captureGflop) + ` (process before loading: ${baseline(runs.resident).toFixed(0)} MB)`);
  lines.push(engineLine("resident again", runs["resident-again"], captureGflop) + " (a second run in the process, as the pipeline runs many)");
  {
    const target = 1.5 * (layerMB + activationMB);
    lines.push(
      engineLine("streamed", runs.streamed, captureGflop) +
        `; above the process baseline ${(peak(runs.streamed) - baseline(runs.streamed)).toFixed(0)} MB vs target 1.5 × (layer ${layerMB.toFixed(0)} MB + activations ${activationMB.toFixed(0)} MB) = ${target.toFixed(0)} MB`,
    );
  }
  lines.push(engineLine("resident fp32", runs["resident-fp32"], captureGflop) + "  (--compute fp32, the reference path)");
  if (python) {
    const hfLine = (label: string, samples: RunResult[]) =>
      `${label.padEnd(13)} ${rate(samples).toFixed(0).padStart(6)} tokens/s (${cpuRate(samples).toFixed(0)} per CPU-second)  ` +
      `${(captureGflop / seconds(samples)).toFixed(0)} GFLOP/s, ${(captureGflop / median(samples.map((r) => r.cpuSeconds))).toFixed(0)} per CPU-second  peak RSS ${peak(samples).toFixed(0)} MB (transformers on CPU, one padded batch)`;
    const hf = rate(runs.hf);
    const hfBf16 = rate(runs.hfBf16);
    const hfBf16Again = runs.hfBf16.map((r) => r.again!);
    lines.push(
      hfLine("hf fp32", runs.hf),
      hfLine("hf bf16", runs.hfBf16),
      hfLine("hf bf16 again", hfBf16Again),
      `ratio of the second runs in one process (wall): resident again ${(rate(runs["resident-again"]) / rate(hfBf16Again)).toFixed(2)}× hf bf16 again (target ≥ 3×)`,
      `ratio to HF fp32 (wall): resident ${(rate(runs.resident) / hf).toFixed(2)}×, streamed ${(rate(runs.streamed) / hf).toFixed(2)}×, ` +
        `resident fp32 ${(rate(runs["resident-fp32"]) / hf).toFixed(2)}×`,
      `ratio to HF bf16 (wall): resident ${(rate(runs.resident) / hfBf16).toFixed(2)}×, streamed ${(rate(runs.streamed) / hfBf16).toFixed(2)}×, ` +
        `resident fp32 ${(rate(runs["resident-fp32"]) / hfBf16).toFixed(2)}× (target ≥ 3×)`,
      `ratio to HF (CPU time, steadier on a shared machine): resident ${(cpuRate(runs.resident) / cpuRate(runs.hf)).toFixed(2)}× fp32, ` +
        `${(cpuRate(runs.resident) / cpuRate(runs.hfBf16)).toFixed(2)}× bf16`,
    );
  } else {
    lines.push("HF transformers comparison: skipped (no python with torch + transformers found)");
  }
  {
    const chatTokens = chat.reduce((n, p) => n + p.length, 0);
    lines.push(
      `shared prefix: ${chat.length} chat-shaped prompts (32 shared tokens + 4–20 own), ${chatTokens} tokens, residual stream at the last position`,
      `${"prefix once".padEnd(13)} ${rate(runs.chat).toFixed(0).padStart(6)} tokens/s (${cpuRate(runs.chat).toFixed(0)} per CPU-second, ${kernelsOf(runs.chat)})`,
      `${"whole prompts".padEnd(13)} ${rate(runs["chat-whole"]).toFixed(0).padStart(6)} tokens/s (${cpuRate(runs["chat-whole"]).toFixed(0)} per CPU-second, reusePrefix: false)`,
      `shared prefix speed-up: ${(rate(runs.chat) / rate(runs["chat-whole"])).toFixed(2)}× wall, ${(cpuRate(runs.chat) / cpuRate(runs["chat-whole"])).toFixed(2)}× CPU time`,
    );
  }
  lines.push(
    `resume at layer ${RESUME_LAYER}: an ablation of layers ${RESUME_LAYER}..${GEOMETRY.layers - 1} on the ${prompts.length} bench prompts, logits at the last position`,
    `${"full run".padEnd(13)} ${seconds(runs["edit-full"]).toFixed(2).padStart(6)} s (${median(runs["edit-full"].map((r) => r.cpuSeconds)).toFixed(2)} CPU-s)`,
    `${"resumed".padEnd(13)} ${seconds(runs["edit-resumed"]).toFixed(2).padStart(6)} s (${median(runs["edit-resumed"].map((r) => r.cpuSeconds)).toFixed(2)} CPU-s) from the unedited stream at layer ${RESUME_LAYER} (computed once, not timed)`,
    `resume speed-up: ${(seconds(runs["edit-full"]) / seconds(runs["edit-resumed"])).toFixed(2)}× wall`,
  );
  lines.push(
    `generation bench: ${GENERATE_PROMPTS} prompts, ${GENERATE_TOKENS} greedy new tokens each (no stop id), KV cache, new tokens/s, medians`,
    engineLine("engine", runs.generate, generateGflop),
    engineLine("engine again", runs["generate-again"], generateGflop) + " (a second run in the process, as the pipeline runs one per batch and candidate)",
    engineLine("engine fp32", runs["generate-fp32"], generateGflop),
  );
  if (python) {
    const hfGen = rate(runs.hfGenerate);
    const hfGenAgain = runs.hfGenerate.map((r) => r.again!);
    lines.push(
      `${"hf bf16".padEnd(13)} ${hfGen.toFixed(0).padStart(6)} tokens/s (${cpuRate(runs.hfGenerate).toFixed(0)} per CPU-second)  ` +
        `peak RSS ${peak(runs.hfGenerate).toFixed(0)} MB (transformers generate, greedy, left-padded batch)`,
      `${"hf bf16 again".padEnd(13)} ${rate(hfGenAgain).toFixed(0).padStart(6)} tokens/s (${cpuRate(hfGenAgain).toFixed(0)} per CPU-second)  (a second generate in the process)`,
      `generation ratio of the second runs in one process (wall): engine again ${(rate(runs["generate-again"]) / rate(hfGenAgain)).toFixed(2)}× hf bf16 again (target ≥ 3×)`,
      `generation ratio to HF bf16 generate (wall): engine ${(rate(runs.generate) / hfGen).toFixed(2)}×, engine fp32 ${(rate(runs["generate-fp32"]) / hfGen).toFixed(2)}× (target ≥ 3×)`,
    );
  }
  return lines;
}

async function child(run: EngineRun, modelDir: string, promptsPath: string, threads: number): Promise<void> {
  const baselineRssMB = process.memoryUsage().rss / 2 ** 20;
  const { loadForwardModel } = await import("../lib/engine/load-forward-model.js");
  const { runForward } = await import("../lib/engine/run-forward.js");
  const prompts = JSON.parse(readFileSync(promptsPath, "utf8")) as number[][];
  const model = await loadForwardModel(modelDir);
  const generate = run.startsWith("generate");
  const edit = run.startsWith("edit");
  // An edit that starts at RESUME_LAYER: the resumed run takes the unedited stream entering it from a run before.
  const direction = Array.from({ length: GEOMETRY.hidden }, (_, i) => Math.sin(i + 1));
  const ablation = { directions: [direction], layers: Array.from({ length: GEOMETRY.layers - RESUME_LAYER }, (_, i) => RESUME_LAYER + i), embedding: false };
  let resumeFrom: { layer: number; hidden: Float32Array } | undefined;
  if (run === "edit-resumed") {
    const { residualStreamAt } = await import("../lib/engine/residual-stream-at.js");
    const unedited = await runForward({ model, prompts, positions: "all", mode: "resident", threads, compute: "auto" });
    resumeFrom = { layer: RESUME_LAYER, hidden: residualStreamAt(unedited, RESUME_LAYER) };
  }
  const compute: "fp32" | "auto" = run.endsWith("fp32") ? "fp32" : "auto";
  const request = {
    model,
    prompts,
    positions: generate ? ("none" as const) : ("last" as const),
    ...(edit ? { ablation, logits: "last" as const, ...(resumeFrom ? { resumeFrom } : {}) } : {}),
    mode: run === "streamed" ? ("streamed" as const) : ("resident" as const),
    threads,
    ...(generate ? { maxNewTokens: GENERATE_TOKENS, eosTokenIds: [] } : {}),
    reusePrefix: run !== "chat-whole",
    compute,
  };
  // The pipeline runs generation once per batch of prompts and per scored candidate: a later run in the process
  // finds its buffers' pages already faulted in (native/core/forward/large_mappings.h).
  if (run.endsWith("-again")) await runForward(request);
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const output = await runForward(request);
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuStarted);
  const result: RunResult = {
    seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    tokens: generate ? prompts.length * GENERATE_TOKENS : prompts.reduce((n, p) => n + p.length, 0),
    peakRssMB: process.resourceUsage().maxRSS / 1024,
    baselineRssMB,
    activationBytes: output.activationBytes,
    kernels: output.kernels,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === "child") {
    await child(process.argv[3] as EngineRun, process.argv[4], process.argv[5], Number(process.argv[6]));
  } else {
    process.stdout.write(`${(await runForwardBench()).join("\n")}\n`);
  }
}
