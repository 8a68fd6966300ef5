/**
 * The one kernel chooser: ABLITERATE_KERNELS caps the projection, verify and forward tables together, runtimeInfo
 * reports all three, the forward engine reports the table it ran, and a bad value is an error naming the setting.
 * The choice is made once per process, so each setting runs in a child process.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { runtimeInfo, type KernelChoice } from "../../lib/native/addon.js";
import { goldenDir } from "../golden/golden-paths.js";

const LEVELS = ["scalar", "avx2", "avx512"];
const addonModule = fileURLToPath(new URL("../../lib/native/addon.js", import.meta.url));
const engineModule = fileURLToPath(new URL("../../lib/engine/load-forward-model.js", import.meta.url));
const runModule = fileURLToPath(new URL("../../lib/engine/run-forward.js", import.meta.url));

/**
 * runtimeInfo().kernels and the forward run's `kernels` (by default, and under each `compute`), in a child with
 * ABLITERATE_KERNELS = setting.
 */
function childChoice(setting: string | undefined): { kernels: KernelChoice; forward: string; ran: Record<string, string> } {
  const script = `
    const { runtimeInfo } = await import(${JSON.stringify(addonModule)});
    const { loadForwardModel } = await import(${JSON.stringify(engineModule)});
    const { runForward } = await import(${JSON.stringify(runModule)});
    const model = await loadForwardModel(${JSON.stringify(`${goldenDir}/forward/llama`)});
    const out = await runForward({ model, prompts: [[1, 2, 3]], positions: "last" });
    const ran = {};
    for (const compute of ["fp32", "bf16", "auto"]) ran[compute] = (await runForward({ model, prompts: [[1, 2, 3]], positions: "last", compute })).kernels;
    process.stdout.write(JSON.stringify({ kernels: runtimeInfo().kernels, forward: out.kernels, ran }));`;
  const env = { ...process.env };
  delete env.ABLITERATE_KERNELS;
  if (setting !== undefined) env.ABLITERATE_KERNELS = setting;
  return JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script], { env, encoding: "utf8" }));
}

const cpu = runtimeInfo().kernels.cpu;

test("ABLITERATE_KERNELS caps all three kernel families at once, and each reports what it runs", () => {
  const auto = childChoice(undefined);
  assert.equal(auto.kernels.setting, "auto");
  assert.equal(auto.kernels.cpu, cpu);
  // auto: the widest compiled table the CPU runs, the same for all three families (the forward engine's included;
  // the run defaults to compute fp32). A build without the AVX-512 units (node-gyp) tops out at AVX2.
  const top = auto.kernels.projection;
  assert.ok(LEVELS.indexOf(top) <= LEVELS.indexOf(cpu) && LEVELS.indexOf(top) >= 1, `auto chose ${top} on a ${cpu} CPU`);
  assert.equal(auto.kernels.verify, top);
  assert.equal(auto.kernels.forward, top);
  assert.equal(auto.forward, auto.kernels.forward);
  for (const setting of ["scalar", "avx2", "avx512"]) {
    const choice = childChoice(setting);
    assert.equal(choice.kernels.setting, setting);
    const cap = Math.min(LEVELS.indexOf(setting), LEVELS.indexOf(top));
    assert.equal(choice.kernels.projection, LEVELS[cap], `${setting}: projection`);
    assert.equal(choice.kernels.verify, LEVELS[cap], `${setting}: verify`);
    assert.equal(choice.kernels.forward, LEVELS[cap], `${setting}: forward`);
    assert.equal(choice.forward, choice.kernels.forward, `${setting}: the forward run reports its table`);
    // What each compute setting runs is known before a run (the pipeline keys its stages on it) and is what ran.
    assert.deepEqual(choice.ran, choice.kernels.forwardCompute, `${setting}: forwardCompute names the tables the runs reported`);
    assert.equal(choice.kernels.forwardCompute.fp32, choice.kernels.forward);
    const bf16 = setting === "avx512" && top === "avx512" && auto.ran.bf16 !== auto.ran.fp32;
    assert.equal(choice.kernels.forwardCompute.bf16, bf16 ? "avx512+bf16-all" : choice.kernels.forward, `${setting}: bf16`);
    assert.equal(choice.kernels.forwardCompute.auto, bf16 ? "avx512+bf16" : choice.kernels.forward, `${setting}: auto`);
  }
  assert.deepEqual(auto.ran, auto.kernels.forwardCompute);
});

test("an unknown ABLITERATE_KERNELS value is an error that names the setting and its values", () => {
  const script = `
    const { runtimeInfo } = await import(${JSON.stringify(addonModule)});
    try { runtimeInfo(); process.stdout.write("no error"); } catch (e) { process.stdout.write(e.code + ": " + e.message); }`;
  const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], { env: { ...process.env, ABLITERATE_KERNELS: "sse9" }, encoding: "utf8" });
  assert.match(result.stdout, /^NATIVE: ABLITERATE_KERNELS must be auto, avx512, avx2 or scalar \(got 'sse9'\)/);
});
