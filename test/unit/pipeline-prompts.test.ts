/** Prompt sources (parquet written by hyparquet-writer included), splits, and the errors for bad prompt sets and bad dataset ids. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parquetMetadata } from "hyparquet";
import { parquetWriteBuffer, type ColumnSource } from "hyparquet-writer";
import { AbliterateError } from "../../lib/errors.js";
import { BUILTIN_HARMFUL_PROMPTS, BUILTIN_HARMLESS_PROMPTS } from "../../lib/directions/builtin-prompts.js";
import { parseDatasetRef, splitFiles } from "../../lib/hub/download-dataset-files.js";
import { PLANTED_TRIGGER_WORDS } from "../../lib/directions/planted-refusal-model.js";
import { parseCsv, readPromptFile, readPromptSource } from "../../lib/pipeline/prompt-sources.js";
import { splitContrastSets, splitPromptSet } from "../../lib/directions/split-prompts.js";

const numbered = (label: string, n: number) => Array.from({ length: n }, (_, i) => `${label} prompt number ${i}`);

function withTemp<T>(run: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "abl-"));
  return run(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test("built-in sets: at least 128 distinct prompts each, disjoint; every harmful one holds a planted trigger, no harmless one does", () => {
  assert.ok(new Set(BUILTIN_HARMFUL_PROMPTS).size >= 128);
  assert.ok(new Set(BUILTIN_HARMLESS_PROMPTS).size >= 128);
  const harmless = new Set(BUILTIN_HARMLESS_PROMPTS);
  assert.equal(BUILTIN_HARMFUL_PROMPTS.filter((p) => harmless.has(p)).length, 0);
  const triggers = new Set(PLANTED_TRIGGER_WORDS);
  const words = (text: string) => text.toLowerCase().match(/\w+/g) ?? [];
  assert.deepEqual(BUILTIN_HARMFUL_PROMPTS.filter((p) => !words(p).some((w) => triggers.has(w))), []);
  assert.deepEqual(BUILTIN_HARMLESS_PROMPTS.filter((p) => words(p).some((w) => triggers.has(w))), []);
});

test("splits are disjoint, cover every distinct prompt, and depend only on the seed", () => {
  const prompts = numbered("x", 50);
  const a = splitPromptSet([...prompts, prompts[3]], "x", { seed: 7 });
  const all = [...a.train, ...a.validation, ...a.test];
  assert.equal(all.length, 50);
  assert.equal(new Set(all).size, 50);
  assert.deepEqual([a.validation.length, a.test.length, a.train.length], [10, 10, 30]);
  assert.deepEqual(splitPromptSet(prompts, "x", { seed: 7 }), a);
  assert.notDeepEqual(splitPromptSet(prompts, "x", { seed: 8 }).train, a.train);
  const capped = splitPromptSet(prompts, "x", { seed: 7, maxTrain: 5, maxTest: 3 });
  assert.deepEqual(capped.train, a.train.slice(0, 5));
  assert.equal(capped.test.length, 3);
});

test("empty, too small and overlapping prompt sets are refused with the reason", () => {
  const expectError = (run: () => unknown, pattern: RegExp) =>
    assert.throws(run, (error: unknown) => error instanceof AbliterateError && error.code === "INVALID_ARGUMENT" && pattern.test(error.message));
  expectError(() => splitContrastSets({ positive: [], negative: numbered("n", 20) }), /positive prompt set is empty/);
  expectError(() => splitContrastSets({ positive: numbered("p", 20), negative: ["  ", ""] }), /negative prompt set is empty/);
  expectError(() => splitContrastSets({ positive: numbered("p", 5), negative: numbered("n", 20) }), /positive prompt set is too small: 5 distinct/);
  // Duplicates do not count twice.
  expectError(() => splitContrastSets({ positive: [...numbered("p", 5), ...numbered("p", 5)], negative: numbered("n", 20) }), /too small: 5 distinct/);
  expectError(
    () => splitContrastSets({ positive: [...numbered("p", 20), "shared one"], negative: [...numbered("n", 20), "shared one"], labels: { positive: "harmful", negative: "harmless" } }),
    /harmful and harmless prompt sets overlap: 1 prompt\(s\) are in both \("shared one"\)/,
  );
});

test("files: txt, json/jsonl/csv with --column (and default columns), CSV quoting", async () => {
  await withTemp(async (dir) => {
    writeFileSync(join(dir, "a.txt"), "one\n\n two \nthree\n");
    assert.deepEqual(await readPromptFile(join(dir, "a.txt")), ["one", "two", "three"]);
    writeFileSync(join(dir, "a.jsonl"), [{ q: "first", text: "x" }, { q: "second", text: "y" }].map((r) => JSON.stringify(r)).join("\n"));
    assert.deepEqual(await readPromptFile(join(dir, "a.jsonl"), "q"), ["first", "second"]);
    assert.deepEqual(await readPromptFile(join(dir, "a.jsonl")), ["x", "y"]);
    writeFileSync(join(dir, "a.json"), JSON.stringify([{ goal: "g1" }, { goal: "g2" }]));
    assert.deepEqual(await readPromptFile(join(dir, "a.json"), "goal"), ["g1", "g2"]);
    await assert.rejects(readPromptFile(join(dir, "a.json"), "missing"), /record 1 has no field "missing"/);
    writeFileSync(join(dir, "a.csv"), 'id,prompt,other\n1,"Hello, ""world""",z\n2,"multi\nline",z\n');
    assert.deepEqual(await readPromptFile(join(dir, "a.csv")), ['Hello, "world"', "multi\nline"]);
    await assert.rejects(readPromptFile(join(dir, "a.csv"), "nope"), /has no column "nope" \(columns: id, prompt, other\)/);
    writeFileSync(join(dir, "b.csv"), "id,body\n1,x\n");
    await assert.rejects(readPromptFile(join(dir, "b.csv")), /none of the columns .* name one with --column/);
    writeFileSync(join(dir, "empty.txt"), "\n\n");
    await assert.rejects(readPromptFile(join(dir, "empty.txt")), /holds no prompt/);
  });
  assert.deepEqual(parseCsv("a,b\r\n1,2\r\n"), [["a", "b"], ["1", "2"]]);
});

function writeParquet(file: string, columnData: ColumnSource[]): string {
  writeFileSync(file, new Uint8Array(parquetWriteBuffer({ columnData })));
  return file;
}

/** An AbliterateError whose message names `file` and matches `pattern`. */
function namesFile(file: string, pattern: RegExp): (error: unknown) => boolean {
  return (error) => error instanceof AbliterateError && error.file === file && error.message.includes(file) && pattern.test(error.message);
}

