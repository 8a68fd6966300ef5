import { verifiedSummary } from "../surgery/verified-summary.js";
import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import { formatBytes } from "./format-bytes.js";
import { printJson, printText, type GlobalArgs } from "./global-options.js";
import { ProgressDisplay } from "./progress.js";
import { renderSurgery } from "./render-surgery.js";
import { surgeryParamsFrom, withSurgeryOptions, type SurgeryArgs } from "./surgery-options.js";
import { threadsFrom } from "./threads-option.js";
import { resolveModelArgument } from "./resolve-model-argument.js";

interface ApplyArgs extends GlobalArgs, SurgeryArgs {
  model: string;
  out: string;
  force?: boolean;
}

export const applyCommand: CommandModule<GlobalArgs, ApplyArgs> = {
  command: "apply <model>",
  describe: "project a direction out of every residual writer and write a verified checkpoint",
  builder: (yargs) =>
    withSurgeryOptions(
      (yargs as Argv<GlobalArgs>)
        .positional("model", { type: "string", demandOption: true, describe: "local folder or Hub repo id (org/name[@revision])" })
        .option("out", { type: "string", demandOption: true, describe: "output folder (written atomically via OUT.partial/)" })
        .option("force", { type: "boolean", describe: "replace an existing output folder" }),
      { directionRequired: true },
    ) as unknown as Argv<ApplyArgs>,
  handler: async (args: ArgumentsCamelCase<ApplyArgs>) => {
    const { applyModel } = await import("../surgery/apply-model.js");
    const display = new ProgressDisplay({ quiet: args.quiet || args.json });
    const model = await resolveModelArgument({ model: args.model, token: args.token, display });
    const report = await renderSurgery(
      applyModel({ ...surgeryParamsFrom(args), modelDir: model.dir, outDir: args.out, force: args.force, threads: threadsFrom(args), source: model.source }),
      display,
    );
    if (args.json) {
      printJson({ ok: true, outDir: report.outDir, tensorsChanged: report.tensorsChanged, reusedShards: report.reusedShards, seconds: report.seconds, timeline: report.timeline, verification: report.provenance.verification, notes: report.provenance.notes });
      return;
    }
    const v = report.verification;
    printText(args, 
      `wrote ${report.outDir}: ${report.tensorsChanged} tensor(s) edited (${formatBytes(report.bytesRewritten)} rewritten, ` +
        `${formatBytes(report.bytesCopied)} copied) in ${report.seconds.toFixed(1)}s\n` +
        `${verifiedSummary(v)}\n` +
        report.provenance.notes.map((note) => `note: ${note}\n`).join(""),
    );
  },
};
