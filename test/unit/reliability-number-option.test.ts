/**
 * lib/cli/number-option.ts (issue 17 item 10): numeric options are parsed from the text typed. yargs' own number
 * type turned "" into 0 (`--scale ""` was a no-op reported as an edit, `--direction-layer ""` row 0).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { AbliterateError, ErrorCodes } from "../../lib/errors.js";
import { parseNumberOption } from "../../lib/cli/number-option.js";

test("decimal numbers parse; empty, blank, hex, non-finite and junk values are INVALID_ARGUMENT naming the option", () => {
  const ok: [unknown, number][] = [["1", 1], ["-0.5", -0.5], ["2e-3", 0.002], [".5", 0.5], ["+3", 3], [" 2 ", 2], [7, 7], ["1e308", 1e308]];
  for (const [value, expected] of ok) assert.equal(parseNumberOption({ option: "--scale", value }), expected, String(value));
  assert.equal(parseNumberOption({ option: "--scale", value: undefined }), undefined);
  for (const value of ["", "   ", "abc", "0x10", "1,5", "Infinity", "NaN", "1e999", "1..2", "--2", true, Number.NaN]) {
    assert.throws(
      () => parseNumberOption({ option: "--scale", value }),
      (error: unknown) => error instanceof AbliterateError && error.code === ErrorCodes.INVALID_ARGUMENT && error.message.startsWith("--scale must be a number; got "),
      JSON.stringify(value),
    );
  }
});

test("integer and range rules", () => {
  const layer = { option: "--direction-layer", integer: true, min: 0 };
  assert.equal(parseNumberOption({ ...layer, value: "3" }), 3);
  for (const value of ["", "1.5", "-1"]) {
    assert.throws(() => parseNumberOption({ ...layer, value }), /--direction-layer must be a whole number of at least 0/, value);
  }
  const threads = { option: "--threads", integer: true, min: 0, max: 1024, range: "from 0 (all cores) to 1024" };
  assert.equal(parseNumberOption({ ...threads, value: "0" }), 0);
  assert.throws(() => parseNumberOption({ ...threads, value: "1025" }), /--threads must be a whole number from 0 \(all cores\) to 1024; got "1025"/);
});