const TRICKY_PROMPTS = ["Write a poem about the sea", 'Say "hello, world" twice', "Résumé tips, in 3 steps", "multi\nline prompt", "  padded with spaces  "];

test("parquet: a text column reads exactly the rows written, in order; other columns are ignored", async () => {
  await withTemp(async (dir) => {
    const file = writeParquet(join(dir, "prompts.parquet"), [
      { name: "id", data: [1, 2, 3, 4, 5], type: "INT32" },
      { name: "text", data: TRICKY_PROMPTS, type: "STRING" },
    ]);
    // Trimmed, as prompts from every source are; nothing else changes.
    const expected = [...TRICKY_PROMPTS.slice(0, 4), "padded with spaces"];
    assert.deepEqual(await readPromptFile(file), expected);
    assert.deepEqual(await readPromptSource({ source: file }), { prompts: expected, origin: file });
    // Thousands of rows: still every row, in order.
    const many = numbered("row", 3000);
    assert.deepEqual(await readPromptFile(writeParquet(join(dir, "many.parquet"), [{ name: "text", data: many, type: "STRING" }])), many);
  });
});

test("parquet: instruction picked by default over text-less columns, --column picks another, a missing one lists the columns", async () => {
  await withTemp(async (dir) => {
    const instructions = ["Plan a picnic", "Explain photosynthesis", "Name three rivers"];
    const outputs = ["Bring food", "Light makes sugar", "Nile, Amazon, Danube"];
    const file = writeParquet(join(dir, "alpaca.parquet"), [
      { name: "instruction", data: instructions, type: "STRING" },
      { name: "output", data: outputs, type: "STRING" },
    ]);
    assert.deepEqual(await readPromptFile(file), instructions);
    assert.deepEqual(await readPromptFile(file, "output"), outputs);
    await assert.rejects(readPromptFile(file, "goal"), namesFile(file, /has no column "goal" \(columns: instruction, output\)/));
    const unnamed = writeParquet(join(dir, "unnamed.parquet"), [{ name: "body", data: ["x"], type: "STRING" }]);
    await assert.rejects(readPromptFile(unnamed), namesFile(unnamed, /none of the columns prompt\/instruction\/text\/goal\/question; name one with --column \(columns: body\)/));
  });
});

