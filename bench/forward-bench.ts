/**
 * Forward-engine part of `npm run bench` (bench/run-bench.ts calls runForwardBench()).
 *
 * Workload: a ~0.43B-parameter Llama-shaped checkpoint (hidden 1024, 16 heads / 4 KV heads, intermediate 4096,
 * 24 layers, vocab 32000, BF16, random finite values) generated once into the bench cache, and 64 prompts of 16–40
 * random tokens. Measured: activation capture (residual stream at every layer, last position) in resident and
 * layer-streamed mode, and HF transformers fp32 on CPU on the same token ids (`model.model(...,
 * output_hidden_states=True)`, one left-padded batch; only real tokens counted) when a Python with torch and
 * transformers is found (ABLITERATE_BENCH_PYTHON, python3, /opt/goldenv/bin/python). Each run is a child process,
 * so its peak RSS (getrusage maxrss) is its own; runs alternate across rounds and medians are printed.
 *
 * Run as a script with `child <mode> <cache>` it is the child for one engine run.
 */
import { spawnSync } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { cpus } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const GEOMETRY = { hidden: 1024, heads: 16, kvHeads: 4, headDim: 64, intermediate: 4096, layers: 24, vocab: 32000 };
const PROMPTS = 64;
const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");

interface PlannedTensor {
  name: string;
  shape: number[];
  /** bf16 bit pattern generator: exponent of the magnitude range [2^e, 2^(e+1)). */
  exponent: number | "one";
}

function plannedTensors(): PlannedTensor[] {
  const { hidden: d, heads, kvHeads, headDim, intermediate, layers, vocab } = GEOMETRY;
  // Magnitudes near 1/√fan_in keep activations finite and attention non-uniform, like a trained model's scale.
  const tensors: PlannedTensor[] = [{ name: "model.embed_tokens.weight", shape: [vocab, d], exponent: -1 }];
  for (let l = 0; l < layers; l += 1) {
    const p = `model.layers.${l}.`;
    tensors.push(
      { name: `${p}input_layernorm.weight`, shape: [d], exponent: "one" },
      { name: `${p}self_attn.q_proj.weight`, shape: [heads * headDim, d], exponent: -6 },
      { name: `${p}self_attn.k_proj.weight`, shape: [kvHeads * headDim, d], exponent: -6 },
      { name: `${p}self_attn.v_proj.weight`, shape: [kvHeads * headDim, d], exponent: -6 },
      { name: `${p}self_attn.o_proj.weight`, shape: [d, heads * headDim], exponent: -7 },
      { name: `${p}post_attention_layernorm.weight`, shape: [d], exponent: "one" },
      { name: `${p}mlp.gate_proj.weight`, shape: [intermediate, d], exponent: -6 },
      { name: `${p}mlp.up_proj.weight`, shape: [intermediate, d], exponent: -6 },
      { name: `${p}mlp.down_proj.weight`, shape: [d, intermediate], exponent: -8 },
    );
  }
  tensors.push({ name: "model.norm.weight", shape: [d], exponent: "one" }, { name: "lm_head.weight", shape: [vocab, d], exponent: -6 });
  return tensors;
}

/** xorshift32 bf16 patterns: random sign and mantissa, exponent fixed per tensor. */
function fillBf16(out: Uint16Array, exponent: number | "one", state: { s: number }): void {
  if (exponent === "one") {
    out.fill(0x3f80);
    return;
  }
  const biased = (exponent + 127) << 7;
  let s = state.s;
  for (let i = 0; i < out.length; i += 1) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 16) & 0x8000) | biased | (s & 0x7f);
  }
  state.s = s;
}

