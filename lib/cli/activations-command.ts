/**
 * `abliterate activations MODEL --prompts FILE --out FILE.safetensors`: the residual stream of every prompt at every
 * layer, written as safetensors (layout in lib/engine/collect-activations.ts). The run is resident when the model
 * fits the memory budget and layer-streamed otherwise, so any model runs on any machine.
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import { defaultMemoryBudget, parseMemorySize, type ForwardMode } from "../engine/memory-budget.js";
import type { ForwardCompute } from "../engine/run-forward.js";
import { readPromptsFile } from "../tokenize/read-prompts.js";
import { formatBytes } from "./format-bytes.js";
import { printJson, printText, type GlobalArgs } from "./global-options.js";
import { ProgressDisplay } from "./progress.js";
import { resolveModelArgument } from "./resolve-model-argument.js";
import { threadsFrom, withThreadsOption, type ThreadsArgs } from "./threads-option.js";

interface ActivationsArgs extends GlobalArgs, ThreadsArgs {
  model: string;
  prompts: string;
  out: string;
  positions: "last" | "all";
  chatTemplate?: boolean;
  maxMemory?: string;
  mode: ForwardMode | "auto";
  compute: ForwardCompute;
  force?: boolean;
}

export const activationsCommand: CommandModule<GlobalArgs, ActivationsArgs> = {
  command: "activations <model>",
  describe: "run prompts through the model and save the residual stream at every layer (safetensors)",
  builder: (yargs) =>
    withThreadsOption(yargs as Argv<GlobalArgs>)
      .positional("model", { type: "string", demandOption: true, describe: "local folder or Hub repo id (org/name[@revision])" })
      .option("prompts", { type: "string", demandOption: true, describe: "prompts: .txt (one per line), .json (array) or .jsonl" })
      .option("out", { type: "string", demandOption: true, describe: "output .safetensors file (written atomically; an existing one only with --force)" })
      .option("force", { type: "boolean", describe: "replace an existing --out file" })
      .option("positions", {
        choices: ["last", "all"] as const,
        default: "last" as const,
        describe: "last: [prompts, L+1, d] at each prompt's last token; all: [tokens, L+1, d] with prompt_offsets",
      })
      .option("chat-template", {
        type: "boolean",
        describe: "wrap each prompt as a user turn with the tokenizer's chat template (default: when it has one)",
      })
      .option("max-memory", { type: "string", describe: "memory budget, e.g. 512MB or 4GB (default: 80% of available memory)" })
      .option("mode", {
        choices: ["auto", "resident", "streamed"] as const,
        default: "auto" as const,
        describe: "resident maps every layer; streamed runs all prompts one layer at a time; auto picks by the budget",
      })
      .option("compute", {
        choices: ["fp32", "bf16", "auto"] as const,
        default: "fp32" as const,
        describe: "arithmetic of the projections: fp32 (the reference), bf16, or auto (bf16 on BF16 weights where the CPU has AVX512_BF16)",
      }) as unknown as Argv<ActivationsArgs>,
  handler: async (args: ArgumentsCamelCase<ActivationsArgs>) => {
    const { collectActivations, writeActivationsFile } = await import("../engine/collect-activations.js");
    const { checkOutputFile } = await import("../fs/write-output-file.js");
    const display = new ProgressDisplay({ quiet: args.quiet || args.json });
    const model = await resolveModelArgument({ model: args.model, token: args.token, display });
    const promptsInput = { path: args.prompts, label: "the prompts file" };
    // The output is checked before the forward pass, so an existing file or an input given as --out fails at once.
    const output = { path: args.out, force: args.force, inputs: [{ path: model.dir, label: "the model" }, promptsInput] };
    await checkOutputFile(output);
    const prompts = await readPromptsFile(args.prompts);
    const budget = args.maxMemory !== undefined ? parseMemorySize(args.maxMemory) : defaultMemoryBudget();
    const task = display.start("forward", 1, "items");
    const collected = await collectActivations({
      modelDir: model.dir,
      prompts,
      positions: args.positions,
      chatTemplate: args.chatTemplate,
      maxMemoryBytes: budget,
      mode: args.mode,
      threads: threadsFrom(args),
      compute: args.compute,
      onProgress: (progress) => {
        task.setTotal(progress.layersTotal);
        task.update(progress.layersDone);
      },
    });
    task.finish();
    await writeActivationsFile({ path: args.out, collected, positions: args.positions, modelDir: model.dir, force: args.force, otherInputs: [promptsInput] });
    const forward = collected.output;
    const tokens = collected.tokenIds.reduce((sum, ids) => sum + ids.length, 0);
    const rows = forward.hidden.length / ((forward.numLayers + 1) * forward.hiddenSize);
    const shape = [rows, forward.numLayers + 1, forward.hiddenSize];
    if (args.json) {
      printJson({
        ok: true,
        out: args.out,
        shape,
        prompts: prompts.length,
        tokens,
        positions: args.positions,
        chatTemplate: collected.usedChatTemplate,
        mode: forward.mode,
        kernels: forward.kernels,
        memoryBudget: budget,
        estimatedPeakBytes: forward.estimatedBytes,
        seconds: forward.seconds,
        tokensPerSecond: tokens / forward.seconds,
      });
      return;
    }
    printText(args, 
      `wrote ${args.out}: activations [${shape.join(", ")}] f32 for ${prompts.length} prompt(s), ${tokens} token(s)\n` +
        `${forward.mode} run on ${forward.kernels} (budget ${formatBytes(budget)}, estimated peak ${formatBytes(forward.estimatedBytes)}), ` +
        `${forward.seconds.toFixed(2)}s, ${(tokens / forward.seconds).toFixed(0)} tokens/s, ` +
        `chat template ${collected.usedChatTemplate ? "applied" : "not applied"}\n`,
    );
  },
};
