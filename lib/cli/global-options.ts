/** Options every command understands. */
export interface GlobalArgs {
  json?: boolean;
  quiet?: boolean;
  token?: string;
}

/** One machine-readable result on stdout (the only thing on stdout with --json). */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
