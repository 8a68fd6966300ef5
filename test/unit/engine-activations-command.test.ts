/**
 * `abliterate activations` end to end on a tiny random Llama carrying a real tokenizer (TinyLlama's): the file's
 * activations must equal a forward run on transformers' own token ids (tokenizer golden), for the chat-template and
 * plain paths, with both position layouts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import yargs from "yargs";
import { activationsCommand } from "../../lib/cli/activations-command.js";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { forwardTableFor } from "../../lib/engine/forward-arithmetic.js";
import { runForward } from "../../lib/engine/run-forward.js";
import { readSafetensorsHeader, readTensorBytes } from "../../lib/safetensors/index.js";
import { goldenDir, tokenizerFixturesDir } from "../golden/golden-paths.js";
import { writeRandomLlama, writeTensors } from "../golden/random-llama.js";

const TOKENIZER = "TinyLlama-1.1B-Chat-v1.0";
const golden = JSON.parse(readFileSync(join(goldenDir, "tokenizer-golden.json"), "utf8")).tokenizers[TOKENIZER].cases as {
  prompt: string;
  chat: number[];
  plain: number[];
}[];
const cases = golden.slice(0, 4);

async function withModel(body: (dir: string, root: string) => Promise<void>): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), "abl-"));
  try {
    const model = writeRandomLlama(join(root, "model"), {
      hidden: 16, heads: 2, kvHeads: 1, headDim: 8, intermediate: 24, layers: 2, vocab: 32000,
      dtype: "BF16", tie: true, bias: false, seed: 21,
    });
    await writeTensors(model);
    for (const file of ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]) {
      cpSync(join(tokenizerFixturesDir, TOKENIZER, file), join(model.dir, file));
    }
    writeFileSync(join(root, "prompts.jsonl"), cases.map((c) => JSON.stringify({ prompt: c.prompt })).join("\n") + "\n");
    await body(model.dir, root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

async function readFloat(path: string, name: string): Promise<{ shape: number[]; values: Float32Array }> {
  const header = await readSafetensorsHeader(path);
  const bytes = await readTensorBytes(header, name);
  return { shape: header.byName.get(name)!.shape, values: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4) };
}

async function readInt64(path: string, name: string): Promise<number[]> {
  const bytes = await readTensorBytes(await readSafetensorsHeader(path), name);
  return Array.from(new BigInt64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8), Number);
}

async function runCommand(argv: string[]): Promise<string> {
  const written: string[] = [];
  const original = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  }) as typeof process.stdout.write;
  try {
    // The global options as lib/cli/main.ts declares them.
    await yargs(argv)
      .option("json", { type: "boolean", global: true })
      .option("quiet", { type: "boolean", global: true })
      .option("token", { type: "string", global: true })
      .command(activationsCommand)
      .strict().exitProcess(false).fail((message, error) => {
      throw error ?? new Error(message);
    }).parseAsync();
  } finally {
    process.stdout.write = original;
  }
  return written.join("");
}

test("activations --positions last writes [prompts, L+1, d] equal to a run on transformers' chat ids", async () => {
  await withModel(async (dir, root) => {
    const out = join(root, "acts.safetensors");
    const printed = await runCommand(["activations", dir, "--prompts", join(root, "prompts.jsonl"), "--out", out, "--json", "--max-memory", "1MB"]);
    const summary = JSON.parse(printed);
    assert.equal(summary.ok, true);
    assert.equal(summary.mode, "streamed");
    assert.equal(summary.chatTemplate, true);
    const file = await readFloat(out, "activations");
    assert.deepEqual(file.shape, [cases.length, 3, 16]);
    assert.deepEqual(await readInt64(out, "input_lengths"), cases.map((c) => c.chat.length));
    const expected = await runForward({ model: await loadForwardModel(dir), prompts: cases.map((c) => c.chat), positions: "last", mode: "resident" });
    assert.deepEqual(file.values, expected.hidden);
  });
});

test("activations --positions all --no-chat-template: every token, prompt_offsets and input_ids", async () => {
  await withModel(async (dir, root) => {
    const out = join(root, "all.safetensors");
    await runCommand(["activations", dir, "--prompts", join(root, "prompts.jsonl"), "--out", out, "--positions", "all", "--no-chat-template", "--quiet"]);
    const tokens = cases.reduce((n, c) => n + c.plain.length, 0);
    const file = await readFloat(out, "activations");
    assert.deepEqual(file.shape, [tokens, 3, 16]);
    assert.deepEqual(await readInt64(out, "input_ids"), cases.flatMap((c) => c.plain));
    const offsets = await readInt64(out, "prompt_offsets");
    assert.equal(offsets.length, cases.length + 1);
    assert.equal(offsets[cases.length], tokens);
    const expected = await runForward({ model: await loadForwardModel(dir), prompts: cases.map((c) => c.plain), positions: "all" });
    assert.deepEqual(file.values, expected.hidden);
    const header = await readSafetensorsHeader(out);
    assert.equal(header.metadata?.positions, "all");
    assert.equal(header.metadata?.chat_template, "false");
    assert.equal(header.metadata?.kernels, forwardTableFor("fp32"), "fp32 by default, and the file says which table ran");
  });
});

test("activations --compute auto runs the bf16 recipe on BF16 weights where the CPU has one, and records it", async () => {
  await withModel(async (dir, root) => {
    const out = join(root, "auto.safetensors");
    const summary = JSON.parse(await runCommand(["activations", dir, "--prompts", join(root, "prompts.jsonl"), "--out", out, "--compute", "auto", "--json"]));
    assert.equal(summary.kernels, forwardTableFor("auto"));
    assert.equal((await readSafetensorsHeader(out)).metadata?.kernels, forwardTableFor("auto"));
    const model = await loadForwardModel(dir);
    const prompts = cases.map((c) => c.chat);
    const expected = await runForward({ model, prompts, positions: "last", compute: "auto" });
    assert.deepEqual((await readFloat(out, "activations")).values, expected.hidden);
    if (forwardTableFor("auto") !== forwardTableFor("fp32")) {
      assert.notDeepEqual(expected.hidden, (await runForward({ model, prompts, positions: "last" })).hidden, "auto is not fp32 here");
    }
  });
});

test("activations rejects a bad --max-memory with INVALID_ARGUMENT", async () => {
  await withModel(async (dir, root) => {
    await assert.rejects(
      runCommand(["activations", dir, "--prompts", join(root, "prompts.jsonl"), "--out", join(root, "x.safetensors"), "--max-memory", "lots"]),
      (error: { code?: string }) => error.code === "INVALID_ARGUMENT",
    );
  });
});
