/**
 * `abliterate demo`: the whole pipeline, offline, in seconds, on the planted-refusal chat model (generated
 * deterministically on first use; lib/directions/planted-refusal-model.ts) with the built-in prompt sets. Prints the
 * before/after refusal rates and where the report is.
 */
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import { printJson, printText, type GlobalArgs } from "./global-options.js";
import { ProgressDisplay } from "./progress.js";
import { withNumberOptions } from "./number-option.js";
import { threadsFrom, withThreadsOption, type ThreadsArgs } from "./threads-option.js";

interface DemoArgs extends GlobalArgs, ThreadsArgs {
  dir?: string;
  "max-new-tokens"?: number;
}

/** Bumped whenever the planted model changes, so an old cached copy is not reused. */
const DEMO_MODEL_VERSION = "v1";

export const demoCommand: CommandModule<GlobalArgs, DemoArgs> = {
  command: "demo",
  describe: "run the whole pipeline offline on a tiny planted-refusal chat model and write a report",
  builder: (yargs) =>
    withNumberOptions(withThreadsOption(yargs as Argv<GlobalArgs>), { "max-new-tokens": { integer: true, min: 1, max: 4096, describe: "greedy tokens per prompt in the evaluation (default 8)" } })
      .option("dir", { type: "string", describe: "where the demo model, work files, output and report go (default: $TMPDIR/abliterate-demo)" }) as unknown as Argv<DemoArgs>,
  handler: async (args: ArgumentsCamelCase<DemoArgs>) => {
    const { writePlantedRefusalModel } = await import("../directions/planted-refusal-model.js");
    const { runPipeline } = await import("../pipeline/run-pipeline.js");
    const { renderPipeline } = await import("./render-pipeline.js");
    const display = new ProgressDisplay({ quiet: args.quiet || args.json });
    const root = resolve(args.dir ?? join(tmpdir(), "abliterate-demo"));
    const modelDir = join(root, `planted-refusal-${DEMO_MODEL_VERSION}`);
    if (!existsSync(join(modelDir, "model.safetensors"))) {
      display.log(`generating the planted-refusal model in ${modelDir}`);
      await writePlantedRefusalModel({ dir: modelDir });
    }
    const outDir = join(root, "planted-refusal-abliterated");
    const workDir = join(root, "work");
    const threads = threadsFrom(args);
    const result = await renderPipeline(
      runPipeline({
        modelDir,
        modelSource: "planted-refusal (abliterate demo)",
        workDir,
        builtinPrompts: true,
        maxNewTokens: args["max-new-tokens"] ?? 8,
        forward: { threads },
        outDir,
        force: true,
        threads,
        // Enough for TPE to leave its 20 random startup trials on a model where a trial takes milliseconds.
        search: { trials: 40 },
      }),
      display,
      workDir,
    );
    const { evaluation } = result;
    if (args.json) {
      printJson({ ok: true, model: modelDir, out: outDir, layer: result.layer, report: result.reportHtml, evaluation: { ...evaluation, samples: undefined } });
      return;
    }
    const pct = (v: number) => `${(100 * v).toFixed(0)}%`;
    printText(args, 
      `refusal rate on ${evaluation.positivePrompts} held-out harmful prompts: ${pct(evaluation.before.positiveBehaviour)} before, ${pct(evaluation.after.positiveBehaviour)} after\n` +
        `refusal rate on ${evaluation.negativePrompts} held-out harmless prompts: ${pct(evaluation.before.negativeBehaviour)} before, ${pct(evaluation.after.negativeBehaviour)} after; ` +
        `${pct(evaluation.negativeUnchanged)} of their completions unchanged, mean KL ${evaluation.negativeKl.toFixed(4)}\n` +
        `${result.search ? `edit: search trial #${result.search.chosen.number} of ${result.search.trials.length} (the single-layer rule picked layer index ${result.layer})` : `direction: layer index ${result.layer}`}; edited model: ${outDir}\n` +
        `report: ${result.reportHtml}\n`,
    );
  },
};
