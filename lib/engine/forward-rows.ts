/**
 * Which rows of the concatenated prompts a forward run captures and returns logits for, and which of those logits
 * it hands back whole or one by one: the request's shapes checked and turned into the native job's row lists.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";

/** Which positions of each prompt to capture: its last token, its last k tokens, all of them, or none. */
export type CapturePositions = "last" | "all" | "none" | { last: number };

/**
 * Which rows of logits to return (memory: rows × vocab floats):
 * - true or "last": each prompt's last position;
 * - "all": every position of every prompt;
 * - { last: k } (or one k per prompt): each prompt's last k positions (k ≤ its length). Teacher forcing: append the
 *   k − 1 target tokens t₁ … t_{k−1} to a prompt and ask for its last k positions; row j then holds the logits that
 *   predict t_{j+1} (row 0 predicts t₁ from the prompt alone), all in one pass;
 * - { positions }: positions[p] lists the positions of prompt p (0-based, each below its length), in any order.
 * Rows come prompt by prompt, in the order asked; ForwardOutput.logitsPrompt / logitsPosition name each.
 */
export type LogitsRequest = boolean | "last" | "all" | { last: number | readonly number[] } | { positions: readonly (readonly number[])[] };

/** Rows of the concatenated prompts, each with its prompt and its position in it. */
export interface Rows {
  rows: number[];
  prompt: number[];
  position: number[];
}

/** The rows whose residual stream a run captures. */
export function captureRows(lengths: number[], positions: CapturePositions): Rows {
  const rows: number[] = [];
  const prompt: number[] = [];
  const position: number[] = [];
  let offset = 0;
  lengths.forEach((length, p) => {
    let first = length;
    if (positions === "all") first = 0;
    else if (positions === "last") first = length - 1;
    else if (typeof positions === "object") first = Math.max(0, length - positions.last);
    for (let i = first; i < length; i += 1) {
      rows.push(offset + i);
      prompt.push(p);
      position.push(i);
    }
    offset += length;
  });
  return { rows, prompt, position };
}

/** The rows whose logits a run computes, in the order asked. */
export function logitsRows(lengths: number[], request: LogitsRequest | undefined): Rows {
  const out: Rows = { rows: [], prompt: [], position: [] };
  if (request === undefined || request === false) return out;
  let offset = 0;
  lengths.forEach((length, p) => {
    let positions: number[];
    if (request === true || request === "last") positions = [length - 1];
    else if (request === "all") positions = Array.from({ length }, (_, i) => i);
    else if ("last" in request) {
      const k = typeof request.last === "number" ? request.last : request.last[p];
      if (!Number.isInteger(k) || k < 1 || k > length) {
        throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `logits: last ${k} positions of prompt ${p}, which has ${length} tokens`);
      }
      positions = Array.from({ length: k }, (_, i) => length - k + i);
    } else {
      if (request.positions.length !== lengths.length) {
        throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `logits.positions has ${request.positions.length} entries for ${lengths.length} prompts`);
      }
      positions = [...request.positions[p]];
      for (const position of positions) {
        if (!Number.isInteger(position) || position < 0 || position >= length) {
          throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `logits position ${position} of prompt ${p} is outside 0..${length - 1}`);
        }
      }
    }
    for (const position of positions) {
      out.rows.push(offset + position);
      out.prompt.push(p);
      out.position.push(position);
    }
    offset += length;
  });
  return out;
}

/** Indices into a run's logits rows, checked. */
export function checkedRows(rows: readonly number[], logitsRows: number): Uint32Array {
  for (const row of rows) {
    if (!Number.isInteger(row) || row < 0 || row >= logitsRows) {
      throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `logits row ${row} is not one of the run's ${logitsRows} logits rows`);
    }
  }
  return Uint32Array.from(rows);
}

/** Picked logits (a logits row and a token each), checked, as the native job takes them. */
export function checkedPicks(picks: { rows: readonly number[]; tokens: readonly number[] }, logitsRows: number, vocab: number): { pickRows: Uint32Array; pickTokens: Int32Array } {
  if (picks.rows.length !== picks.tokens.length) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `logitsPicks has ${picks.rows.length} rows and ${picks.tokens.length} tokens`);
  for (const token of picks.tokens) {
    if (!Number.isInteger(token) || token < 0 || token >= vocab) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `picked token id ${token} is outside the vocabulary of ${vocab}`);
  }
  return { pickRows: checkedRows(picks.rows, logitsRows), pickTokens: Int32Array.from(picks.tokens) };
}

