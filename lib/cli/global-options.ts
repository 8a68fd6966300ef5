/** Options every command understands. */
export interface GlobalArgs {
  json?: boolean;
  quiet?: boolean;
  token?: string;
}

let resultsPrinted = 0;

/** One machine-readable result on stdout (the only thing on stdout with --json). */
export function printJson(value: unknown): void {
  resultsPrinted += 1;
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A command's human-readable result on stdout; `--quiet` means errors only, so it prints nothing. */
export function printText(args: GlobalArgs, text: string): void {
  if (!args.quiet) process.stdout.write(text);
}

/**
 * How many JSON results have been printed so far. A command that printed its report (verify with ok: false)
 * and then fails must not get a second JSON document on stdout for the same failure.
 */
export function jsonResultsPrinted(): number {
  return resultsPrinted;
}
