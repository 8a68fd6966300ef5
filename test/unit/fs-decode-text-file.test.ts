/**
 * lib/fs/decode-text-file.ts and readPromptsFile (issue 17 item 13): UTF-8 (BOM dropped) and UTF-16 with a BOM
 * are decoded; UTF-32, invalid UTF-8, odd-length UTF-16 and NUL bytes are refused, naming the file.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AbliterateError, ErrorCodes } from "../../lib/errors.js";
import { decodeTextFile } from "../../lib/fs/decode-text-file.js";
import { readPromptsFile } from "../../lib/tokenize/read-prompts.js";

const TEXT = "héllo wörld\n日本語 🙂\n";

function le(text: string): Buffer {
  return Buffer.from(text, "utf16le");
}

function refusal(pattern: RegExp): (error: unknown) => boolean {
  return (error) => error instanceof AbliterateError && error.code === ErrorCodes.INVALID_ARGUMENT && error.file === "p.txt" && pattern.test(error.message);
}

test("UTF-8, UTF-8 with a BOM and UTF-16 LE/BE with a BOM decode to the same text", () => {
  const cases: [string, Buffer][] = [
    ["utf-8", Buffer.from(TEXT)],
    ["utf-8", Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(TEXT)])],
    ["utf-16le", Buffer.concat([Buffer.from([0xff, 0xfe]), le(TEXT)])],
    ["utf-16be", Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from(le(TEXT)).swap16()])],
  ];
  for (const [encoding, bytes] of cases) assert.deepEqual(decodeTextFile({ bytes, file: "p.txt" }), { text: TEXT, encoding });
});

test("UTF-32, invalid UTF-8, odd-length UTF-16 and NUL bytes are refused, naming the file and the place", () => {
  assert.throws(() => decodeTextFile({ bytes: Buffer.from([0xff, 0xfe, 0, 0, 0x41, 0, 0, 0]), file: "p.txt" }), refusal(/UTF-32/));
  assert.throws(() => decodeTextFile({ bytes: Buffer.from([0, 0, 0xfe, 0xff, 0, 0, 0, 0x41]), file: "p.txt" }), refusal(/UTF-32/));
  assert.throws(() => decodeTextFile({ bytes: Buffer.from([0x61, 0x62, 0xe2, 0x28, 0xa1]), file: "p.txt" }), refusal(/not valid UTF-8 text \(first bad byte at offset 2\)/));
  assert.throws(() => decodeTextFile({ bytes: Buffer.from([0x61, 0xff]), file: "p.txt" }), refusal(/offset 1/));
  assert.throws(() => decodeTextFile({ bytes: Buffer.from([0xff, 0xfe, 0x41]), file: "p.txt" }), refusal(/odd number of bytes/));
  assert.throws(() => decodeTextFile({ bytes: le("ab\ncd"), file: "p.txt" }), refusal(/NUL character \(line 1\).*UTF-16 without a byte-order mark/));
  assert.throws(() => decodeTextFile({ bytes: Buffer.from("one\ntwo\x00\n"), file: "p.txt" }), refusal(/NUL character \(line 2\)/));
});

test("readPromptsFile decodes UTF-16 prompt files in every format and refuses a folder", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-prompts-"));
  try {
    const bom = (text: string) => Buffer.concat([Buffer.from([0xff, 0xfe]), le(text)]);
    writeFileSync(join(root, "p.txt"), bom("first prompt\r\nsecond prompt\r\n"));
    writeFileSync(join(root, "p.json"), bom(JSON.stringify(["first prompt", { prompt: "second prompt" }])));
    writeFileSync(join(root, "p.jsonl"), bom(`${JSON.stringify({ instruction: "first prompt" })}\n"second prompt"\n`));
    for (const name of ["p.txt", "p.json", "p.jsonl"]) assert.deepEqual(await readPromptsFile(join(root, name)), ["first prompt", "second prompt"], name);
    writeFileSync(join(root, "bad.txt"), le("no bom"));
    await assert.rejects(readPromptsFile(join(root, "bad.txt")), (error: unknown) => error instanceof AbliterateError && error.file === join(root, "bad.txt") && /NUL/.test(error.message));
    await assert.rejects(readPromptsFile(root), (error: unknown) => error instanceof AbliterateError && error.code === ErrorCodes.IO && /is a folder/.test(error.message));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
