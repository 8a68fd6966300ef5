/**
 * Where prompts come from: a local file (.txt one per line, .json / .jsonl / .csv with --column, .parquet read with
 * hyparquet), a Hub dataset id `org/name[:split]` (fetched into the shared cache), or, when no source is given,
 * a default dataset with the built-in set as the offline fallback.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { asyncBufferFromFile, parquetReadObjects, parquetSchema, parquetMetadataAsync } from "hyparquet";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { readPromptsFile } from "../tokenize/read-prompts.js";
import { downloadDatasetFiles, parseDatasetRef, splitLabel } from "../hub/download-dataset-files.js";

/** Columns tried, in order, when --column is not given. */
export const DEFAULT_PROMPT_COLUMNS = ["prompt", "instruction", "text", "goal", "question"];

export interface PromptSourceParams {
  /** A file path or a Hub dataset id. */
  source: string;
  column?: string;
  token?: string;
  cacheDir?: string;
  offline?: boolean;
  endpoint?: string;
}

export interface PromptSet {
  prompts: string[];
  /** What they were read from, for the report (a path, or `hub:org/name:split[slice]@commit`). */
  origin: string;
}

function pickColumn(columns: string[], column: string | undefined, file: string): string {
  if (column !== undefined) {
    if (!columns.includes(column)) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `has no column "${column}" (columns: ${columns.join(", ")})`, { file });
    return column;
  }
  const found = DEFAULT_PROMPT_COLUMNS.find((name) => columns.includes(name));
  if (!found) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `has none of the columns ${DEFAULT_PROMPT_COLUMNS.join("/")}; name one with --column (columns: ${columns.join(", ")})`, { file });
  }
  return found;
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return "empty (null)";
  if (Array.isArray(value)) return "a list";
  if (value instanceof Uint8Array) return "binary data";
  if (typeof value === "object") return "a structure";
  return `a ${typeof value === "bigint" ? "number" : typeof value} (${String(value).slice(0, 40)})`;
}

function cellText(value: unknown, where: string, file: string): string {
  if (typeof value === "string") return value;
  throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `${where} is ${describeValue(value)}, not text: every prompt must be a string`, { file });
}

/** RFC 4180: quoted fields may hold commas, doubled quotes and newlines. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let quoted = false;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 1;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"' && field === "") quoted = true;
    else if (c === ",") {
      row.push(field);
      field = "";
    } else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i += 1;
      row.push(field);
      rows.push(row);
      row = [];
      field = "";
    } else field += c;
  }
  if (field !== "" || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows.filter((r) => !(r.length === 1 && r[0] === ""));
}

async function readCsvPrompts(file: string, column: string | undefined): Promise<string[]> {
  const rows = parseCsv(await readFile(file, "utf8"));
  if (rows.length === 0) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "the CSV file is empty", { file });
  const name = pickColumn(rows[0], column, file);
  const index = rows[0].indexOf(name);
  return rows.slice(1).map((row, i) => cellText(row[index], `row ${i + 2}`, file));
}

async function readJsonPrompts(file: string, column: string): Promise<string[]> {
  const text = await readFile(file, "utf8");
  let records: unknown[];
  try {
    records = file.endsWith(".jsonl") ? text.split(/\r?\n/).filter((line) => line.trim() !== "").map((line) => JSON.parse(line)) : JSON.parse(text);
  } catch (error) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `not valid JSON: ${(error as Error).message}`, { file, cause: error });
  }
  if (!Array.isArray(records)) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "a .json prompts file must hold an array", { file });
  return records.map((record, i) => {
    if (!record || typeof record !== "object" || !(column in record)) {
      throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `record ${i + 1} has no field "${column}"`, { file });
    }
    return cellText((record as Record<string, unknown>)[column], `record ${i + 1} field "${column}"`, file);
  });
}

async function readParquetPrompts(file: string, column: string | undefined): Promise<string[]> {
  const unreadable = (error: unknown) => new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `not a readable parquet file: ${(error as Error).message}`, { file, cause: error });
  let buffer;
  let metadata;
  let columns: string[];
  try {
    buffer = await asyncBufferFromFile(file);
    metadata = await parquetMetadataAsync(buffer);
    columns = parquetSchema(metadata).children.map((child) => child.element.name);
  } catch (error) {
    throw unreadable(error);
  }
  const name = pickColumn(columns, column, file);
  let rows: Record<string, unknown>[];
  try {
    // A valid footer says nothing about the pages: a damaged page or codec fails only here.
    rows = (await parquetReadObjects({ file: buffer, metadata, columns: [name] })) as Record<string, unknown>[];
  } catch (error) {
    throw unreadable(error);
  }
  return rows.map((row, i) => cellText(row[name], `row ${i + 1} of column "${name}"`, file));
}

/** Prompts of one local file, by extension. */
export async function readPromptFile(file: string, column?: string): Promise<string[]> {
  const lower = file.toLowerCase();
  let prompts: string[];
  if (lower.endsWith(".parquet")) prompts = await readParquetPrompts(file, column);
  else if (lower.endsWith(".csv")) prompts = await readCsvPrompts(file, column);
  else if ((lower.endsWith(".json") || lower.endsWith(".jsonl")) && column !== undefined) prompts = await readJsonPrompts(file, column);
  else prompts = await readPromptsFile(file);
  prompts = prompts.map((prompt) => prompt.trim()).filter((prompt) => prompt !== "");
  if (prompts.length === 0) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "holds no prompt", { file });
  return prompts;
}

