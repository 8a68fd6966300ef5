/**
 * Numeric command-line options, parsed from the text the user typed. yargs' `type: "number"` turns `--scale ""`
 * into 0 (a no-op reported as an edit) and `--direction-layer ""` into row 0, and reads "0x10" or " 1 " as
 * numbers. Every numeric option is therefore declared as a string and parsed here: an empty or non-numeric value,
 * or one outside the option's range, is an INVALID_ARGUMENT naming the option, before anything runs.
 */
import type { Argv } from "yargs";
import { AbliterateError, ErrorCodes } from "../errors.js";

/** A decimal number: optional sign, digits with an optional fraction (or a bare fraction), optional exponent. */
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

export interface NumberOptionRules {
  /** Only whole numbers. */
  integer?: boolean;
  /** Inclusive bounds. */
  min?: number;
  max?: number;
  /** How the range is described in the message when it is not just the bounds ("0 (all cores) to 1024"). */
  range?: string;
}

export interface ParseNumberOptionParams extends NumberOptionRules {
  /** The option as typed, for messages (`--scale`). */
  option: string;
  value: unknown;
}

/** The number given to `option`, or undefined when it was not given; throws INVALID_ARGUMENT otherwise. */
export function parseNumberOption(params: ParseNumberOptionParams): number | undefined {
  const { option, value } = params;
  if (value === undefined) return undefined;
  const kind = params.integer ? "a whole number" : "a number";
  const bounds = params.range ?? (params.min !== undefined && params.max !== undefined ? `from ${params.min} to ${params.max}` : params.min !== undefined ? `of at least ${params.min}` : params.max !== undefined ? `of at most ${params.max}` : undefined);
  const expected = `${kind}${bounds ? ` ${bounds}` : ""}`;
  const refuse = (got: string): never => {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `${option} must be ${expected}; got ${got}`);
  };
  let parsed: number;
  if (typeof value === "number") parsed = value;
  else if (typeof value === "string") {
    if (value.trim() === "") refuse("an empty value");
    if (!DECIMAL.test(value.trim())) refuse(JSON.stringify(value));
    parsed = Number(value.trim());
  } else return refuse(String(value));
  if (!Number.isFinite(parsed)) refuse(`${JSON.stringify(String(value))}, which is not finite`);
  if (params.integer && !Number.isInteger(parsed)) refuse(JSON.stringify(String(value)));
  if ((params.min !== undefined && parsed < params.min) || (params.max !== undefined && parsed > params.max)) refuse(JSON.stringify(String(value)));
  return parsed;
}

export interface NumberOptionSpec extends NumberOptionRules {
  describe: string;
}

function camelCase(name: string): string {
  return name.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

/**
 * Declares numeric options (read as strings) and a middleware that replaces each given value by its checked
 * number before the handler runs, so handlers see numbers or undefined. (A yargs `coerce` cannot do it: yargs
 * rewraps whatever a coerce function throws, which would lose the error's code.) A repeated option is left as an
 * array for main()'s "given twice" check, which runs first.
 */
export function withNumberOptions<T>(yargs: Argv<T>, options: Record<string, NumberOptionSpec>): Argv<T> {
  let declared = yargs;
  for (const [name, spec] of Object.entries(options)) declared = declared.option(name, { type: "string", describe: spec.describe });
  return declared.middleware((argv: Record<string, unknown>) => {
    for (const [name, { describe: _describe, ...rules }] of Object.entries(options)) {
      const value = argv[name];
      if (Array.isArray(value)) continue;
      const parsed = parseNumberOption({ option: `--${name}`, value, ...rules });
      argv[name] = parsed;
      argv[camelCase(name)] = parsed;
    }
  });
}
