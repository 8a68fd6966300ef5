/**
 * The CLI entry: yargs with one command module per file, strict parsing, and one place that turns errors into a
 * message on stderr and a non-zero exit. Only the CLI writes to stdout.
 */
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { isAbliterateError } from "../errors.js";
import { TOOL_VERSION } from "../version.js";
import { applyCommand } from "./apply-command.js";
import type { GlobalArgs } from "./global-options.js";
import { inspectCommand } from "./inspect-command.js";
import { pushCommand } from "./push-command.js";
import { redactSecrets } from "./redact-secrets.js";
import { runCommand } from "./run-command.js";
import { verifyCommand } from "./verify-command.js";

/** Exit codes: 1 a failure the tool diagnosed, 2 a usage error, 70 an internal bug. */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERNAL = 70;

class UsageError extends Error {}

export async function main(argv: string[] = hideBin(process.argv)): Promise<number> {
  const parser = yargs(argv)
    .scriptName("abliterate")
    .usage("$0 <command> [options]\n\nWeight surgery on Hugging Face checkpoints: project a direction out of every residual writer, verify it, push it.")
    .option("json", { type: "boolean", global: true, describe: "print one machine-readable JSON result on stdout" })
    .option("quiet", { type: "boolean", global: true, describe: "print errors only" })
    .option("token", { type: "string", global: true, describe: "Hugging Face token (default: HF_TOKEN, then $HF_HOME/token)" })
    .command(applyCommand)
    .command(verifyCommand)
    .command(inspectCommand)
    .command(pushCommand)
    .command(runCommand)
    .demandCommand(1, "give a command (see --help)")
    .strict()
    .recommendCommands()
    .version(TOOL_VERSION)
    .help()
    .alias("h", "help")
    .wrap(Math.min(120, process.stderr.columns ?? 100))
    .fail((message, error) => {
      // Throwing stops yargs from running the command handler after a validation failure.
      throw error ?? new UsageError(message);
    })
    .exitProcess(false);
  try {
    await parser.parseAsync();
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`error [USAGE]: ${redactSecrets(error.message)}\nRun \`abliterate --help\` for usage.\n`);
      return EXIT_USAGE;
    }
    const json = argv.includes("--json");
    if (isAbliterateError(error)) {
      const message = redactSecrets(error.message);
      if (json) process.stdout.write(`${JSON.stringify({ ok: false, error: { code: error.code, message, file: error.file, status: error.status } }, null, 2)}\n`);
      process.stderr.write(`error [${error.code}]: ${message}\n`);
      return EXIT_FAILURE;
    }
    const message = redactSecrets(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.stderr.write(`internal error (please report): ${message}\n`);
    return EXIT_INTERNAL;
  }
}

export type { GlobalArgs };
