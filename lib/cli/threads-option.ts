/** `--threads`, declared and validated in this one place for every command that runs native work. */
import type { Argv } from "yargs";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { withNumberOptions } from "./number-option.js";

export interface ThreadsArgs {
  threads?: number;
}

/** Parsed from the text typed (number-option.ts), so `--threads ""` is an error rather than 0 (all cores). */
export function withThreadsOption<T>(yargs: Argv<T>) {
  return withNumberOptions(yargs, { threads: { integer: true, min: 0, max: 1024, range: "from 0 (all cores) to 1024", describe: "worker threads (default: all cores)" } });
}

/** The thread count to pass on (undefined: all cores); anything but a whole number from 0 to 1024 is refused. */
export function threadsFrom(args: ThreadsArgs): number | undefined {
  const threads = args.threads;
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 0 && threads <= 1024)) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--threads must be a whole number from 0 (all cores) to 1024; got ${threads}`);
  }
  return threads;
}
