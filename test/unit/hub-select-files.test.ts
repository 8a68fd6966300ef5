/** Which repo files a surgery output needs, and the NO_SAFETENSORS diagnosis. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { selectModelFiles, shardsOfIndex } from "../../lib/hub/select-model-files.js";
import { isAbliterateError } from "../../lib/errors.js";

test("weights, config, tokenizer, template, code, README and license files; nothing else", () => {
  const repo = [
    ".gitattributes", "README.md", "LICENSE", "USE_POLICY.md", "config.json", "generation_config.json",
    "model.safetensors", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack", "model.gguf", "onnx/model.onnx",
    "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json", "added_tokens.json",
    "vocab.json", "merges.txt", "chat_template.jinja", "modeling_custom.py", "original/consolidated.00.pth", "abliteration.json",
    "images/logo.png", "training_args.bin",
  ];
  const selection = selectModelFiles(repo, "org/m@main");
  assert.deepEqual(selection.indexes, []);
  assert.deepEqual([...selection.files].sort(), [
    "LICENSE", "README.md", "USE_POLICY.md", "abliteration.json", "added_tokens.json", "chat_template.jinja", "config.json",
    "generation_config.json", "merges.txt", "model.safetensors", "modeling_custom.py", "special_tokens_map.json",
    "tokenizer.json", "tokenizer.model", "tokenizer_config.json", "vocab.json",
  ]);
});

test("with an index, shards come from the index; consolidated.safetensors duplicates are skipped", () => {
  const selection = selectModelFiles(["model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "consolidated.safetensors", "config.json"], "x");
  assert.deepEqual(selection, { indexes: ["model.safetensors.index.json"], files: ["config.json"] });
  assert.deepEqual(selectModelFiles(["consolidated.safetensors", "params.json"], "x").files, ["consolidated.safetensors"], "kept when it is all there is");
  assert.deepEqual(
    shardsOfIndex(JSON.stringify({ metadata: {}, weight_map: { a: "s2.safetensors", b: "s1.safetensors", c: "s2.safetensors" } }), "i.json"),
    ["s1.safetensors", "s2.safetensors"],
  );
  for (const bad of ["{", "{}", JSON.stringify({ weight_map: { a: "../x.safetensors" } }), JSON.stringify({ weight_map: { a: 3 } })]) {
    assert.throws(() => shardsOfIndex(bad, "i.json"), (error) => isAbliterateError(error) && error.code === "INDEX_INVALID" && error.message.includes("i.json"));
  }
});

test("a repo without safetensors is refused, naming what it has and what to do", () => {
  assert.throws(
    () => selectModelFiles(["config.json", "pytorch_model.bin", "README.md"], "org/old@main"),
    (error) =>
      isAbliterateError(error) &&
      error.code === "NO_SAFETENSORS" &&
      error.message.includes("org/old@main") &&
      error.message.includes("pytorch_model.bin") &&
      /safe_serialization/.test(error.message),
  );
  assert.throws(() => selectModelFiles(["sub/model.safetensors"], "x"), (error) => isAbliterateError(error) && error.code === "NO_SAFETENSORS" && error.message.includes("sub/model.safetensors"));
});
