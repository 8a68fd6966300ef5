/**
 * The residual stream at one point for every captured row: [rows, hiddenSize] out of a ForwardOutput's
 * [rows, numLayers + 1, hiddenSize]. With positions "all" it is what runForward's `resumeFrom.hidden` takes, so
 * candidates whose edit starts at layer l can reuse one unedited run up to l.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { ForwardOutput } from "./run-forward.js";

export function residualStreamAt(output: ForwardOutput, point: number): Float32Array {
  const { numLayers, hiddenSize: d } = output;
  if (!Number.isInteger(point) || point < 0 || point > numLayers) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `point ${point} is outside 0..${numLayers}`);
  }
  const rows = output.capturedPrompt.length;
  const stream = new Float32Array(rows * d);
  for (let r = 0; r < rows; r += 1) stream.set(output.hidden.subarray((r * (numLayers + 1) + point) * d, (r * (numLayers + 1) + point + 1) * d), r * d);
  return stream;
}
