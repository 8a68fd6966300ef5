/**
 * `.json` directions: a bare array ([d] or [[...], ...] for [n, d]) or an object naming its arrays like a
 * safetensors direction file: {"direction": [...]} / {"directions": [[...]]} / {"subspace": [[...]]}, with an
 * optional "harmless_mean". Arrays must be rectangular and hold only numbers.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import { UNNAMED, type DecodedTensor } from "./direction-file.js";

const NAMED = ["direction", "directions", "subspace", "harmless_mean"];

function toTensor(value: unknown, label: string, path: string): DecodedTensor {
  const fail = (message: string): never => {
    throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `${label} ${message}`, { file: path });
  };
  if (!Array.isArray(value)) return fail("is not an array");
  if (value.length === 0) return fail("is an empty array");
  const numberAt = (item: unknown, where: string): number => (typeof item === "number" ? item : fail(`holds ${JSON.stringify(item)} at ${where}; expected numbers`));
  if (!Array.isArray(value[0])) {
    return { shape: [value.length], values: Float64Array.from(value, (item, index) => numberAt(item, `[${index}]`)) };
  }
  const width = (value[0] as unknown[]).length;
  const values = new Float64Array(value.length * width);
  value.forEach((row, rowIndex) => {
    if (!Array.isArray(row)) fail(`mixes numbers and arrays (element [${rowIndex}] is not an array)`);
    const items = row as unknown[];
    if (items.length !== width) fail(`is not rectangular: row ${rowIndex} has ${items.length} values, row 0 has ${width}`);
    items.forEach((item, column) => {
      if (Array.isArray(item)) fail(`has more than 2 dimensions (at [${rowIndex}][${column}])`);
      values[rowIndex * width + column] = numberAt(item, `[${rowIndex}][${column}]`);
    });
  });
  return { shape: [value.length, width], values };
}

export function readJsonDirection(bytes: Uint8Array, path: string): { tensors: Map<string, DecodedTensor>; metadata?: Record<string, string> } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `is not valid JSON (${(error as Error).message})`, { file: path, cause: error });
  }
  const tensors = new Map<string, DecodedTensor>();
  if (Array.isArray(parsed)) {
    tensors.set(UNNAMED, toTensor(parsed, "the JSON array", path));
    return { tensors };
  }
  if (typeof parsed !== "object" || parsed === null) {
    throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `JSON must be an array or an object with "direction", "directions" or "subspace"`, { file: path });
  }
  const object = parsed as Record<string, unknown>;
  for (const name of NAMED) {
    if (Object.hasOwn(object, name)) tensors.set(name, toTensor(object[name], `"${name}"`, path));
  }
  let metadata: Record<string, string> | undefined;
  if (Object.hasOwn(object, "metadata")) {
    const raw = object.metadata;
    if (typeof raw !== "object" || raw === null || Array.isArray(raw) || Object.values(raw).some((value) => typeof value !== "string")) {
      throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `"metadata" must be an object of strings`, { file: path });
    }
    metadata = { ...(raw as Record<string, string>) };
  }
  return { tensors, metadata };
}