function ensureCheckpoint(cache: string): string {
  const dir = join(cache, "forward-llama-0.43b");
  if (existsSync(join(dir, "complete"))) return dir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const tensors = plannedTensors();
  const shards: PlannedTensor[][] = [[]];
  let shardBytes = 0;
  for (const tensor of tensors) {
    const bytes = tensor.shape.reduce((a, b) => a * b, 1) * 2;
    if (shardBytes + bytes > 300e6 && shards[shards.length - 1].length > 0) {
      shards.push([]);
      shardBytes = 0;
    }
    shards[shards.length - 1].push(tensor);
    shardBytes += bytes;
  }
  const weightMap: Record<string, string> = {};
  const state = { s: 0x2545f491 };
  shards.forEach((shard, index) => {
    const name = `model-${String(index + 1).padStart(5, "0")}-of-${String(shards.length).padStart(5, "0")}.safetensors`;
    const header: Record<string, unknown> = {};
    let offset = 0;
    for (const tensor of shard) {
      const bytes = tensor.shape.reduce((a, b) => a * b, 1) * 2;
      header[tensor.name] = { dtype: "BF16", shape: tensor.shape, data_offsets: [offset, offset + bytes] };
      offset += bytes;
      weightMap[tensor.name] = name;
    }
    let json = JSON.stringify(header);
    json += " ".repeat((8 - ((json.length + 8) % 8)) % 8);
    const fd = openSync(join(dir, `${name}.partial`), "w");
    try {
      const prefix = Buffer.alloc(8);
      prefix.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
      writeSync(fd, prefix);
      writeSync(fd, json);
      for (const tensor of shard) {
        const values = new Uint16Array(tensor.shape.reduce((a, b) => a * b, 1));
        fillBf16(values, tensor.exponent, state);
        writeSync(fd, new Uint8Array(values.buffer));
      }
    } finally {
      closeSync(fd);
    }
    renameSync(join(dir, `${name}.partial`), join(dir, name));
  });
  writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  const { hidden, heads, kvHeads, headDim, intermediate, layers, vocab } = GEOMETRY;
  writeFileSync(
    join(dir, "config.json"),
    JSON.stringify({
      architectures: ["LlamaForCausalLM"], model_type: "llama", hidden_size: hidden, num_attention_heads: heads,
      num_key_value_heads: kvHeads, head_dim: headDim, intermediate_size: intermediate, num_hidden_layers: layers,
      vocab_size: vocab, rms_norm_eps: 1e-5, rope_theta: 10000, max_position_embeddings: 2048, tie_word_embeddings: false,
      hidden_act: "silu", torch_dtype: "bfloat16",
    }),
  );
  writeFileSync(join(dir, "complete"), "");
  return dir;
}

function benchPrompts(): number[][] {
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
}

