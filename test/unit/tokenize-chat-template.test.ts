/**
 * Where chat templates come from, special tokens as the template sees them, the Metaspace scheme derived from
 * tokenizer_config.json, and prompt files.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPromptTokenizer } from "../../lib/tokenize/load-prompt-tokenizer.js";
import { readPromptsFile } from "../../lib/tokenize/read-prompts.js";
import { transformersPrependScheme, type TokenizerJson } from "../../lib/tokenize/transformers-pre-tokenization.js";
import { tokenizerFixturesDir } from "../golden/golden-paths.js";

const SOURCE = join(tokenizerFixturesDir, "TinyLlama-1.1B-Chat-v1.0");

function withTokenizer(edit: (dir: string, config: Record<string, unknown>) => void, body: (dir: string) => void | Promise<void>) {
  const dir = mkdtempSync(join(tmpdir(), "abl-"));
  try {
    cpSync(join(SOURCE, "tokenizer.json"), join(dir, "tokenizer.json"));
    const config = JSON.parse(readFileSync(join(SOURCE, "tokenizer_config.json"), "utf8")) as Record<string, unknown>;
    edit(dir, config);
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(config));
    return body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("chat_template.jinja wins over tokenizer_config.json's chat_template", () =>
  withTokenizer(
    (dir) => writeFileSync(join(dir, "chat_template.jinja"), "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}{{ eos_token }}"),
    (dir) => {
      const tokenizer = loadPromptTokenizer({ dir });
      assert.equal(tokenizer.renderChat([{ role: "user", content: "hi" }]), "[user]hi</s>");
    },
  ));

test("a list of named templates: the one named default is used", () =>
  withTokenizer(
    (_dir, config) => {
      config.chat_template = [
        { name: "tool_use", template: "TOOLS" },
        { name: "default", template: "{{ bos_token }}{{ messages[0]['content'] }}{% if add_generation_prompt %}>{% endif %}" },
      ];
      config.bos_token = { content: "<s>", lstrip: false };
    },
    (dir) => {
      const tokenizer = loadPromptTokenizer({ dir });
      assert.equal(tokenizer.specialTokens.bos_token, "<s>");
      assert.equal(tokenizer.renderChat([{ role: "user", content: "x" }], { addGenerationPrompt: true }), "<s>x>");
      assert.equal(tokenizer.renderChat([{ role: "user", content: "x" }], { addGenerationPrompt: false }), "<s>x");
    },
  ));

test("no chat template: renderChat fails with CONFIG_INVALID, encodePrompt falls back to plain encoding", () =>
  withTokenizer(
    (_dir, config) => delete config.chat_template,
    (dir) => {
      const tokenizer = loadPromptTokenizer({ dir });
      assert.equal(tokenizer.chatTemplate, undefined);
      assert.throws(() => tokenizer.encodeChat("hi"), (e: { code?: string }) => e.code === "CONFIG_INVALID");
      assert.deepEqual(tokenizer.encodePrompt("hi", true), tokenizer.encodePlain("hi"));
      assert.equal(tokenizer.encodePlain("hi")[0], 1, "the post-processor adds <s>");
    },
  ));

test("a template that raises reports CONFIG_INVALID naming the template's file", () =>
  withTokenizer(
    (_dir, config) => (config.chat_template = "{{ raise_exception('only user turns') }}"),
    (dir) => {
      const tokenizer = loadPromptTokenizer({ dir });
      assert.throws(
        () => tokenizer.encodeChat("hi"),
        (e: { code?: string; message: string }) => e.code === "CONFIG_INVALID" && e.message.includes("tokenizer_config.json") && e.message.includes("only user turns"),
      );
    },
  ));

test("Metaspace scheme from tokenizer_config.json, as transformers' LlamaTokenizer derives it", () => {
  const bpe = { normalizer: null, pre_tokenizer: null, model: { type: "BPE" } } as TokenizerJson;
  assert.equal(transformersPrependScheme({ tokenizer_class: "LlamaTokenizer", legacy: false }, bpe), "first");
  assert.equal(transformersPrependScheme({ tokenizer_class: "LlamaTokenizerFast" }, bpe), "first", "legacy defaults to false");
  assert.equal(transformersPrependScheme({ tokenizer_class: "LlamaTokenizer", legacy: true }, bpe), "always");
  assert.equal(transformersPrependScheme({ tokenizer_class: "LlamaTokenizer", add_prefix_space: false }, bpe), "never");
  assert.equal(transformersPrependScheme({ tokenizer_class: "GPT2Tokenizer" }, bpe), undefined);
  assert.equal(transformersPrependScheme({ tokenizer_class: "LlamaTokenizer" }, { ...bpe, model: { type: "Unigram" } }), undefined);
});

test("legacy: true keeps the file's behaviour: a ▁ after special tokens", () =>
  withTokenizer(
    (_dir, config) => (config.legacy = true),
    (dir) => {
      const tokenizer = loadPromptTokenizer({ dir });
      const ids = tokenizer.encodePlain("</s>\n", { addSpecialTokens: false });
      assert.deepEqual(ids, [2, 29871, 13]);
    },
  ));

test("prompt files: .txt lines, .json arrays, .jsonl objects; junk rejected", async () => {
  const dir = mkdtempSync(join(tmpdir(), "abl-"));
  try {
    writeFileSync(join(dir, "p.txt"), "first prompt\n\n  second  \n");
    assert.deepEqual(await readPromptsFile(join(dir, "p.txt")), ["first prompt", "  second  "]);
    writeFileSync(join(dir, "p.json"), JSON.stringify(["a", { instruction: "b" }]));
    assert.deepEqual(await readPromptsFile(join(dir, "p.json")), ["a", "b"]);
    writeFileSync(join(dir, "p.jsonl"), '{"prompt": "x"}\n"y"\n\n');
    assert.deepEqual(await readPromptsFile(join(dir, "p.jsonl")), ["x", "y"]);
    writeFileSync(join(dir, "bad.json"), JSON.stringify([{ nope: 1 }]));
    await assert.rejects(readPromptsFile(join(dir, "bad.json")), (e: { code?: string }) => e.code === "INVALID_ARGUMENT");
    writeFileSync(join(dir, "empty.txt"), "\n\n");
    await assert.rejects(readPromptsFile(join(dir, "empty.txt")), (e: { code?: string }) => e.code === "INVALID_ARGUMENT");
    await assert.rejects(readPromptsFile(join(dir, "missing.txt")), (e: { code?: string }) => e.code === "IO");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
