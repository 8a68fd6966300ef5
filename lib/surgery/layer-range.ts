/** `--layers a:b` (half-open, Python slice semantics, negatives count from the end), `a:`, `:b`, or a single `i`. */
import { AbliterateError, ErrorCodes } from "../errors.js";

export interface LayerRange {
  start: number;
  end: number;
}

export function parseLayerRange(text: string | undefined, numLayers: number): LayerRange {
  if (text === undefined || text.trim() === "" || text.trim() === ":") return { start: 0, end: numLayers };
  const match = /^\s*(-?\d+)?\s*(?::\s*(-?\d+)?)?\s*$/.exec(text);
  if (!match || (match[1] === undefined && match[2] === undefined)) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--layers "${text}" is not a range like 4:20, 4:, :20 or 7`);
  }
  const resolve = (value: string | undefined, fallback: number) => {
    if (value === undefined) return fallback;
    const index = Number(value);
    return index < 0 ? numLayers + index : index;
  };
  const single = !text.includes(":");
  const start = resolve(match[1], 0);
  const end = single ? start + 1 : resolve(match[2], numLayers);
  if (start < 0 || end > numLayers || start >= end) {
    throw new AbliterateError(
      ErrorCodes.INVALID_ARGUMENT,
      `--layers "${text}" selects no layer or leaves 0..${numLayers} (the model has ${numLayers} layers; ranges are half-open)`,
    );
  }
  return { start, end };
}

export function formatLayerRange(range: LayerRange): string {
  return `${range.start}:${range.end}`;
}
