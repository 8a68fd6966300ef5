/** MODEL argument parsing: repo ids, revisions, Hub URLs, and local folders taking precedence. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseModelRef, isValidRepoId } from "../../lib/hub/parse-model-ref.js";
import { isAbliterateError } from "../../lib/errors.js";
import { scratch } from "../hub-emulator/test-fixtures.js";

const nothingExists = { exists: () => false };

test("repo ids with and without a revision", () => {
  assert.deepEqual(parseModelRef("Qwen/Qwen2.5-7B-Instruct", nothingExists), { kind: "hub", repo: "Qwen/Qwen2.5-7B-Instruct" });
  assert.deepEqual(parseModelRef("org/name@v1.0", nothingExists), { kind: "hub", repo: "org/name", revision: "v1.0" });
  assert.deepEqual(parseModelRef("org/name@refs/pr/3", nothingExists), { kind: "hub", repo: "org/name", revision: "refs/pr/3" });
  const sha = "0123456789abcdef0123456789abcdef01234567";
  assert.deepEqual(parseModelRef(`org/name@${sha}`, nothingExists), { kind: "hub", repo: "org/name", revision: sha });
  assert.deepEqual(parseModelRef("gpt2", nothingExists), { kind: "hub", repo: "gpt2" });
});

test("Hub URLs: repo, tree/<rev>, resolve/<rev>/file, encoded refs/pr/N", () => {
  assert.deepEqual(parseModelRef("https://huggingface.co/org/name", nothingExists), { kind: "hub", repo: "org/name" });
  assert.deepEqual(parseModelRef("https://huggingface.co/org/name/", nothingExists), { kind: "hub", repo: "org/name" });
  assert.deepEqual(parseModelRef("https://hf-mirror.example/org/name/tree/dev", nothingExists), { kind: "hub", repo: "org/name", revision: "dev" });
  assert.deepEqual(parseModelRef("https://huggingface.co/org/name/tree/refs%2Fpr%2F7", nothingExists), { kind: "hub", repo: "org/name", revision: "refs/pr/7" });
  assert.deepEqual(parseModelRef("https://huggingface.co/org/name/resolve/main/config.json", nothingExists), { kind: "hub", repo: "org/name", revision: "main" });
  assert.deepEqual(parseModelRef("http://127.0.0.1:8080/models/org/name", nothingExists), { kind: "hub", repo: "org/name" });
});

test("URLs that are not model repos are refused with the reason", () => {
  assert.throws(() => parseModelRef("https://huggingface.co/datasets/org/data", nothingExists), (error) => isAbliterateError(error) && error.code === "INVALID_ARGUMENT" && /dataset/.test(error.message));
  assert.throws(() => parseModelRef("https://huggingface.co/org", nothingExists), (error) => isAbliterateError(error) && error.code === "INVALID_ARGUMENT");
  assert.throws(() => parseModelRef("https://huggingface.co/org/name/commits/main", nothingExists), (error) => isAbliterateError(error) && /revision/.test(error.message));
});

test("invalid ids and empty revisions are usage errors, not Hub lookups", () => {
  for (const bad of ["org/na--me", "org/..", "a/b/c", "org/name@", "org/-name", "org/name.", "org/na me", ""]) {
    assert.throws(() => parseModelRef(bad, nothingExists), (error) => isAbliterateError(error) && error.code === "INVALID_ARGUMENT", bad);
  }
  assert.equal(isValidRepoId("meta-llama/Llama-3.1-8B"), true);
  assert.equal(isValidRepoId("org/x".padEnd(120, "x")), false);
});

test("an existing folder wins, even when it is named like a repo id", () => {
  const { root, cleanup } = scratch();
  try {
    mkdirSync(join(root, "org", "name"), { recursive: true });
    const previous = process.cwd();
    process.chdir(root);
    try {
      assert.deepEqual(parseModelRef("org/name"), { kind: "local", dir: resolve(root, "org/name") });
    } finally {
      process.chdir(previous);
    }
  } finally {
    cleanup();
  }
});

test("a path that looks local but does not exist says so instead of asking the Hub", () => {
  for (const path of ["./missing-model", "/definitely/not/here", "../up/there", "~/nowhere-abl"]) {
    assert.throws(() => parseModelRef(path, nothingExists), (error) => isAbliterateError(error) && error.code === "IO" && /not found/.test(error.message), path);
  }
});
