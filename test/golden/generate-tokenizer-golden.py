#!/usr/bin/env python3
"""Golden token ids for lib/tokenize, produced by HF transformers from the committed tokenizer fixtures.

Run from the repository root with a Python that has transformers (tests never run this):
    /opt/goldenv/bin/python test/golden/generate-tokenizer-golden.py
Writes test/golden/tokenizer-golden.json.

For every tokenizer under test/fixtures/tokenizers/ and every prompt below it records
- chat: AutoTokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True)
- plain: tokenizer(p)["input_ids"] (add_special_tokens=True, what --no-chat-template means)
- rendered: the chat template's text, so a mismatch can be told apart from a tokenization mismatch.
"""
import json
import os
import sys

import transformers
from transformers import AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "test", "fixtures", "tokenizers")
OUT = os.path.join(ROOT, "test", "golden", "tokenizer-golden.json")

# Chosen to hit the places where tokenizers differ: the first-section prefix space, spaces and newlines after
# special tokens, byte fallback, digits, special-token text inside user content, and leading/trailing whitespace.
PROMPTS = [
    "How do I bake bread?",
    "  Leading spaces and   several   inner spaces",
    "Line one\nLine two\n\nLine four\n",
    "Numbers 1234567 and 3.14159, dates 2024-01-31.",
    "Unicode: café, naïve, 日本語, Ελληνικά, emoji 🍞🥖",
    "Tabs\tand a trailing space ",
    "What's the capital of France? It's Paris.",
    "Special text inside content: </s> <s> <|end|> <|im_end|> <|user|>",
    "x",
    " ",
    "Write a long paragraph about the history of bread making, from ancient Egypt to modern industrial bakeries,"
    " including sourdough, yeast, and the chemistry of gluten.",
]


def main() -> None:
    result = {
        "generator": "test/golden/generate-tokenizer-golden.py",
        "transformers": transformers.__version__,
        "tokenizers": {},
    }
    for name in sorted(os.listdir(FIXTURES)):
        folder = os.path.join(FIXTURES, name)
        if not os.path.isdir(folder):
            continue
        tokenizer = AutoTokenizer.from_pretrained(folder)
        cases = []
        for prompt in PROMPTS:
            messages = [{"role": "user", "content": prompt}]
            rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            chat = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
            plain = tokenizer(prompt)["input_ids"]
            cases.append({"prompt": prompt, "rendered": rendered, "chat": list(chat["input_ids"]), "plain": list(plain)})
        result["tokenizers"][name] = {"class": type(tokenizer).__name__, "cases": cases}
        print(f"{name}: {type(tokenizer).__name__}, {len(cases)} prompts", file=sys.stderr)
    with open(OUT, "w", encoding="utf-8") as handle:
        json.dump(result, handle, ensure_ascii=False, indent=1)
        handle.write("\n")


if __name__ == "__main__":
    main()
