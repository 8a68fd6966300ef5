/**
 * The CLI entry: yargs with one command module per file, strict parsing, and one place that turns errors into a
 * message on stderr and a non-zero exit. Only the CLI writes to stdout.
 */
import { createRequire } from "node:module";
import type yargsFactory from "yargs";
import { hideBin } from "yargs/helpers";
import { isAbliterateError } from "../errors.js";
import { TOOL_VERSION } from "../version.js";
import { activationsCommand } from "./activations-command.js";
import { applyCommand } from "./apply-command.js";
import { applyTrialCommand } from "./apply-trial-command.js";
import { demoCommand } from "./demo-command.js";
import { directionCommand } from "./direction-command.js";
import { jsonResultsPrinted, type GlobalArgs } from "./global-options.js";
import { inspectCommand } from "./inspect-command.js";
import { pushCommand } from "./push-command.js";
import { redactSecrets } from "./redact-secrets.js";
import { runCommand } from "./run-command.js";
import { verifyCommand } from "./verify-command.js";

// yargs' ESM build lays out help with cliui's fallback wrapper, which cuts words at the column edge ("writ" /
// "e a verified checkpoint"); its CommonJS build wraps at word boundaries with wrap-ansi.
const yargs = createRequire(import.meta.url)("yargs") as typeof yargsFactory;

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
    .command(applyTrialCommand)
    .command(verifyCommand)
    .command(inspectCommand)
    .command(activationsCommand)
    .command(directionCommand)
    .command(demoCommand)
    .command(pushCommand)
    .command(runCommand)
    .demandCommand(1, "give a command (see --help)")
    .strict()
    .recommendCommands()
    .version(TOOL_VERSION)
    .help()
    .alias("h", "help")
    .wrap(Math.min(120, process.stderr.columns ?? 100))
    .middleware((args) => {
      // yargs turns a repeated single-value option into an array, which no command expects.
      // getOptions() is public yargs API that @types/yargs does not declare; it lists the array-typed options.
      const repeatable = new Set((parser as unknown as { getOptions(): { array: string[] } }).getOptions().array);
      for (const [key, value] of Object.entries(args)) {
        if (key !== "_" && Array.isArray(value) && !repeatable.has(key)) throw new UsageError(`--${key} was given ${value.length} times; give it once`);
      }
    }, true)
    .fail((message, error) => {
      // Throwing stops yargs from running the command handler after a validation failure.
      throw error ?? new UsageError(message);
    })
    .exitProcess(false);
  const printedBefore = jsonResultsPrinted();
  try {
    await parser.parseAsync();
    return 0;
  } catch (error) {
    const json = argv.includes("--json");
    if (error instanceof UsageError) {
      const message = redactSecrets(error.message);
      if (json) process.stdout.write(`${JSON.stringify({ ok: false, error: { code: "USAGE", message } }, null, 2)}\n`);
      process.stderr.write(`error [USAGE]: ${message}\nRun \`abliterate --help\` for usage.\n`);
      return EXIT_USAGE;
    }
    if (isAbliterateError(error)) {
      const message = redactSecrets(error.message);
      if (json && jsonResultsPrinted() === printedBefore) process.stdout.write(`${JSON.stringify({ ok: false, error: { code: error.code, message, file: error.file, status: error.status } }, null, 2)}\n`);
      process.stderr.write(`error [${error.code}]: ${message}\n`);
      return EXIT_FAILURE;
    }
    const message = redactSecrets(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.stderr.write(`internal error (please report): ${message}\n`);
    return EXIT_INTERNAL;
  }
}

export type { GlobalArgs };
