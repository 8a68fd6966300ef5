/**
 * The forward kernel tables against each other and against an independent fp64 forward pass, on a random Llama
 * whose sizes are not multiples of any register tile (hidden 100, head_dim 72 (past one 64-wide register block of the attention kernels), intermediate 333, 150-token prompt):
 * - every fp32 table (scalar, AVX2, AVX-512, capped with ABLITERATE_KERNELS) agrees with the fp64 reference within
 *   fp32 rounding and with the others within reassociation;
 * - the bf16 recipe (vdpbf16ps) stays within its documented bound of the fp64 reference (docs/precision.md) and
 *   is measurably not the fp32 path (it skips where the CPU lacks AVX512_BF16).
 * Each table is chosen once per process, so every case runs in a child process.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { hiddenBlock, relativeError } from "../golden/forward-golden.js";
import { normalGenerator, referenceLlamaForward, writeRandomLlama, writeTensors } from "../golden/random-llama.js";

const here = dirname(fileURLToPath(import.meta.url));

interface ChildOutput {
  kernels: string;
  hidden: number[];
}

/** Runs the forward pass in a child with the given environment; returns its kernel table and residual stream. */
function runChild(modelDir: string, promptsPath: string, env: Record<string, string>, compute: string): ChildOutput {
  const script = `
    import { loadForwardModel } from ${JSON.stringify(join(here, "..", "..", "lib", "engine", "load-forward-model.js"))};
    import { runForward } from ${JSON.stringify(join(here, "..", "..", "lib", "engine", "run-forward.js"))};
    import { readFileSync } from "node:fs";
    const prompts = JSON.parse(readFileSync(process.argv[2], "utf8"));
    const model = await loadForwardModel(process.argv[1]);
    const out = await runForward({ model, prompts, positions: "all", mode: "resident", threads: 2, compute: process.argv[3] });
    process.stdout.write(JSON.stringify({ kernels: out.kernels, hidden: Array.from(out.hidden) }));
  `;
  const stdout = execFileSync(process.execPath, ["--input-type=module", "-e", script, modelDir, promptsPath, compute], {
    env: { ...process.env, ...env },
    maxBuffer: 256 * 1024 * 1024,
    encoding: "utf8",
  });
  return JSON.parse(stdout) as ChildOutput;
}

test("fp32 kernel tables agree with an fp64 forward pass and with each other; the bf16 recipe stays within its bound", async (t) => {
  const root = mkdtempSync(join(tmpdir(), "abl-perf-"));
  try {
    const model = writeRandomLlama(join(root, "model"), {
      hidden: 100,
      heads: 5,
      kvHeads: 1,
      headDim: 72,
      intermediate: 333,
      layers: 2,
      vocab: 61,
      dtype: "BF16",
      tie: false,
      bias: false,
      seed: 31,
    });
    await writeTensors(model);
    const normal = normalGenerator(5);
    const prompts = [150, 7, 33].map((length) => Array.from({ length }, () => Math.floor(Math.abs(normal() * 1000)) % 61));
    const promptsPath = join(root, "prompts.json");
    writeFileSync(promptsPath, JSON.stringify(prompts));
    const points = 3;
    const d = 100;
    const reference = prompts.map((tokens) => referenceLlamaForward(model, tokens));
    const errorAgainstReference = (hidden: Float32Array) => {
      let worst = 0;
      let offset = 0;
      prompts.forEach((tokens, p) => {
        for (let point = 1; point < points; point += 1) {
          const expected = reference[p][point];
          worst = Math.max(worst, relativeError(hiddenBlock(hidden, offset, tokens.length, point, points, d), expected));
        }
        offset += tokens.length;
      });
      return worst;
    };

    const fp32Runs: Record<string, Float32Array> = {};
    for (const simd of ["scalar", "avx2", "avx512"]) {
      const out = runChild(model.dir, promptsPath, { ABLITERATE_KERNELS: simd }, "fp32");
      const hidden = Float32Array.from(out.hidden);
      const error = errorAgainstReference(hidden);
      assert.ok(error <= 1e-4, `${out.kernels} (ABLITERATE_KERNELS=${simd}): relative error ${error} against fp64`);
      fp32Runs[out.kernels] = hidden;
    }
    const tables = Object.keys(fp32Runs);
    assert.ok(tables.includes("scalar"), `ran: ${tables.join(", ")}`);
    for (const name of tables) {
      const error = relativeError(fp32Runs[name], Float64Array.from(fp32Runs.scalar));
      assert.ok(error <= 1e-5, `${name} vs scalar: ${error}`);
    }

    const bf16 = runChild(model.dir, promptsPath, {}, "bf16");
    if (!bf16.kernels.includes("bf16")) {
      t.skip(`no AVX512_BF16 on this CPU (kernels: ${bf16.kernels})`);
      return;
    }
    const hidden = Float32Array.from(bf16.hidden);
    const error = errorAgainstReference(hidden);
    // Bound from docs/precision.md: activations rounded to bf16 (2^-9) before every projection, fp32 sums.
    assert.ok(error <= 2e-2, `${bf16.kernels}: relative error ${error} against fp64 exceeds 2e-2`);
    assert.ok(relativeError(hidden, Float64Array.from(fp32Runs.scalar)) > 1e-6, "the bf16 run should not be the fp32 arithmetic");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