test("parquet: a corrupt or truncated file, null cells and non-text cells are refused, naming the file", async () => {
  await withTemp(async (dir) => {
    const garbage = join(dir, "garbage.parquet");
    writeFileSync(garbage, "this is not parquet at all, just text");
    await assert.rejects(readPromptFile(garbage), namesFile(garbage, /not a readable parquet file/));

    const good = writeParquet(join(dir, "good.parquet"), [{ name: "text", data: numbered("p", 20), type: "STRING" }]);
    const bytes = readFileSync(good);
    const truncated = join(dir, "truncated.parquet");
    writeFileSync(truncated, bytes.subarray(0, bytes.length - 30));
    await assert.rejects(readPromptFile(truncated), namesFile(truncated, /not a readable parquet file/));
    // An intact footer over a damaged page header: only reading the rows finds it.
    const pageOffset = Number(parquetMetadata(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)).row_groups[0].columns[0].meta_data!.data_page_offset);
    const damaged = Buffer.from(bytes);
    for (let i = 2; i < 10; i += 1) damaged[pageOffset + i] ^= 0xff;
    const damagedFile = join(dir, "damaged.parquet");
    writeFileSync(damagedFile, damaged);
    await assert.rejects(readPromptFile(damagedFile), namesFile(damagedFile, /not a readable parquet file/));

    const withNull = writeParquet(join(dir, "null.parquet"), [{ name: "text", data: ["first", null, "third"], type: "STRING" }]);
    await assert.rejects(readPromptFile(withNull), namesFile(withNull, /row 2 of column "text" is empty \(null\), not text/));
    const numbers = writeParquet(join(dir, "numbers.parquet"), [{ name: "text", data: ["a"], type: "STRING" }, { name: "score", data: [7], type: "INT32" }]);
    await assert.rejects(readPromptFile(numbers, "score"), namesFile(numbers, /row 1 of column "score" is a number \(7\), not text/));
  });
});

test("dataset ids: parsed with an optional split and slice; bad ids, missing files and uncached datasets offline get clear errors", async () => {
  assert.deepEqual(parseDatasetRef("mlabonne/harmful_behaviors"), { repo: "mlabonne/harmful_behaviors", split: "train" });
  assert.deepEqual(parseDatasetRef("org/name:test"), { repo: "org/name", split: "test" });
  assert.deepEqual(parseDatasetRef("org/name:train[:400]"), { repo: "org/name", split: "train", slice: { end: 400 } });
  assert.deepEqual(parseDatasetRef("org/name:test[10:20]"), { repo: "org/name", split: "test", slice: { start: 10, end: 20 } });
  assert.deepEqual(parseDatasetRef("org/name:test[5:]"), { repo: "org/name", split: "test", slice: { start: 5 } });
  assert.equal(parseDatasetRef("org/name:[:4]"), undefined);
  assert.equal(parseDatasetRef("org/name:train[a:b]"), undefined);
  assert.equal(parseDatasetRef("not a dataset"), undefined);
  assert.equal(parseDatasetRef("a/b/c"), undefined);
  assert.deepEqual(splitFiles(["README.md", "data/train-00000-of-00001.parquet", "data/test-00000-of-00001.parquet"], { repo: "o/n", split: "test" }), ["data/test-00000-of-00001.parquet"]);
  assert.deepEqual(splitFiles(["harmful.csv"], { repo: "o/n", split: "train" }), ["harmful.csv"]);
  assert.throws(() => splitFiles(["data/train.parquet"], { repo: "o/n", split: "validation" }), /no data file for split "validation"/);

  await assert.rejects(readPromptSource({ source: "no such file and no id" }), /neither a file nor a Hub dataset id/);
  // A missing file is not sent to the Hub as a dataset id.
  for (const missing of ["data/prompts.parquet", "./harmful", "/nowhere/harmful.txt"]) {
    await assert.rejects(readPromptSource({ source: missing, offline: false, endpoint: "http://127.0.0.1:9" }), namesFile(missing, /no such prompts file/));
  }
  await withTemp(async (cacheDir) => {
    await assert.rejects(
      readPromptSource({ source: "someone/missing-dataset:train", offline: true, cacheDir }),
      (error: unknown) => error instanceof AbliterateError && error.code === "HUB_OFFLINE" && /dataset someone\/missing-dataset \(split train\) is not in the cache/.test(error.message),
    );
  });
});
