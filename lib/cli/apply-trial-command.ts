/** `abliterate apply-trial MODEL WORKDIR N --out DIR`: apply another point of a finished search, exactly, and verify it. */
import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import { formatValue } from "../directions/search/trial.js";
import { verifiedSummary } from "../surgery/verified-summary.js";
import { printJson, printText, type GlobalArgs } from "./global-options.js";
import { ProgressDisplay } from "./progress.js";
import { renderSurgery } from "./render-surgery.js";
import { resolveModelArgument } from "./resolve-model-argument.js";
import { threadsFrom, withThreadsOption, type ThreadsArgs } from "./threads-option.js";

interface ApplyTrialArgs extends GlobalArgs, ThreadsArgs {
  model: string;
  workDir: string;
  trial: number;
  out: string;
  force?: boolean;
}

export const applyTrialCommand: CommandModule<GlobalArgs, ApplyTrialArgs> = {
  command: "apply-trial <model> <work-dir> <trial>",
  describe: "apply another trial of a finished search (the one command's --work-dir) without searching again, and verify it",
  builder: (yargs) =>
    withThreadsOption(yargs as Argv<GlobalArgs>)
      .positional("model", { type: "string", demandOption: true, describe: "the model the search ran on (local folder or Hub repo id)" })
      .positional("work-dir", { type: "string", demandOption: true, describe: "the search's work dir (holds search.json and directions.safetensors)" })
      .positional("trial", { type: "number", demandOption: true, describe: "trial number (report.html lists them; the front is marked)" })
      .option("out", { type: "string", demandOption: true, describe: "write the verified checkpoint here" })
      .option("force", { type: "boolean", describe: "replace an existing --out folder" }) as unknown as Argv<ApplyTrialArgs>,
  handler: async (args: ArgumentsCamelCase<ApplyTrialArgs>) => {
    const { applyTrial } = await import("../pipeline/apply-trial.js");
    const display = new ProgressDisplay({ quiet: args.quiet || args.json });
    const model = await resolveModelArgument({ model: args.model, token: args.token, display });
    const report = await renderSurgery(
      applyTrial({ modelDir: model.dir, workDir: args.workDir, trial: args.trial, outDir: args.out, force: args.force, threads: threadsFrom(args), source: model.source }),
      display,
    );
    if (args.json) {
      printJson({ ok: true, outDir: report.outDir, trial: report.trial.number, values: report.trial.values, tensorsChanged: report.tensorsChanged, verification: report.provenance.verification });
      return;
    }
    printText(args, `wrote ${report.outDir}: trial ${report.trial.number} (behaviour ${formatValue(report.trial.values[0], 3)}, KL ${formatValue(report.trial.values[1], 4)}), ${report.tensorsChanged} tensor(s) edited\n${verifiedSummary(report.verification)}\n`);
  },
};
