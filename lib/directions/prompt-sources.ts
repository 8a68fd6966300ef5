/**
 * Where prompts come from: a local file (.txt one per line, .json / .jsonl / .csv with --column, .parquet read with
 * hyparquet), a Hub dataset id `org/name[:split]` (fetched into the shared cache), or the built-in sets.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { asyncBufferFromFile, parquetReadObjects, parquetSchema, parquetMetadataAsync } from "hyparquet";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { readPromptsFile } from "../tokenize/read-prompts.js";
import { downloadDatasetFiles, parseDatasetRef } from "./download-dataset-files.js";

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
  /** What they were read from, for the report (a path, or `hub:org/name:split@commit`). */
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

function cellText(value: unknown, where: string, file: string): string {
  if (typeof value === "string") return value;
  throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `${where} is not a string`, { file });
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
  let buffer;
  let columns: string[];
  try {
    buffer = await asyncBufferFromFile(file);
    const metadata = await parquetMetadataAsync(buffer);
    columns = parquetSchema(metadata).children.map((child) => child.element.name);
  } catch (error) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `not a readable parquet file: ${(error as Error).message}`, { file, cause: error });
  }
  const name = pickColumn(columns, column, file);
  const rows = (await parquetReadObjects({ file: buffer, columns: [name] })) as Record<string, unknown>[];
  return rows.map((row, i) => cellText(row[name], `row ${i + 1}`, file));
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

export async function readPromptSource(params: PromptSourceParams): Promise<PromptSet> {
  const { source } = params;
  if (existsSync(source)) return { prompts: await readPromptFile(source, params.column), origin: source };
  const ref = parseDatasetRef(source);
  if (!ref) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `"${source}" is neither a file nor a Hub dataset id (org/name or org/name:split)`);
  }
  const { files, commit } = await downloadDatasetFiles({ ref, token: params.token, cacheDir: params.cacheDir, offline: params.offline, endpoint: params.endpoint });
  const prompts: string[] = [];
  for (const file of files) prompts.push(...(await readPromptFile(file, params.column)));
  return { prompts, origin: `hub:${ref.repo}:${ref.split}@${commit}` };
}