/** A source that can only be meant as a file: a path prefix, or a prompt file's extension. */
function looksLikeFilePath(source: string): boolean {
  return /^(\.{1,2}[\\/]|[\\/]|~)/.test(source) || /\.(txt|jsonl?|csv|parquet)$/i.test(source);
}

export async function readPromptSource(params: PromptSourceParams): Promise<PromptSet> {
  const { source } = params;
  if (existsSync(source)) return { prompts: await readPromptFile(source, params.column), origin: source };
  if (looksLikeFilePath(source)) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "no such prompts file", { file: source });
  const ref = parseDatasetRef(source);
  if (!ref) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `"${source}" is neither a file nor a Hub dataset id (org/name, org/name:split or org/name:split[start:end])`);
  }
  const { files, commit } = await downloadDatasetFiles({ ref, token: params.token, cacheDir: params.cacheDir, offline: params.offline, endpoint: params.endpoint });
  const all: string[] = [];
  for (const file of files) all.push(...(await readPromptFile(file, params.column)));
  const prompts = ref.slice ? all.slice(ref.slice.start ?? 0, ref.slice.end) : all;
  if (prompts.length === 0) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `the slice ${splitLabel(ref)} of dataset ${ref.repo} is empty: the split has ${all.length} prompt(s)`);
  }
  return { prompts, origin: `hub:${ref.repo}:${splitLabel(ref)}@${commit}` };
}

export interface DefaultedPromptSetParams extends Omit<PromptSourceParams, "source"> {
  /** What the user gave; absent means the default. */
  source?: string;
  /** The Hub dataset used by default (its prompts are in the column `text`). */
  defaultDataset: string;
  /** The set used when the default dataset cannot be read, or when `builtinOnly`. */
  builtin: readonly string[];
  /** "harmful", "harmless", "positive", "negative": for the origin and the note. */
  label: string;
  /** Skip the Hub: the built-in set, as `abliterate demo` wants. */
  builtinOnly?: boolean;
}

/**
 * The prompts of one side of the contrast: the user's source when given (its errors are the user's to see),
 * else the default dataset, else (offline, unreachable, or unreadable) the built-in set with a note saying why.
 */
export async function readPromptSetOrDefault(params: DefaultedPromptSetParams): Promise<PromptSet & { note?: string }> {
  const { source, defaultDataset, builtin, label, builtinOnly, ...access } = params;
  if (source !== undefined) return readPromptSource({ ...access, source });
  const builtinSet = { prompts: [...builtin], origin: `built-in ${label} set` };
  if (builtinOnly) return builtinSet;
  try {
    return await readPromptSource({ ...access, source: defaultDataset, column: "text" });
  } catch (error) {
    return { ...builtinSet, note: `the default ${label} dataset ${defaultDataset} could not be read (${(error as Error).message}); the built-in ${label} set was used` };
  }
}
