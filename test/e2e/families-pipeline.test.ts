/**
 * The one command, with no direction file, on families the forward engine learned last (olmo2, llama4): the golden
 * checkpoints written by transformers (random weights) with a word-level tokenizer and prompts that make the two sets'
 * completions differ. Every stage runs through the engine for the family — signature, directions, selection, search,
 * surgery, evaluation, report. On random weights an edit may well change the negative set (the run then ends with
 * EDIT_DAMAGED, output written and labelled), so the assertions are that the pipeline ran, not how well it did.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PLANTED_CHAT_TEMPLATE, PLANTED_SPECIAL_TOKENS, plantedTokenizerJson } from "../../lib/directions/planted-refusal-model.js";
import { goldenDir } from "../golden/golden-paths.js";
import { runCli } from "../helpers/run-cli.js";

for (const family of ["olmo2", "llama4"]) {
  test(`the one command runs on ${family}`, async () => {
    const root = mkdtempSync(join(tmpdir(), `abl-${family}-`));
    try {
      const model = join(root, "model");
      mkdirSync(model);
      for (const file of ["config.json", "model.safetensors"]) cpSync(join(goldenDir, "forward", family, file), join(model, file));
      const vocab: string[] = [...PLANTED_SPECIAL_TOKENS];
      while (vocab.length < 256) vocab.push(`w${vocab.length}`);
      writeFileSync(join(model, "tokenizer.json"), JSON.stringify(plantedTokenizerJson(vocab)));
      writeFileSync(join(model, "tokenizer_config.json"), JSON.stringify({ tokenizer_class: "PreTrainedTokenizerFast", bos_token: "<s>", eos_token: "</s>", unk_token: "[UNK]", chat_template: PLANTED_CHAT_TEMPLATE }));
      writeFileSync(join(model, "generation_config.json"), JSON.stringify({ eos_token_id: 2 }));
      const positive = Array.from({ length: 40 }, (_, i) => `w${10 + (i % 7)} w${20 + (i % 5)} w100 w100 w101 w${30 + i}`);
      const negative = Array.from({ length: 40 }, (_, i) => `w${10 + (i % 7)} w${20 + (i % 5)} w200 w201 w${80 + i}`);
      writeFileSync(join(root, "h.txt"), positive.join("\n"));
      writeFileSync(join(root, "n.txt"), negative.join("\n"));
      const out = join(root, "out");
      const run = await runCli([model, "--harmful", join(root, "h.txt"), "--harmless", join(root, "n.txt"), "--out", out, "--trials", "25", "--max-new-tokens", "8", "--min-unchanged", "0", "--max-kl", "1000"], { env: { HF_HUB_OFFLINE: "1" } });
      assert.ok(run.status === 0 || /error \[EDIT_DAMAGED\]/.test(run.stderr), run.stderr);
      assert.doesNotMatch(run.stderr, /UNSUPPORTED_FAMILY/);
      for (const stage of ["signature", "directions", "selection", "search", "evaluation", "report"]) assert.match(run.stderr, new RegExp(`^${stage}: done`, "m"), run.stderr);
      for (const file of ["report.html", "report.json", "abliteration.json"]) assert.ok(existsSync(join(out, file)), file);
      const record = JSON.parse(readFileSync(join(out, "abliteration.json"), "utf8"));
      assert.match(record.model.model_type, new RegExp(`^${family}`));
      assert.equal(record.verification.passed, true);
      assert.ok(record.evaluation.verdict);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
}
