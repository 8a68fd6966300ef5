import { test } from "node:test";
import assert from "node:assert/strict";
import { parseLayerRange } from "../../lib/surgery/layer-range.js";
import { AbliterateError } from "../../lib/errors.js";

test("layer ranges are half-open with Python slice semantics", () => {
  assert.deepEqual(parseLayerRange(undefined, 22), { start: 0, end: 22 });
  assert.deepEqual(parseLayerRange("4:20", 22), { start: 4, end: 20 });
  assert.deepEqual(parseLayerRange("4:", 22), { start: 4, end: 22 });
  assert.deepEqual(parseLayerRange(":3", 22), { start: 0, end: 3 });
  assert.deepEqual(parseLayerRange("7", 22), { start: 7, end: 8 });
  assert.deepEqual(parseLayerRange("-4:", 22), { start: 18, end: 22 });
  assert.deepEqual(parseLayerRange(":-1", 22), { start: 0, end: 21 });
});

test("empty, reversed, out-of-range and malformed ranges are rejected with the model's layer count", () => {
  for (const text of ["5:5", "6:2", "0:23", "22", "a:b", "1:2:3", "1.5:3"]) {
    assert.throws(
      () => parseLayerRange(text, 22),
      (error: unknown) => error instanceof AbliterateError && error.code === "INVALID_ARGUMENT" && error.message.includes(text),
      text,
    );
  }
});
