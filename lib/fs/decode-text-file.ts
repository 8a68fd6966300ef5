/**
 * Text files written by people (prompt lists) arrive in whatever encoding their editor chose. Read as UTF-8
 * blindly, a UTF-16 file becomes prompts full of NUL characters and a binary file becomes replacement characters,
 * and either is tokenized without a word. So: a UTF-8 BOM is dropped, a UTF-16 BOM (LE or BE) decodes as UTF-16,
 * a UTF-32 BOM, invalid UTF-8 or a NUL byte is refused, naming the file.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";

export interface DecodeTextFileParams {
  bytes: Uint8Array;
  /** Named in errors. */
  file: string;
  /** What the file is, for messages ("prompts file"). */
  what?: string;
}

export interface DecodedText {
  text: string;
  encoding: "utf-8" | "utf-16le" | "utf-16be";
}

function refuse(file: string, problem: string): never {
  throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, problem, { file });
}

export function decodeTextFile(params: DecodeTextFileParams): DecodedText {
  const { bytes, file } = params;
  const what = params.what ?? "text file";
  const starts = (...prefix: number[]) => prefix.every((byte, i) => bytes[i] === byte);
  let encoding: DecodedText["encoding"] = "utf-8";
  let body = bytes;
  if (starts(0x00, 0x00, 0xfe, 0xff) || starts(0xff, 0xfe, 0x00, 0x00)) {
    refuse(file, `the ${what} is UTF-32 (it starts with a UTF-32 byte-order mark); save it as UTF-8`);
  } else if (starts(0xef, 0xbb, 0xbf)) {
    body = bytes.subarray(3);
  } else if (starts(0xff, 0xfe)) {
    encoding = "utf-16le";
    body = bytes.subarray(2);
  } else if (starts(0xfe, 0xff)) {
    encoding = "utf-16be";
    body = bytes.subarray(2);
  }
  if (encoding !== "utf-8" && body.length % 2 !== 0) refuse(file, `the ${what} has a UTF-16 byte-order mark but an odd number of bytes; it is not UTF-16 text`);
  let text: string;
  try {
    text = new TextDecoder(encoding, { fatal: true, ignoreBOM: true }).decode(body);
  } catch {
    const offset = encoding === "utf-8" ? firstInvalidUtf8(body) + (body === bytes ? 0 : 3) : -1;
    refuse(file, `the ${what} is not valid ${encoding.toUpperCase()} text${offset >= 0 ? ` (first bad byte at offset ${offset})` : ""}; is it a binary file?`);
  }
  const nul = text.indexOf("\0");
  if (nul >= 0) {
    const line = text.slice(0, nul).split("\n").length;
    refuse(
      file,
      `the ${what} holds a NUL character (line ${line}); it is a binary file, or UTF-16 without a byte-order mark; save it as UTF-8`,
    );
  }
  return { text, encoding };
}

/** Offset of the first byte UTF-8 decoding cannot accept (found by halving; only on the error path). */
function firstInvalidUtf8(bytes: Uint8Array): number {
  // In streaming mode a prefix that stops inside a character is still valid, so validity only shrinks as it grows.
  const valid = (end: number) => {
    try {
      new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(0, end), { stream: true });
      return true;
    } catch {
      return false;
    }
  };
  let low = 0;
  let high = bytes.length;
  while (low < high) {
    const middle = Math.ceil((low + high) / 2);
    if (valid(middle)) low = middle;
    else high = middle - 1;
  }
  // The prefix may end inside the bad sequence (a lead byte whose continuation is wrong): report where it starts.
  let start = low;
  while (start > 0 && start > low - 4 && (bytes[start - 1] & 0xc0) === 0x80) start -= 1;
  if (start > 0 && bytes[start - 1] >= 0xc0) start -= 1;
  else start = low;
  return Math.min(start, Math.max(bytes.length - 1, 0));
}
