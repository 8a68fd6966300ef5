import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import type { Orientation } from "../arch/families.js";
import { formatBytes } from "./format-bytes.js";
import { printJson, printText, type GlobalArgs } from "./global-options.js";
import { ProgressDisplay } from "./progress.js";
import { resolveModelArgument } from "./resolve-model-argument.js";
import { parseTargets } from "./surgery-options.js";

interface InspectArgs extends GlobalArgs {
  model: string;
  layers?: string;
  targets?: string;
  include?: string[];
  exclude?: string[];
  orientation?: string;
}

export const inspectCommand: CommandModule<GlobalArgs, InspectArgs> = {
  command: "inspect <model>",
  describe: "show the family, sizes and every tensor a surgery would change, with its orientation",
  builder: (yargs) =>
    (yargs as Argv<GlobalArgs>)
      .positional("model", { type: "string", demandOption: true, describe: "local folder or Hub repo id" })
      .option("layers", { type: "string", describe: "half-open layer range a:b" })
      .option("targets", { type: "string", describe: "comma list of embed,attn,mlp" })
      .option("include", { type: "string", array: true, describe: "also list tensors matching REGEX" })
      .option("exclude", { type: "string", array: true, describe: "never list tensors matching REGEX" })
      .option("orientation", { type: "string", describe: "layout of --include tensors" }) as unknown as Argv<InspectArgs>,
  handler: async (args: ArgumentsCamelCase<InspectArgs>) => {
    const { inspectModel } = await import("../surgery/inspect-model.js");
    const display = new ProgressDisplay({ quiet: args.quiet || args.json });
    const model = await resolveModelArgument({ model: args.model, token: args.token, display });
    const report = await inspectModel({
      modelDir: model.dir,
      layers: args.layers,
      targets: parseTargets(args.targets),
      include: args.include,
      exclude: args.exclude,
      orientation: args.orientation as Orientation | undefined,
    });
    if (args.json) {
      printJson(report);
      return;
    }
    const dtypes = Object.entries(report.dtypes).map(([dtype, count]) => `${dtype} ×${count}`).join(", ");
    const lines = [
      `family:        ${report.family} (model_type ${report.modelType})`,
      `hidden size:   ${report.hiddenSize}`,
      `layers:        ${report.numLayers}`,
      `dtypes:        ${dtypes}`,
      `total bytes:   ${formatBytes(report.totalBytes)} in ${report.shards} shard(s)`,
      `tied lm_head:  ${report.tiedEmbeddings ? "yes (editing the embedding edits the unembedding too)" : "no"}`,
      `would change:  ${report.targets.length} tensor(s)`,
      ...report.targets.map((target) => `  ${target.name}  [${target.shape.join(", ")}] ${target.dtype}  ${target.kind}  ${target.orientation}${target.postNorm ? `  γ-aware via ${target.postNorm}` : ""}`),
      ...report.notes.map((note) => `note: ${note}`),
    ];
    printText(args, `${lines.join("\n")}\n`);
  },
};
