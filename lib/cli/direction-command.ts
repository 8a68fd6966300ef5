/**
 * `abliterate direction MODEL --harmful F --harmless F --out dirs.safetensors`: candidate directions for every
 * layer index from two contrastive prompt sets (mean difference at the post-instruction positions, fp64), written
 * with both means and the prompts' sha256 (layout in lib/directions/write-direction-candidates.ts).
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import type { PromptSet } from "../pipeline/prompt-sources.js";
import { BUILTIN_HARMFUL_PROMPTS, BUILTIN_HARMLESS_PROMPTS } from "../directions/builtin-prompts.js";
import { splitContrastSets } from "../directions/split-prompts.js";
import { printJson, printText, type GlobalArgs } from "./global-options.js";
import { contrastSources, forwardSettings, withPromptOptions, type PromptArgs } from "./pipeline-options.js";
import { ProgressDisplay } from "./progress.js";
import { resolveModelArgument } from "./resolve-model-argument.js";

interface DirectionArgs extends GlobalArgs, PromptArgs {
  model: string;
  out: string;
}

export const directionCommand: CommandModule<GlobalArgs, DirectionArgs> = {
  command: "direction <model>",
  describe: "candidate directions [L+1, d] from contrastive prompts: mean(positive) − mean(negative) at every layer",
  builder: (yargs) =>
    withPromptOptions(
      (yargs as Argv<GlobalArgs>)
        .positional("model", { type: "string", demandOption: true, describe: "local folder or Hub repo id (org/name[@revision])" })
        .option("out", { type: "string", demandOption: true, describe: "output .safetensors file" })
        .option("threads", { type: "number", describe: "worker threads (default: all cores)" }),
    ) as unknown as Argv<DirectionArgs>,
  handler: async (args: ArgumentsCamelCase<DirectionArgs>) => {
    const { readPromptSetOrDefault } = await import("../pipeline/prompt-sources.js");
    const { loadForwardModel } = await import("../engine/load-forward-model.js");
    const { promptEncoder } = await import("../directions/encode-prompts.js");
    const { contrastMeans } = await import("../directions/mean-difference.js");
    const { DEFAULT_HARMFUL_DATASET, DEFAULT_HARMLESS_DATASET } = await import("../pipeline/direction-pipeline.js");
    const { writeDirectionCandidates } = await import("../direction-files/write-direction-candidates.js");
    const { loadPromptTokenizer } = await import("../tokenize/load-prompt-tokenizer.js");
    const display = new ProgressDisplay({ quiet: args.quiet || args.json });
    const sources = contrastSources(args);
    const model = await resolveModelArgument({ model: args.model, token: args.token, display });
    const notes: string[] = [];
    const read = async (source: string | undefined, defaultDataset: string, builtin: readonly string[], label: string): Promise<PromptSet> => {
      const set = await readPromptSetOrDefault({ source, defaultDataset, builtin, label, column: args.column, token: args.token });
      if (set.note) {
        notes.push(set.note);
        display.log(`note: ${set.note}`);
      }
      if (source === undefined) display.log(`no --${label} prompts given: ${set.prompts.length} ${label} prompts from ${set.origin}`);
      return set;
    };
    const positive = await read(sources.positive, DEFAULT_HARMFUL_DATASET, BUILTIN_HARMFUL_PROMPTS, sources.labels.positive);
    const negative = await read(sources.negative, DEFAULT_HARMLESS_DATASET, BUILTIN_HARMLESS_PROMPTS, sources.labels.negative);
    // Checks the sets (empty, too small, overlapping) the same way the one command does; all prompts are used here.
    splitContrastSets({ positive: positive.prompts, negative: negative.prompts, labels: sources.labels });
    const tokenizer = loadPromptTokenizer({ dir: model.dir });
    const encode = promptEncoder(tokenizer, { chatTemplate: args["chat-template"], system: args.system });
    const forwardModel = await loadForwardModel(model.dir);
    const task = display.start("directions", positive.prompts.length + negative.prompts.length, "items");
    const means = await contrastMeans({
      model: forwardModel,
      positive: positive.prompts.map(encode),
      negative: negative.prompts.map(encode),
      positions: args.positions,
      ...forwardSettings(args),
      onProgress: (done) => task.update(done),
    });
    task.finish();
    display.stop();
    await writeDirectionCandidates({
      path: args.out,
      means,
      metadata: {
        model: args.model,
        modelRevision: model.source?.commit,
        positivePrompts: positive.prompts,
        negativePrompts: negative.prompts,
        positiveLabel: sources.labels.positive,
        negativeLabel: sources.labels.negative,
        positiveOrigin: positive.origin,
        negativeOrigin: negative.origin,
        positions: args.positions ?? 1,
        chatTemplate: args["chat-template"] !== false,
        systemPrompt: args.system,
      },
    });
    const norms = means.directions.map((row) => Math.hypot(...row));
    if (args.json) {
      printJson({ ok: true, out: args.out, shape: [means.directions.length, forwardModel.spec.hiddenSize], positive: positive.prompts.length, negative: negative.prompts.length, origins: { positive: positive.origin, negative: negative.origin }, notes, norms });
      return;
    }
    printText(args, 
      `wrote ${args.out}: directions [${means.directions.length}, ${forwardModel.spec.hiddenSize}] from ${positive.prompts.length} ${sources.labels.positive} and ${negative.prompts.length} ${sources.labels.negative} prompts\n` +
        `norm per layer index: ${norms.map((n) => n.toFixed(3)).join(" ")}\n` +
        `use it with: abliterate apply ${args.model} --direction ${args.out} --direction-layer I --out DIR\n`,
    );
  },
};
