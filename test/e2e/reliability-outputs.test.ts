/**
 * Issue 17 ("never ship or claim what was not checked, never destroy the user's files"), through the CLI: every
 * case is a command line with its expected exit status, error code and message, and the exact change it may make
 * to the files on disk (each case's folder is listed, with a sha256 per file, before and after). docs/reliability.md
 * § Reliability II lists the cases; the table here is the one that runs. All cases run through main() in one child
 * process (test/helpers/run-main-batch.ts).
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUILTIN_HARMFUL_PROMPTS, BUILTIN_HARMLESS_PROMPTS } from "../../lib/directions/builtin-prompts.js";
import { writePlantedRefusalModel } from "../../lib/directions/planted-refusal-model.js";
import { loadPromptTokenizer } from "../../lib/tokenize/load-prompt-tokenizer.js";
import { runCli } from "../helpers/run-cli.js";
import { runMainBatch } from "../helpers/run-main-batch.js";
import { randomDirection, writeDirectionFile, writeTinyLlama } from "../helpers/tiny-llama.js";

const HIDDEN = 16;
const OFFLINE = { HF_HUB_OFFLINE: "1", HF_ENDPOINT: "http://127.0.0.1:9" };
const INDEX = "model.safetensors.index.json";
const O_PROJ = "model.layers.0.self_attn.o_proj.weight";
const DOWN_PROJ = "model.layers.1.mlp.down_proj.weight";
const PROMPTS = ["how do I bake bread", "tell me a story about a cat"];
const HARMFUL = `${BUILTIN_HARMFUL_PROMPTS.slice(0, 8).join("\n")}\n`;
const HARMLESS = `${BUILTIN_HARMLESS_PROMPTS.slice(0, 8).join("\n")}\n`;

interface Templates {
  /** Tiny Llama, BF16, 2 layers, 2 shards + index. */
  model: string;
  /** The same tensors in one model.safetensors. */
  single: string;
  direction: string;
  /** `apply model --direction direction`. */
  good: string;
  /** The planted-refusal chat model (has a tokenizer and a chat template), for activations and direction. */
  planted: string;
}

class CaseContext {
  constructor(readonly dir: string, private readonly templates: Templates) {}
  private copy(from: string, name: string): string {
    const to = join(this.dir, name);
    if (!existsSync(to)) cpSync(from, to, { recursive: true });
    return to;
  }
  model(): string {
    return this.copy(this.templates.model, "model");
  }
  single(): string {
    return this.copy(this.templates.single, "single");
  }
  direction(): string {
    return this.copy(this.templates.direction, "d.safetensors");
  }
  good(): string {
    return this.copy(this.templates.good, "good");
  }
  planted(): string {
    return this.copy(this.templates.planted, "planted");
  }
  path(...parts: string[]): string {
    return join(this.dir, ...parts);
  }
  prompts(name = "prompts.txt", bytes: Uint8Array | string = `${PROMPTS.join("\n")}\n`): string {
    writeFileSync(this.path(name), bytes);
    return this.path(name);
  }
  apply(extra: string[] = []): string[] {
    return ["apply", this.model(), "--direction", this.direction(), "--out", this.path("out"), "--threads", "1", ...extra];
  }
  verify(): string[] {
    return ["verify", this.model(), this.good(), "--direction", this.direction(), "--threads", "1"];
  }
}

interface FileChanges {
  /** Paths (relative to the case folder) that must appear; `X/**` stands for X and everything under it. */
  added?: string[];
  removed?: string[];
  changed?: string[];
  /** Paths that may change or not (a timestamp inside them). */
  mayChange?: string[];
}

interface Case {
  item: number;
  name: string;
  /** Prepares the case's folder; returns the command line. */
  setup(context: CaseContext): string[];
  status: number;
  /** The `error [CODE]` expected (failures only). */
  code?: string;
  /** Must match stderr for failures, stdout for successes. */
  message: RegExp;
  files?: FileChanges;
  /** Further checks of the result on disk. */
  check?(context: CaseContext, output: { stdout: string; stderr: string }): void;
}

// --- byte-level helpers -------------------------------------------------------------------------------------------

function headerOf(bytes: Uint8Array): { length: number; json: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> } {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { length, json: JSON.parse(Buffer.from(bytes.subarray(8, 8 + length)).toString("utf8")) };
}

function shardHolding(model: string, tensor: string): string {
  return join(model, JSON.parse(readFileSync(join(model, INDEX), "utf8")).weight_map[tensor]);
}