function spawnJson(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): RunResult {
  const result = spawnSync(command, args, { encoding: "utf8", env, maxBuffer: 16 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`${command} ${args.join(" ")} failed:\n${result.stderr}`);
  return JSON.parse(result.stdout.trim().split("\n").pop()!) as RunResult;
}

const HF_SCRIPT = String.raw`
import json, resource, sys, time
import torch
from transformers import AutoModelForCausalLM
model_dir, prompts_path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
prompts = json.load(open(prompts_path))
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
longest = max(len(p) for p in prompts)
ids = torch.zeros((len(prompts), longest), dtype=torch.long)
mask = torch.zeros((len(prompts), longest), dtype=torch.long)
for i, p in enumerate(prompts):
    ids[i, longest - len(p):] = torch.tensor(p)
    mask[i, longest - len(p):] = 1
start = time.perf_counter()
cpu_start = time.process_time()
with torch.no_grad():
    out = model.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    last = torch.stack([h[:, -1, :] for h in out.hidden_states], dim=1)
seconds = time.perf_counter() - start
cpu_seconds = time.process_time() - cpu_start
print(json.dumps({"seconds": seconds, "cpuSeconds": cpu_seconds, "tokens": sum(len(p) for p in prompts),
                  "peakRssMB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "baselineRssMB": baseline / 1024}))
`;

function findTorchPython(): string | undefined {
  for (const candidate of [process.env.ABLITERATE_BENCH_PYTHON, "python3", "/opt/goldenv/bin/python"].filter(Boolean) as string[]) {
    const probe = spawnSync(candidate, ["-c", "import torch, transformers"], { stdio: "ignore" });
    if (probe.status === 0) return candidate;
  }
  return undefined;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

export async function runForwardBench(): Promise<string[]> {
  const cache = process.env.ABLITERATE_BENCH_CACHE ?? join(root, ".bench-cache");
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  mkdirSync(cache, { recursive: true });
  const modelDir = ensureCheckpoint(cache);
  const prompts = benchPrompts();
  const promptsPath = join(cache, "forward-prompts.json");
  writeFileSync(promptsPath, JSON.stringify(prompts));
  const threads = cpus().length;
  const python = findTorchPython();
  const runs: Record<string, RunResult[]> = { resident: [], streamed: [], hf: [] };
  const self = fileURLToPath(import.meta.url);
  for (let round = 0; round < rounds; round += 1) {
    for (const mode of ["resident", "streamed"] as const) {
      runs[mode].push(spawnJson(process.execPath, [self, "child", mode, modelDir, promptsPath, String(threads)]));
    }
    if (python) runs.hf.push(spawnJson(python, ["-c", HF_SCRIPT, modelDir, promptsPath, String(threads)]));
    process.stderr.write(`bench: forward round ${round + 1}/${rounds} done\n`);
  }

  const { loadForwardModel } = await import("../lib/engine/load-forward-model.js");
  const model = await loadForwardModel(modelDir);
  const tokens = prompts.reduce((n, p) => n + p.length, 0);
  const layerMB = Math.max(...model.layerBytes) / 2 ** 20;
  const activationMB = Math.max(...runs.streamed.map((r) => r.activationBytes ?? 0)) / 2 ** 20;
  const rate = (samples: RunResult[]) => tokens / median(samples.map((r) => r.seconds));
  const cpuRate = (samples: RunResult[]) => tokens / median(samples.map((r) => r.cpuSeconds));
  const peak = (samples: RunResult[]) => Math.max(...samples.map((r) => r.peakRssMB));
  const baseline = (samples: RunResult[]) => Math.min(...samples.map((r) => r.baselineRssMB));
  const params = (model.totalBytes / 2 / 1e9).toFixed(2);
  const lines = [
    `forward bench: ${params}B-parameter Llama-shaped BF16 checkpoint (${GEOMETRY.layers} layers, d ${GEOMETRY.hidden}), ` +
      `${prompts.length} prompts, ${tokens} tokens, residual stream at every layer (last position), ${threads} threads, ${rounds} rounds, medians`,
  ];
  for (const mode of ["resident", "streamed"] as const) {
    const samples = runs[mode];
    let line = `${mode.padEnd(9)} ${rate(samples).toFixed(0).padStart(6)} tokens/s (${cpuRate(samples).toFixed(0)} per CPU-second)  peak RSS ${peak(samples).toFixed(0)} MB (process before loading: ${baseline(samples).toFixed(0)} MB)`;
    if (mode === "streamed") {
      const target = 1.5 * (layerMB + activationMB);
      line += `; above that baseline ${(peak(samples) - baseline(samples)).toFixed(0)} MB vs target 1.5 × (layer ${layerMB.toFixed(0)} MB + activations ${activationMB.toFixed(0)} MB) = ${target.toFixed(0)} MB`;
    }
    lines.push(line);
  }
  if (python) {
    const hf = rate(runs.hf);
    const hfCpu = cpuRate(runs.hf);
    lines.push(
      `hf fp32   ${hf.toFixed(0).padStart(6)} tokens/s (${hfCpu.toFixed(0)} per CPU-second)  peak RSS ${peak(runs.hf).toFixed(0)} MB (transformers on CPU, one padded batch)`,
      `ratio to HF (wall): resident ${(rate(runs.resident) / hf).toFixed(2)}×, streamed ${(rate(runs.streamed) / hf).toFixed(2)}× (target ≥ 1.0×)`,
      `ratio to HF (CPU time, steadier on a shared machine): resident ${(cpuRate(runs.resident) / hfCpu).toFixed(2)}×, streamed ${(cpuRate(runs.streamed) / hfCpu).toFixed(2)}×`,
    );
  } else {
    lines.push("HF transformers comparison: skipped (no python with torch + transformers found)");
  }
  return lines;
}

async function child(mode: "resident" | "streamed", modelDir: string, promptsPath: string, threads: number): Promise<void> {
  const baselineRssMB = process.memoryUsage().rss / 2 ** 20;
  const { loadForwardModel } = await import("../lib/engine/load-forward-model.js");
  const { runForward } = await import("../lib/engine/run-forward.js");
  const prompts = JSON.parse(readFileSync(promptsPath, "utf8")) as number[][];
  const model = await loadForwardModel(modelDir);
  const started = performance.now();
  const cpuStarted = process.cpuUsage();
  const output = await runForward({ model, prompts, positions: "last", mode, threads });
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuStarted);
  const result: RunResult = {
    seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    tokens: prompts.reduce((n, p) => n + p.length, 0),
    peakRssMB: process.resourceUsage().maxRSS / 1024,
    baselineRssMB,
    activationBytes: output.activationBytes,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === "child") {
    await child(process.argv[3] as "resident" | "streamed", process.argv[4], process.argv[5], Number(process.argv[6]));
  } else {
    process.stdout.write(`${(await runForwardBench()).join("\n")}\n`);
  }
}
