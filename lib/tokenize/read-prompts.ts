/**
 * Prompt files: `.json` (an array of strings, or of objects with a prompt/instruction/text field), `.jsonl` (one
 * such string or object per line), anything else plain text with one prompt per line (blank lines skipped).
 * The bytes are decoded by lib/fs/decode-text-file.ts: UTF-8 (a BOM is dropped) or UTF-16 with a BOM; invalid
 * UTF-8, UTF-32 and NUL bytes (binary files, UTF-16 without a BOM) are refused, naming the file.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import { decodeTextFile } from "../fs/decode-text-file.js";
import { readRegularFile } from "../fs/read-regular-file.js";

const TEXT_FIELDS = ["prompt", "instruction", "text", "goal", "question"];

function promptOf(value: unknown, where: string, file: string): string {
  if (typeof value === "string") return value;
  if (value && typeof value === "object") {
    for (const field of TEXT_FIELDS) {
      const text = (value as Record<string, unknown>)[field];
      if (typeof text === "string") return text;
    }
  }
  throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `${where} is neither a string nor an object with one of ${TEXT_FIELDS.join("/")}`, { file });
}

export async function readPromptsFile(file: string): Promise<string[]> {
  // A regular file only (a FIFO would block), named in every error.
  const bytes = await readRegularFile(file).catch((error: unknown) => {
    if (error instanceof AbliterateError) throw error;
    throw new AbliterateError(ErrorCodes.IO, `cannot read the prompts file (${(error as NodeJS.ErrnoException).code ?? String(error)})`, { file, cause: error });
  });
  const { text } = decodeTextFile({ bytes, file, what: "prompts file" });
  let prompts: string[];
  if (file.endsWith(".json")) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `not valid JSON: ${(error as Error).message}`, { file, cause: error });
    }
    if (!Array.isArray(parsed)) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "a .json prompts file must hold an array", { file });
    prompts = parsed.map((entry, i) => promptOf(entry, `entry ${i}`, file));
  } else if (file.endsWith(".jsonl")) {
    prompts = [];
    text.split(/\r?\n/).forEach((line, i) => {
      if (line.trim() === "") return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch (error) {
        throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `line ${i + 1} is not valid JSON`, { file, cause: error });
      }
      prompts.push(promptOf(parsed, `line ${i + 1}`, file));
    });
  } else {
    prompts = text.split(/\r?\n/).filter((line) => line.trim() !== "");
  }
  if (prompts.length === 0) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "the prompts file holds no prompt", { file });
  return prompts;
}