/** Overwrites element `index` of a BF16 tensor with the raw 16-bit pattern `bits`. */
function setBf16(model: string, tensor: string, index: number, bits: number): void {
  const path = shardHolding(model, tensor);
  const bytes = readFileSync(path);
  const { length, json } = headerOf(bytes);
  const at = 8 + length + json[tensor].data_offsets[0] + 2 * index;
  bytes.writeUInt16LE(bits, at);
  writeFileSync(path, bytes);
}

function editConfig(model: string, edit: (config: Record<string, unknown>) => void): void {
  const path = join(model, "config.json");
  const config = JSON.parse(readFileSync(path, "utf8"));
  edit(config);
  writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`);
}

function utf16(text: string, order: "le" | "be", bom: boolean): Buffer {
  const le = Buffer.from(text, "utf16le");
  const body = order === "le" ? le : Buffer.from(le.swap16());
  return Buffer.concat([bom ? Buffer.from(order === "le" ? [0xff, 0xfe] : [0xfe, 0xff]) : Buffer.alloc(0), body]);
}

/** input_lengths of an activations file. */
function inputLengths(path: string): number[] {
  const bytes = readFileSync(path);
  const { length, json } = headerOf(bytes);
  const [start, end] = json.input_lengths.data_offsets;
  const data = bytes.subarray(8 + length + start, 8 + length + end);
  return Array.from(new BigInt64Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)), Number);
}

// --- the cases ----------------------------------------------------------------------------------------------------

const OUT_ADDED: FileChanges = { added: ["out/**"] };

const CASES: Case[] = [
  // 3: every weight file a loader may pick is the edited one, or the folder is refused.
  {
    item: 3,
    name: "model.safetensors beside a sharded index",
    setup: (c) => (cpSync(join(c.single(), "model.safetensors"), join(c.model(), "model.safetensors")), c.apply()),
    status: 1,
    code: "OTHER_WEIGHTS",
    message: /model\.safetensors \(transformers loads it instead of the sharded model\.safetensors\.index\.json\)/,
  },
  {
    item: 3,
    name: "consolidated.safetensors (Mistral format) beside the index",
    setup: (c) => (cpSync(join(c.single(), "model.safetensors"), join(c.model(), "consolidated.safetensors")), c.apply()),
    status: 1,
    code: "OTHER_WEIGHTS",
    message: /consolidated\.safetensors \(Mistral's own format, which vLLM's mistral loader/,
  },
  {
    item: 3,
    name: "a second *.safetensors beside model.safetensors (no index: vLLM loads both)",
    setup: (c) => (cpSync(join(c.single(), "model.safetensors"), join(c.single(), "model-fp32.safetensors")), ["apply", c.single(), "--direction", c.direction(), "--out", c.path("out")]),
    status: 1,
    code: "OTHER_WEIGHTS",
    message: /model-fp32\.safetensors \(it holds 21 of the checkpoint's tensors, and vLLM loads every \*\.safetensors file of a folder that has no index\)/,
  },
  {
    item: 3,
    name: "pytorch_model.bin beside the safetensors",
    setup: (c) => (writeFileSync(join(c.model(), "pytorch_model.bin"), "pickle"), c.apply()),
    status: 1,
    code: "OTHER_WEIGHTS",
    message: /pytorch_model\.bin \(PyTorch pickle weights/,
  },
  {
    item: 3,
    name: "Meta-format weights in a subfolder (original/consolidated.00.pth)",
    setup: (c) => (mkdirSync(join(c.model(), "original")), writeFileSync(join(c.model(), "original", "consolidated.00.pth"), "pickle"), c.apply()),
    status: 1,
    code: "OTHER_WEIGHTS",
    message: /original\/consolidated\.00\.pth \(in a subfolder, Meta's or Mistral's own format/,
  },
  {
    item: 3,
    name: "verify refuses an original that holds a second weight file (it was shipped unedited before)",
    setup: (c) => {
      cpSync(join(c.single(), "model.safetensors"), join(c.model(), "model.safetensors"));
      cpSync(join(c.single(), "model.safetensors"), join(c.good(), "model.safetensors"));
      return c.verify();
    },
    status: 1,
    code: "OTHER_WEIGHTS",
    message: /model\.safetensors \(transformers loads it/,
  },
  {
    item: 3,
    name: "trainer state (training_args.bin, optimizer.pt) is not a model: copied, the run succeeds",
    setup: (c) => (writeFileSync(join(c.model(), "training_args.bin"), "args"), writeFileSync(join(c.model(), "optimizer.pt"), "state"), c.apply()),
    status: 0,
    message: /wrote .*out/,
    files: OUT_ADDED,
    check: (c) => assert.equal(readFileSync(c.path("out", "training_args.bin"), "utf8"), "args"),
  },
  {
    item: 3,
    name: "a direction file and unrelated safetensors data in the model folder are not weights: copied, the run succeeds",
    setup: (c) => {
      cpSync(c.direction(), join(c.model(), "refusal.safetensors"));
      writeDirectionFile(join(c.model(), "activations.safetensors"), [{ name: "activations", shape: [2, HIDDEN], values: new Array(2 * HIDDEN).fill(0.5) }]);
      writeFileSync(join(c.model(), "refusal.pt"), "a torch.save direction");
      return c.apply();
    },
    status: 0,
    message: /wrote .*out/,
    files: OUT_ADDED,
  },
  {
    item: 3,
    name: "inspect reports the extra weight file",
    setup: (c) => (cpSync(join(c.single(), "model.safetensors"), join(c.model(), "consolidated.safetensors")), ["inspect", c.model()]),
    status: 0,
    message: /note: apply and verify would refuse this folder: .*consolidated\.safetensors/,
  },

  // 4: single-file outputs: atomic, refused over an existing file without --force, never over an input.
  {
    item: 4,
    name: "activations --out the model's own model.safetensors",
    setup: (c) => ["activations", c.planted(), "--prompts", c.prompts(), "--out", c.path("planted", "model.safetensors")],
    status: 1,
    code: "INVALID_ARGUMENT",
    message: /--out .*planted\/model\.safetensors lies inside the model/,
  },
  {
    item: 4,
    name: "activations --out the model's config.json, with --force",
    setup: (c) => ["activations", c.planted(), "--prompts", c.prompts(), "--out", c.path("planted", "config.json"), "--force"],
    status: 1,
    code: "INVALID_ARGUMENT",
    message: /config\.json lies inside the model/,
  },
  {
    item: 4,
    name: "activations --out the prompts file itself, with --force",
    setup: (c) => ["activations", c.planted(), "--prompts", c.prompts(), "--out", c.path("prompts.txt"), "--force"],
    status: 1,
    code: "INVALID_ARGUMENT",
    message: /--out .*prompts\.txt is the prompts file/,
  },
  {
    item: 4,
    name: "activations --out an existing file without --force (refused before the forward pass)",
    setup: (c) => (writeFileSync(c.path("acts.safetensors"), "keep me"), ["activations", c.planted(), "--prompts", c.prompts(), "--out", c.path("acts.safetensors")]),
    status: 1,
    code: "OUTPUT_EXISTS",
    message: /acts\.safetensors: already exists; pass --force to replace it/,
  },
  {
    item: 4,
    name: "activations --force replaces an existing file (whole, no lock or temporary left)",
    setup: (c) => (writeFileSync(c.path("acts.safetensors"), "old"), ["activations", c.planted(), "--prompts", c.prompts(), "--out", c.path("acts.safetensors"), "--force"]),
    status: 0,
    message: /wrote .*acts\.safetensors: activations \[2, /,
    files: { changed: ["acts.safetensors"] },
    check: (c) => assert.deepEqual(inputLengths(c.path("acts.safetensors")).length, 2),
  },
  {
    item: 4,
    name: "direction --out an existing file without --force",
    setup: (c) => (writeFileSync(c.path("dirs.safetensors"), "keep me"), ["direction", c.planted(), "--harmful", c.prompts("h.txt", HARMFUL), "--harmless", c.prompts("ok.txt", HARMLESS), "--out", c.path("dirs.safetensors")]),
    status: 1,
    code: "OUTPUT_EXISTS",
    message: /dirs\.safetensors: already exists; pass --force to replace it/,
  },
  {
    item: 4,
    name: "direction --out the model's own model.safetensors, with --force",
    setup: (c) => ["direction", c.planted(), "--harmful", c.prompts("h.txt", HARMFUL), "--harmless", c.prompts("ok.txt", HARMLESS), "--out", c.path("planted", "model.safetensors"), "--force"],
    status: 1,
    code: "INVALID_ARGUMENT",
    // The direction command checks its --out itself (lib/pipeline/find-directions.ts).
    message: /planted\/model\.safetensors (?:lies inside the model|is inside the model folder)/,
  },

  // 5: OUT never equals, contains or lies inside an input, with --force or not.
  {
    item: 5,
    name: "apply --force --out MODEL",
    setup: (c) => ["apply", c.model(), "--direction", c.direction(), "--out", c.model(), "--force"],
    status: 1,
    code: "INVALID_ARGUMENT",
    message: /--out .*\/model is the model/,
  },
  {
    item: 5,
    name: "apply --force --out the folder holding the model",
    setup: (c) => ["apply", c.model(), "--direction", c.direction(), "--out", c.dir, "--force"],
    status: 1,
    code: "INVALID_ARGUMENT",
    message: /contains the model/,
  },
  {
    item: 5,
    name: "apply --force --out an old output that holds the --direction file",
    setup: (c) => (renameSync(c.direction(), join(c.good(), "d.safetensors")), ["apply", c.model(), "--direction", join(c.good(), "d.safetensors"), "--out", c.good(), "--force"]),
    status: 1,
    code: "INVALID_ARGUMENT",
    message: /good contains the direction file/,
  },
  {
    item: 5,
    name: "apply --out a folder inside the model",
    setup: (c) => c.apply().map((arg) => (arg === c.path("out") ? c.path("model", "abl") : arg)),
    status: 1,
    code: "INVALID_ARGUMENT",
    message: /model\/abl lies inside the model/,
  },
  {
    item: 5,
    name: "apply --force --out a symlink to the model",
    setup: (c) => (symlinkSync(c.model(), c.path("link")), ["apply", c.model(), "--direction", c.direction(), "--out", c.path("link"), "--force"]),
    status: 1,
    code: "INVALID_ARGUMENT",
    message: /link is the model/,
  },

  // 8: verify checks the whole folder against the source.
  ...(
    [
      ["config.json with one byte changed", (g: string) => writeFileSync(join(g, "config.json"), readFileSync(join(g, "config.json"), "utf8").replace('"llama"', '"llamb"')), /config\.json: differs from the original's at byte \d+/],
      ["config.json edited in whitespace only", (g: string) => writeFileSync(join(g, "config.json"), `${readFileSync(join(g, "config.json"), "utf8")} \n`), /config\.json: \d+ bytes, the original's has \d+/],
      ["config.json deleted", (g: string) => rmSync(join(g, "config.json")), /config\.json: missing from the modified model/],
      ["the index deleted", (g: string) => rmSync(join(g, INDEX)), /model\.safetensors\.index\.json: missing from the modified model/],
      ["the index's total_size edited", (g: string) => writeFileSync(join(g, INDEX), readFileSync(join(g, INDEX), "utf8").replace(/"total_size": (\d)/, '"total_size": 9')), /model\.safetensors\.index\.json: differs from the original's at byte/],
      ["tokenizer_config.json changed", (g: string) => writeFileSync(join(g, "tokenizer_config.json"), "{}"), /tokenizer_config\.json: /],
      ["an extra evil.py", (g: string) => writeFileSync(join(g, "evil.py"), "import os"), /evil\.py: is not in the original model/],
      ["an extra shard", (g: string) => cpSync(join(g, "model-00001-of-00002.safetensors"), join(g, "model-00003-of-00002.safetensors")), /model-00003-of-00002\.safetensors: is not in the original model/],
      ["an extra file in a subfolder", (g: string) => (mkdirSync(join(g, "extra")), writeFileSync(join(g, "extra", "notes.txt"), "x")), /extra\/notes\.txt: is not in the original model/],
      ["a .env dropped into it", (g: string) => writeFileSync(join(g, ".env"), "HF_TOKEN=x"), /\.env: is not in the original model/],
    ] as const
  ).map(([name, mutate, message]): Case => ({
    item: 8,
    name: `verify: ${name}`,
    setup: (c) => (mutate(c.good()), c.verify()),
    status: 1,
    code: "VERIFY_FAILED",
    message,
  })),
  {
    item: 8,
    name: "verify: the tool's own files (a new README.md model card, report.html, report.json) are allowed",
    setup: (c) => {
      c.good();
      writeFileSync(c.path("good", "README.md"), "---\nbase_model: x\n---\n# abliterated\n");
      writeFileSync(c.path("good", "report.html"), "<html></html>");
      writeFileSync(c.path("good", "report.json"), "{}");
      return c.verify();
    },
    status: 0,
    message: /verified: .*; \d+ other file\(s\) identical, none missing or extra/,
  },

  // 9: the non-finite rule: an edited tensor must be finite before and after.
  {
    item: 9,
    name: "apply --scale 1e308 (every edited element overflows)",
    setup: (c) => c.apply(["--scale", "1e308"]),
    status: 1,
    code: "VERIFY_FAILED",
    message: /NaN or infinite value\(s\) in the edited result .*at α = 1e\+308 the projection overflows BF16/,
  },
  {
    item: 9,
    name: "a NaN in an edited tensor of the input",
    setup: (c) => (setBf16(c.model(), O_PROJ, 3, 0x7fc0), c.apply()),
    status: 1,
    code: "VERIFY_FAILED",
    message: /tensor "model\.layers\.0\.self_attn\.o_proj\.weight" holds 1 NaN or infinite value\(s\) in the original \(first at element 3\); abliterate does not edit tensors with non-finite weights/,
  },
  {
    item: 9,
    name: "an Inf in an edited tensor of the input",
    setup: (c) => (setBf16(c.model(), DOWN_PROJ, 0, 0x7f80), c.apply()),
    status: 1,
    code: "VERIFY_FAILED",
    message: /down_proj\.weight" holds 1 NaN or infinite value\(s\) in the original \(first at element 0\)/,
  },
  {
    item: 9,
    name: "verify: an Inf written into an edited tensor of the output",
    setup: (c) => (setBf16(c.good(), O_PROJ, 7, 0xff80), c.verify()),
    status: 1,
    code: "VERIFY_FAILED",
    message: /o_proj\.weight" holds 1 NaN or infinite value\(s\) in the edited result \(first at element 7\) although the original is finite/,
  },

  // 10: numeric options: an empty or non-numeric value is an error, never 0.
  { item: 10, name: 'apply --scale ""', setup: (c) => c.apply(["--scale", ""]), status: 1, code: "INVALID_ARGUMENT", message: /--scale must be a number; got an empty value/ },
  { item: 10, name: 'apply --direction-layer ""', setup: (c) => c.apply(["--direction-layer", ""]), status: 1, code: "INVALID_ARGUMENT", message: /--direction-layer must be a whole number of at least 0; got an empty value/ },
  { item: 10, name: "apply --scale 0x10", setup: (c) => c.apply(["--scale", "0x10"]), status: 1, code: "INVALID_ARGUMENT", message: /--scale must be a number; got "0x10"/ },
  { item: 10, name: 'verify --scale ""', setup: (c) => [...c.verify(), "--scale", ""], status: 1, code: "INVALID_ARGUMENT", message: /--scale must be a number; got an empty value/ },
  {
    item: 10,
    name: 'activations --threads ""',
    setup: (c) => ["activations", c.planted(), "--prompts", c.prompts(), "--out", c.path("a.safetensors"), "--threads", ""],
    status: 1,
    code: "INVALID_ARGUMENT",
    message: /--threads must be a whole number from 0 \(all cores\) to 1024; got an empty value/,
  },

  // 11: a partial folder abliterate did not make is never emptied or removed.
  {
    item: 11,
    name: "a foreign OUT.partial holding the user's files",
    setup: (c) => (mkdirSync(c.path("out.partial")), writeFileSync(c.path("out.partial", "thesis.tex"), "years of work"), c.apply()),
    status: 1,
    code: "OUTPUT_EXISTS",
    message: /out\.partial: exists, is not empty and has no \.abliterate-partial marker/,
  },
  {
    item: 11,
    name: "a foreign OUT.partial, with --force",
    setup: (c) => (mkdirSync(c.path("out.partial")), writeFileSync(c.path("out.partial", "thesis.tex"), "years of work"), c.apply(["--force"])),
    status: 1,
    code: "OUTPUT_EXISTS",
    message: /has no \.abliterate-partial marker/,
  },
  {
    item: 11,
    name: "an empty OUT.partial (nothing to lose) is used",
    setup: (c) => (mkdirSync(c.path("out.partial")), c.apply()),
    status: 0,
    message: /wrote /,
    files: { added: ["out/**"], removed: ["out.partial"] },
  },
  {
    item: 11,
    name: "a killed run's marked OUT.partial is replaced",
    setup: (c) => {
      mkdirSync(c.path("out.partial"));
      writeFileSync(c.path("out.partial", ".abliterate-partial"), JSON.stringify({ tool: "abliterate", pid: 999_999_999 }));
      writeFileSync(c.path("out.partial", "model-00001-of-00002.safetensors"), "torn");
      return c.apply();
    },
    status: 0,
    message: /wrote /,
    files: { added: ["out/**"], removed: ["out.partial/**"] },
  },

  // 13: prompt files in other encodings.
  ...(
    [
      ["UTF-16LE with a BOM", utf16(PROMPTS.join("\r\n"), "le", true)],
      ["UTF-16BE with a BOM", utf16(PROMPTS.join("\n"), "be", true)],
      ["UTF-8 with a BOM", Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(PROMPTS.join("\n"))])],
    ] as const
  ).map(([name, bytes]): Case => ({
    item: 13,
    name: `activations --prompts in ${name}: decoded, the same tokens as UTF-8`,
    setup: (c) => ["activations", c.planted(), "--prompts", c.prompts("p.txt", bytes), "--out", c.path("a.safetensors")],
    status: 0,
    message: /for 2 prompt\(s\)/,
    files: { added: ["a.safetensors"] },
    check: (c) => {
      const tokenizer = loadPromptTokenizer({ dir: c.path("planted") });
      assert.deepEqual(inputLengths(c.path("a.safetensors")), PROMPTS.map((prompt) => tokenizer.encodePrompt(prompt, true).length));
    },
  })),
  {
    item: 13,
    name: "activations --prompts in UTF-16 without a BOM",
    setup: (c) => ["activations", c.planted(), "--prompts", c.prompts("p.txt", utf16(PROMPTS.join("\n"), "le", false)), "--out", c.path("a.safetensors")],
    status: 1,
    code: "INVALID_ARGUMENT",
    message: /p\.txt: the prompts file holds a NUL character \(line 1\); it is a binary file, or UTF-16 without a byte-order mark/,
  },
  {
    item: 13,
    name: "activations --prompts a binary file",
    setup: (c) => ["activations", c.planted(), "--prompts", c.prompts("p.txt", Buffer.from([0x68, 0x69, 0x0a, 0xc3, 0x28, 0x9f, 0xff, 0x00])), "--out", c.path("a.safetensors")],
    status: 1,
    code: "INVALID_ARGUMENT",
    message: /p\.txt: the prompts file is not valid UTF-8 text \(first bad byte at offset 3\)/,
  },
  {
    item: 13,
    name: "direction --harmful in UTF-32",
    setup: (c) => ["direction", c.planted(), "--harmful", c.prompts("h.txt", Buffer.from([0xff, 0xfe, 0, 0, 0x68, 0, 0, 0])), "--harmless", c.prompts("ok.txt", HARMLESS), "--out", c.path("d2.safetensors")],
    status: 1,
    code: "INVALID_ARGUMENT",
    message: /h\.txt: the prompts file is UTF-32/,
  },

  // 14: an interrupted --force run's OUT.old-PID is recovered on the next run.
  {
    item: 14,
    name: "OUT.old-PID left by a --force run killed between its renames, no OUT: restored",
    setup: (c) => (renameSync(c.good(), c.path("out.old-999999999")), c.apply()),
    status: 1,
    code: "OUTPUT_EXISTS",
    message: /error \[OUTPUT_EXISTS\]: .*output folder already exists \(restored .*out from out\.old-999999999, which a --force run killed while replacing it left behind\); pass --force/,
    files: { added: ["out/**"], removed: ["out.old-999999999/**"] },
    check: (c) => assert.equal(readFileSync(c.path("out", "abliteration.json"), "utf8"), readFileSync(join(templatesRef().good, "abliteration.json"), "utf8")),
  },
  {
    item: 14,
    name: "the same with --force: restored, then replaced",
    setup: (c) => (renameSync(c.good(), c.path("out.old-999999999")), c.apply(["--force"])),
    status: 0,
    message: /wrote /,
    files: { added: ["out/**"], removed: ["out.old-999999999/**"] },
  },
  {
    item: 14,
    name: "OUT and a stale OUT.old-PID (killed while removing it): removed",
    setup: (c) => (cpSync(c.good(), c.path("out"), { recursive: true }), renameSync(c.good(), c.path("out.old-999999999")), c.apply(["--force"])),
    status: 0,
    message: /wrote /,
    files: { mayChange: ["out/abliteration.json"], removed: ["out.old-999999999/**"] },
  },

  // 16: num_hidden_layers must match the tensors.
  {
    item: 16,
    name: "num_hidden_layers smaller than the checkpoint's layers",
    setup: (c) => (editConfig(c.model(), (config) => void (config.num_hidden_layers = 1)), c.apply()),
    status: 1,
    code: "CONFIG_INVALID",
    message: /config\.json: num_hidden_layers is 1, but the checkpoint has residual writers of layer 1, e\.g\. "model\.layers\.1\./,
  },
  {
    item: 16,
    name: "num_hidden_layers larger than the checkpoint's layers: nothing is left unedited, and the run says so",
    setup: (c) => (editConfig(c.model(), (config) => void (config.num_hidden_layers = 3)), c.apply()),
    status: 0,
    message: /note: config\.json's num_hidden_layers is 3, but the checkpoint has no residual writer of layer 2; a loader would initialize such layers at random/,
    files: OUT_ADDED,
  },

  // 17: path oddities.
  { item: 17, name: 'apply --out ""', setup: (c) => (c.model(), c.apply().map((arg) => (arg === c.path("out") ? "" : arg))), status: 1, code: "INVALID_ARGUMENT", message: /--out is empty; give the folder to write/ },
  { item: 17, name: "apply --out X/.", setup: (c) => c.apply().map((arg) => (arg === c.path("out") ? `${c.path("x")}/.` : arg)), status: 1, code: "INVALID_ARGUMENT", message: /--out ".*x\/\." ends in "\."; name the folder itself/ },
  { item: 17, name: "apply --out X/..", setup: (c) => c.apply().map((arg) => (arg === c.path("out") ? `${c.path("x")}/..` : arg)), status: 1, code: "INVALID_ARGUMENT", message: /ends in "\.\."/ },
  { item: 17, name: 'activations --out "dir/" (a folder)', setup: (c) => ["activations", c.planted(), "--prompts", c.prompts(), "--out", `${c.path("acts")}/`], status: 1, code: "INVALID_ARGUMENT", message: /ends with "\/", so it names a folder/ },
  {
    item: 17,
    name: "a shard that is a FIFO",
    setup: (c) => (rmSync(join(c.model(), "model-00002-of-00002.safetensors")), execFileSync("mkfifo", [c.path("model", "model-00002-of-00002.safetensors")]), c.apply()),
    status: 1,
    code: "INDEX_INVALID",
    message: /names the shard model-00002-of-00002\.safetensors, but .* is a FIFO \(named pipe\), not a safetensors file/,
  },
  {
    item: 17,
    name: "a shard that is a folder",
    setup: (c) => (rmSync(join(c.model(), "model-00002-of-00002.safetensors")), mkdirSync(c.path("model", "model-00002-of-00002.safetensors")), c.apply()),
    status: 1,
    code: "INDEX_INVALID",
    message: /is a folder, not a safetensors file/,
  },
  {
    item: 17,
    name: "an all-1e308 direction (finite, its norm overflows) is a valid direction",
    setup: (c) => (writeDirectionFile(c.path("big.safetensors"), [{ name: "direction", shape: [HIDDEN], values: new Array(HIDDEN).fill(1e308), dtype: "F64" }]), c.apply().map((arg) => (arg === c.direction() ? c.path("big.safetensors") : arg))),
    status: 0,
    message: /wrote .*verified: /s,
    files: OUT_ADDED,
  },
];

// --- running ------------------------------------------------------------------------------------------------------

type Listing = Map<string, string>;

function listTree(root: string): Listing {
  const listing: Listing = new Map();
  const walk = (dir: string, prefix: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      const relative = prefix ? `${prefix}/${name}` : name;
      const info = lstatSync(path);
      if (info.isSymbolicLink()) listing.set(relative, `link:${readlinkSync(path)}`);
      else if (info.isDirectory()) {
        listing.set(relative, "folder");
        walk(path, relative);
      } else if (info.isFile()) listing.set(relative, `file:${createHash("sha256").update(readFileSync(path)).digest("hex")}`);
      else listing.set(relative, "special");
    }
  };
  walk(root, "");
  return listing;
}

function matches(pattern: string, path: string): boolean {
  return pattern.endsWith("/**") ? path === pattern.slice(0, -3) || path.startsWith(pattern.slice(0, -2)) : path === pattern;
}

function compareListings(before: Listing, after: Listing, expected: FileChanges): string[] {
  const problems: string[] = [];
  const added = [...after.keys()].filter((path) => !before.has(path));
  const removed = [...before.keys()].filter((path) => !after.has(path));
  const changed = [...after.keys()].filter((path) => before.has(path) && before.get(path) !== after.get(path));
  for (const [kind, actual, patterns] of [["added", added, expected.added ?? []], ["removed", removed, expected.removed ?? []], ["changed", changed, expected.changed ?? []]] as const) {
    const unexpected = actual.filter((path) => !patterns.some((pattern) => matches(pattern, path)) && !(kind === "changed" && (expected.mayChange ?? []).some((pattern) => matches(pattern, path))));
    const missing = patterns.filter((pattern) => !actual.some((path) => matches(pattern, path)));
    if (unexpected.length > 0) problems.push(`${kind} unexpectedly: ${unexpected.slice(0, 6).join(", ")}`);
    if (missing.length > 0) problems.push(`not ${kind}: ${missing.join(", ")}`);
  }
  return problems;
}

let templates: Templates | undefined;
const templatesRef = (): Templates => templates!;

test(`issue 17 through the CLI: ${CASES.length} cases, each with its exit status, message and files on disk before and after`, async (t) => {
  const root = mkdtempSync(join(tmpdir(), "abl-rel2-"));
  try {
    templates = { model: join(root, "t-model"), single: join(root, "t-single"), direction: join(root, "t-d.safetensors"), good: join(root, "t-good"), planted: join(root, "t-planted") };
    writeTinyLlama({ dir: templates.model, dtype: "BF16", tied: false, hidden: HIDDEN, intermediate: 24, layers: 2, vocab: 40, shards: 2 });
    writeTinyLlama({ dir: templates.single, dtype: "BF16", tied: false, hidden: HIDDEN, intermediate: 24, layers: 2, vocab: 40, shards: 1 });
    writeDirectionFile(templates.direction, [{ name: "direction", shape: [HIDDEN], values: randomDirection(HIDDEN, 9) }]);
    await writePlantedRefusalModel({ dir: templates.planted });
    const made = await runCli(["apply", templates.model, "--direction", templates.direction, "--out", templates.good, "--quiet"], { env: OFFLINE });
    assert.equal(made.status, 0, made.stderr);

    const prepared = CASES.map((entry, index) => {
      const context = new CaseContext(join(root, `case-${index}`), templates!);
      mkdirSync(context.dir);
      const args = entry.setup(context);
      return { entry, context, args, before: listTree(context.dir) };
    });
    const { results, childStderr } = runMainBatch(
      prepared.map(({ context, args }) => ({ args, cwd: context.dir })),
      { workDir: root, env: OFFLINE },
    );
    assert.equal(results.length, CASES.length, `the batch stopped after ${results.length} case(s) (next: ${CASES[results.length]?.name}); ${childStderr}`);

    const failures: string[] = [];
    for (const [index, { entry, context, args, before }] of prepared.entries()) {
      const result = results[index];
      const problems: string[] = [];
      const errorLine = result.stderr.split("\n").find((line) => line.startsWith("error [")) ?? "";
      if (result.status !== entry.status) problems.push(`exit ${result.status}, expected ${entry.status}`);
      if (entry.status === 0) {
        if (!entry.message.test(result.stdout)) problems.push(`stdout does not match ${entry.message}`);
      } else {
        const code = /^error \[([A-Z0-9_]+)\]/.exec(errorLine)?.[1];
        if (code !== entry.code) problems.push(`code ${code}, expected ${entry.code}`);
        if (!entry.message.test(result.stderr)) problems.push(`stderr does not match ${entry.message}`);
        // verify prints its report, ending in the failures; every other failing command prints nothing on stdout.
        if (result.stdout !== "" && !(args[0] === "verify" && /verification FAILED/.test(result.stdout))) problems.push(`stdout: ${JSON.stringify(result.stdout.slice(0, 200))}`);
      }
      if (/internal error/i.test(result.stderr) || /\n\s+at .+:\d+:\d+\)?(\n|$)/.test(result.stderr)) problems.push("stack trace or internal error");
      problems.push(...compareListings(before, listTree(context.dir), entry.files ?? {}));
      if (problems.length === 0 && entry.check) {
        try {
          entry.check(context, result);
        } catch (error) {
          problems.push(`check: ${(error as Error).message.split("\n")[0]}`);
        }
      }
      if (process.env.ABL_CASES_SHOW) t.diagnostic(`[${entry.item}] ${entry.name}: exit ${result.status} ${errorLine || result.stdout.split("\n")[0]}`);
      if (problems.length > 0) {
        failures.push(`[item ${entry.item}] ${entry.name}: ${problems.join("; ")}\n    $ abliterate ${args.map((arg) => JSON.stringify(arg)).join(" ")}\n    stderr: ${result.stderr.trim().split("\n").slice(-3).join(" | ")}`);
      }
    }
    const items = [...new Set(CASES.map((entry) => entry.item))];
    t.diagnostic(`issue 17: ${CASES.length} cases over items ${items.join(", ")}`);
    assert.deepEqual(failures, [], `${failures.length} of ${CASES.length} cases failed:\n${failures.join("\n")}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
