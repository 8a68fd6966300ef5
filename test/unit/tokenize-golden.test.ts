/**
 * Prompt tokenization against HF transformers, id for id, on four real tokenizers
 * (goldens: test/golden/generate-tokenizer-golden.py → test/golden/tokenizer-golden.json).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { loadPromptTokenizer } from "../../lib/tokenize/load-prompt-tokenizer.js";
import { goldenDir, tokenizerFixturesDir } from "../golden/golden-paths.js";

interface GoldenCase {
  prompt: string;
  rendered: string;
  chat: number[];
  plain: number[];
}

const golden = JSON.parse(readFileSync(join(goldenDir, "tokenizer-golden.json"), "utf8")) as {
  tokenizers: Record<string, { class: string; cases: GoldenCase[] }>;
};

test("the golden covers the four fixture tokenizers", () => {
  assert.deepEqual(Object.keys(golden.tokenizers).sort(), [
    "Phi-3-medium-4k-instruct",
    "Phi-3-mini-4k-instruct",
    "SmolLM-360M-Instruct",
    "TinyLlama-1.1B-Chat-v1.0",
  ]);
});

for (const [name, entry] of Object.entries(golden.tokenizers)) {
  test(`${name}: chat template renders the same text as transformers`, () => {
    const tokenizer = loadPromptTokenizer({ dir: join(tokenizerFixturesDir, name) });
    for (const c of entry.cases) {
      assert.equal(tokenizer.renderChat([{ role: "user", content: c.prompt }], { addGenerationPrompt: true }), c.rendered, JSON.stringify(c.prompt));
    }
  });

  test(`${name}: apply_chat_template ids equal transformers' id for id`, () => {
    const tokenizer = loadPromptTokenizer({ dir: join(tokenizerFixturesDir, name) });
    for (const c of entry.cases) {
      assert.deepEqual(tokenizer.encodeChat(c.prompt), c.chat, JSON.stringify(c.prompt));
      assert.deepEqual(tokenizer.encodePrompt(c.prompt, true), c.chat);
    }
  });

  test(`${name}: plain encoding (no chat template) equals transformers' tokenizer(p)`, () => {
    const tokenizer = loadPromptTokenizer({ dir: join(tokenizerFixturesDir, name) });
    for (const c of entry.cases) {
      assert.deepEqual(tokenizer.encodePlain(c.prompt), c.plain, JSON.stringify(c.prompt));
      assert.deepEqual(tokenizer.encodePrompt(c.prompt, false), c.plain);
    }
  });
}

test("the legacy:false fix is what makes Llama-family tokenizers match (the file as written does not)", () => {
  const dir = join(tokenizerFixturesDir, "TinyLlama-1.1B-Chat-v1.0");
  const asWritten = new Tokenizer(
    JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8")),
    JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8")),
  );
  const fixed = loadPromptTokenizer({ dir });
  assert.equal(fixed.prependScheme, "first");
  const c = golden.tokenizers["TinyLlama-1.1B-Chat-v1.0"].cases[0];
  const rawIds = asWritten.encode(c.rendered, { add_special_tokens: false }).ids;
  assert.notDeepEqual(rawIds, c.chat);
  assert.deepEqual(fixed.encodeChat(c.prompt), c.chat);
  // After </s> (id 2) transformers emits "\n" as byte <0x0A> (13), not "▁" (29871) then 13.
  const eos = c.chat.indexOf(2);
  assert.equal(c.chat[eos + 1], 13);
});

test("byte-level BPE tokenizers are used as written", () => {
  const tokenizer = loadPromptTokenizer({ dir: join(tokenizerFixturesDir, "SmolLM-360M-Instruct") });
  assert.equal(tokenizer.prependScheme, undefined);
  assert.equal(tokenizer.decode(tokenizer.encodePlain("How do I bake bread?")), "How do I bake bread?");
});
