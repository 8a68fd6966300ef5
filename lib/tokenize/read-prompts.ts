/**
 * Prompt files: `.json` (an array of strings, or of objects with a prompt/instruction/text field), `.jsonl` (one
 * such string or object per line), anything else plain text with one prompt per line (blank lines skipped).
 */
import { readFile } from "node:fs/promises";
import { AbliterateError, ErrorCodes } from "../errors.js";

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
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new AbliterateError(ErrorCodes.IO, `cannot read the prompts file (${(error as NodeJS.ErrnoException).code ?? String(error)})`, { file, cause: error });
  }
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
