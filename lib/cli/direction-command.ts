/**
 * `abliterate direction MODEL --harmful F --harmless F --out dirs.safetensors`: candidate directions for every
 * layer index from two contrastive prompt sets (mean difference at the post-instruction positions of the train
 * split, fp64), written with both means and the prompts' sha256 (layout in
 * lib/direction-files/write-direction-candidates.ts). The same stages as the one command (lib/pipeline).
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import { printJson, printText, type GlobalArgs } from "./global-options.js";
import { contrastSources, directionStageOptions, withPromptOptions, withSelectionOptions, type PromptArgs, type SelectionArgs } from "./pipeline-options.js";
import { ProgressDisplay } from "./progress.js";
import { renderPipeline } from "./render-pipeline.js";
import { resolveModelArgument } from "./resolve-model-argument.js";

interface DirectionArgs extends GlobalArgs, PromptArgs, SelectionArgs {
  model: string;
  out: string;
  force?: boolean;
  "work-dir"?: string;
}

export const directionCommand: CommandModule<GlobalArgs, DirectionArgs> = {
  command: "direction <model>",
  describe: "candidate directions [L+1, d] from contrastive prompts: mean(positive) − mean(negative) at every layer",
  builder: (yargs) =>
    withSelectionOptions(withPromptOptions(
      (yargs as Argv<GlobalArgs>)
        .positional("model", { type: "string", demandOption: true, describe: "local folder or Hub repo id (org/name[@revision])" })
        .option("out", { type: "string", demandOption: true, describe: "output .safetensors file" })
        .option("force", { type: "boolean", describe: "replace an existing --out file" })
        .option("work-dir", { type: "string", describe: "keep each stage's results here so a rerun resumes (default: a temporary folder, removed afterwards)" }),
    )) as unknown as Argv<DirectionArgs>,
  handler: async (args: ArgumentsCamelCase<DirectionArgs>) => {
    const { findDirections } = await import("../pipeline/find-directions.js");
    const display = new ProgressDisplay({ quiet: args.quiet || args.json });
    const sources = contrastSources(args);
    const model = await resolveModelArgument({ model: args.model, token: args.token, display });
    const tempWork = args["work-dir"] ? undefined : await mkdtemp(join(tmpdir(), "abliterate-direction-"));
    const workDir = args["work-dir"] ?? tempWork!;
    try {
      const found = await renderPipeline(
        findDirections({
          ...directionStageOptions(args, model, args.model, args.token, workDir),
          out: args.out,
          force: args.force,
        }),
        display,
        workDir,
      );
      const { candidates, prompts, subspace } = found;
      if (subspace) {
        const steps = subspace.subspace.steps;
        const d = steps[0].direction.length;
        if (args.json) {
          printJson({ ok: true, out: args.out, shape: [steps.length, d], subspace: { ...subspace.subspace, steps: steps.map(({ direction: _d, candidates: _c, verdicts: _v, ...step }) => step) }, origins: prompts.origins, notes: prompts.notes });
          return;
        }
        printText(
          args,
          `wrote ${args.out}: subspace [${steps.length}, ${d}] (${subspace.subspace.stopped})\n` +
            steps.map((st, i) => `  r${i + 1}: layer ${st.layer}, ${sources.labels.positive} behaviour left ${st.behaviour.toFixed(3)} with r1..r${i + 1} removed, ${sources.labels.negative} unchanged ${(100 * st.unchanged).toFixed(0)}%, induces ${st.induced.toFixed(3)} alone\n`).join("") +
            `use it with: abliterate apply ${args.model} --direction ${args.out} --out DIR\n`,
        );
        return;
      }
      const train = { positive: prompts.splits.positive.train.length, negative: prompts.splits.negative.train.length };
      const norms = candidates.directions.map((row) => Math.hypot(...row));
      const d = candidates.directions[0].length;
      if (args.json) {
        printJson({ ok: true, out: args.out, shape: [candidates.directions.length, d], positive: train.positive, negative: train.negative, origins: prompts.origins, notes: prompts.notes, norms });
        return;
      }
      printText(
        args,
        `wrote ${args.out}: directions [${candidates.directions.length}, ${d}] from the train split, ${train.positive} ${sources.labels.positive} and ${train.negative} ${sources.labels.negative} prompts\n` +
          `norm per layer index: ${norms.map((n) => n.toFixed(3)).join(" ")}\n` +
          `use it with: abliterate apply ${args.model} --direction ${args.out} --direction-layer I --out DIR\n`,
      );
    } finally {
      if (tempWork) await rm(tempWork, { recursive: true, force: true });
    }
  },
};
