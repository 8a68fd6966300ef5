import { verifiedSummary } from "../surgery/verified-summary.js";
import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { printJson, printText, type GlobalArgs } from "./global-options.js";
import { ProgressDisplay } from "./progress.js";
import { renderSurgery } from "./render-surgery.js";
import { resolveModelArgument } from "./resolve-model-argument.js";
import { surgeryParamsFrom, withSurgeryOptions, type SurgeryArgs } from "./surgery-options.js";
import { threadsFrom } from "./threads-option.js";

interface VerifyArgs extends GlobalArgs, SurgeryArgs {
  original: string;
  modified: string;
}

export const verifyCommand: CommandModule<GlobalArgs, VerifyArgs> = {
  command: "verify <original> <modified>",
  describe: "prove MODIFIED is ORIGINAL with exactly the claimed projection: targets within 1 ulp, everything else identical",
  builder: (yargs) =>
    withSurgeryOptions(
      (yargs as Argv<GlobalArgs>)
        .positional("original", { type: "string", demandOption: true, describe: "the unmodified model (folder or Hub id)" })
        .positional("modified", { type: "string", demandOption: true, describe: "the edited model folder" }),
      { directionRequired: true },
    ) as unknown as Argv<VerifyArgs>,
  handler: async (args: ArgumentsCamelCase<VerifyArgs>) => {
    const { verifyModel } = await import("../surgery/verify-model.js");
    const display = new ProgressDisplay({ quiet: args.quiet || args.json });
    const original = await resolveModelArgument({ model: args.original, token: args.token, display });
    const modified = await resolveModelArgument({ model: args.modified, token: args.token, display });
    const report = await renderSurgery(
      verifyModel({ ...surgeryParamsFrom(args), originalDir: original.dir, modifiedDir: modified.dir, threads: threadsFrom(args) }),
      display,
    );
    if (args.json) {
      printJson({ ok: report.passed, ...report });
    } else {
      const lines = report.tensors.map(
        (tensor) =>
          `${tensor.mismatches === 0 ? "ok  " : "FAIL"} ${tensor.name}  max ${tensor.maxUlpError.toFixed(3)} ulp, ` +
          `ablation residual ${tensor.ablationResidual.toExponential(2)}${tensor.mismatches ? `, ${tensor.mismatches} mismatches` : ""}`,
      );
      lines.push(...report.shards.map((shard) => `${shard.untouchedIdentical ? "ok  " : "FAIL"} ${shard.shard}: untouched bytes ${shard.untouchedIdentical ? "identical" : "DIFFER"}`));
      lines.push(...report.notes.map((note) => `note: ${note}`));
      lines.push(
        report.passed
          ? `${verifiedSummary(report)}; ${report.filesCompared} other file(s) identical, none missing or extra`
          : `verification FAILED:\n  ${report.failures.join("\n  ")}`,
      );
      printText(args, `${lines.join("\n")}\n`);
    }
    if (!report.passed) {
      throw new AbliterateError(ErrorCodes.VERIFY_FAILED, `${report.failures.length} check(s) failed; first: ${report.failures[0]}`, { file: modified.dir });
    }
  },
};
