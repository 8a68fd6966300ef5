/**
 * Bad-input sweep through the CLI: malformed checkpoints, direction files, arguments and modified folders fed to
 * `apply`, `verify` and `inspect`. Every case must end as a diagnosed failure:
 * - exit status 1 and an `error [CODE]:` line with the expected code, naming the offending file;
 * - nothing on stdout, or with --json exactly one JSON error object;
 * - no stack trace and never "internal error";
 * - no OUT, OUT.partial or lock left, and the inputs byte-identical.
 * All cases run through main() in one child process (fast on two cores); a sample also through bin/abliterate.js.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFileSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { serializeSafetensors } from "../../lib/safetensors/serialize-safetensors.js";
import { runCli } from "../helpers/run-cli.js";
import { rawSafetensorsBytes } from "../helpers/safetensors-fixtures.js";
import { randomDirection, writeDirectionFile, writeTinyLlama } from "../helpers/tiny-llama.js";

const HIDDEN = 16;
const LAYERS = 2;
const OFFLINE = { HF_HUB_OFFLINE: "1", HF_ENDPOINT: "http://127.0.0.1:9" };
const SHARD_1 = "model-00001-of-00002.safetensors";
const SHARD_2 = "model-00002-of-00002.safetensors";
const INDEX = "model.safetensors.index.json";

interface CaseContext {
  /** A fresh copy of the good model, to break. */
  model: string;
  /** A good direction file, to replace. */
  direction: string;
  /** The case's own folder (for extra files). */
  dir: string;
  /** A good surgery output of the untouched model (for verify cases), copied fresh. */
  modified: string;
}

interface BadInputCase {
  name: string;
  command: "apply" | "verify" | "inspect";
  /** Breaks the inputs; returns extra CLI arguments. */
  setup(context: CaseContext): string[] | void;
  /** Overrides verify's MODIFIED argument. */
  modelArgument?: (context: CaseContext) => string;
  code: string | RegExp;
  /** Expected exit status (default 1; usage errors exit 2). */
  status?: number;
  /** Text the error line must contain (the offending file, usually). */
  names: string | ((context: CaseContext) => string);
}

// --- byte-level helpers -------------------------------------------------------------------------------------------

function headerOf(bytes: Uint8Array): { length: number; json: Record<string, unknown> } {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { length, json: JSON.parse(Buffer.from(bytes.subarray(8, 8 + length)).toString("utf8")) };
}

/** Rewrites a shard's header text (keeping the data bytes); `edit` gets the header as text. */
function editHeaderText(path: string, edit: (text: string) => string): void {
  const bytes = readFileSync(path);
  const { length } = headerOf(bytes);
  const text = edit(bytes.subarray(8, 8 + length).toString("utf8"));
  writeFileSync(path, rawSafetensorsBytes(text, bytes.subarray(8 + length)));
}

function setHeaderLength(path: string, length: bigint): void {
  const bytes = readFileSync(path);
  new DataView(bytes.buffer, bytes.byteOffset).setBigUint64(0, length, true);
  writeFileSync(path, bytes);
}

function editJson(path: string, edit: (value: Record<string, any>) => unknown): void {
  writeFileSync(path, JSON.stringify(edit(JSON.parse(readFileSync(path, "utf8")))));
}

/** Replaces one tensor's entry in a shard: new dtype/shape with the same byte span, so the file stays well-formed. */
function retypeTensor(path: string, name: string, entry: { dtype: string; shape: number[] }): void {
  editHeaderText(path, (text) => {
    const json = JSON.parse(text);
    json[name] = { ...json[name], ...entry };
    return JSON.stringify(json);
  });
}

function shardHolding(model: string, tensor: string): string {
  const index = JSON.parse(readFileSync(join(model, INDEX), "utf8"));
  return join(model, index.weight_map[tensor]);
}

const O_PROJ = "model.layers.0.self_attn.o_proj.weight";
const DIRECTION = "d.safetensors";

// --- the cases ----------------------------------------------------------------------------------------------------

const modelCases: Omit<BadInputCase, "command">[] = [
  { name: "truncated shard", setup: ({ model }) => void truncateSync(join(model, SHARD_2), readFileSync(join(model, SHARD_2)).length - 100), code: /SAFETENSORS_/, names: SHARD_2 },
  { name: "shard cut inside its header", setup: ({ model }) => void truncateSync(join(model, SHARD_1), 20), code: "SAFETENSORS_TRUNCATED", names: SHARD_1 },
  { name: "empty shard", setup: ({ model }) => void truncateSync(join(model, SHARD_1), 0), code: "SAFETENSORS_TRUNCATED", names: SHARD_1 },
  { name: "header length beyond the file", setup: ({ model }) => setHeaderLength(join(model, SHARD_1), 900_000n), code: "SAFETENSORS_TRUNCATED", names: SHARD_1 },
  { name: "header length past the 100 MB cap", setup: ({ model }) => setHeaderLength(join(model, SHARD_1), 1n << 40n), code: "SAFETENSORS_HEADER_TOO_LARGE", names: SHARD_1 },
  { name: "header length 2^64 - 1", setup: ({ model }) => setHeaderLength(join(model, SHARD_1), (1n << 64n) - 1n), code: "SAFETENSORS_HEADER_TOO_LARGE", names: SHARD_1 },
  {
    name: "shape whose product overflows",
    setup: ({ model }) => editHeaderText(shardHolding(model, O_PROJ), (text) => text.replace(/("model\.layers\.0\.self_attn\.o_proj\.weight":\{[^}]*"shape":)\[[^\]]*\]/, "$1[4294967296,4294967296,4294967296]")),
    code: /SAFETENSORS_SIZE_OVERFLOW|SAFETENSORS_INVALID_ENTRY/,
    names: "model-0000",
  },
  {
    name: "duplicate key in a shard header",
    setup: ({ model }) => editHeaderText(join(model, SHARD_1), (text) => text.replace(/^\{("__metadata__":\{[^}]*\})/, '{$1,$1')),
    code: "SAFETENSORS_INVALID_JSON",
    names: SHARD_1,
  },
  {
    name: "header not UTF-8",
    setup: ({ model }) => {
      const path = join(model, SHARD_1);
      const bytes = readFileSync(path);
      bytes[12] = 0xff;
      writeFileSync(path, bytes);
    },
    code: "SAFETENSORS_INVALID_UTF8",
    names: SHARD_1,
  },
  { name: "header is a JSON array", setup: ({ model }) => editHeaderText(join(model, SHARD_1), (text) => `[${" ".repeat(text.length - 2)}]`), code: /SAFETENSORS_INVALID_(JSON|ENTRY)/, names: SHARD_1 },
  { name: "unknown dtype", setup: ({ model }) => editHeaderText(join(model, SHARD_1), (text) => text.replace(/"dtype":"BF16"/, '"dtype":"BF17"')), code: "SAFETENSORS_UNKNOWN_DTYPE", names: SHARD_1 },
  {
    name: "data offsets with a hole",
    setup: ({ model }) => editHeaderText(join(model, SHARD_1), (text) => {
      const json = JSON.parse(text);
      const first = Object.keys(json).find((key) => key !== "__metadata__") as string;
      json[first].data_offsets = [json[first].data_offsets[0] + 2, json[first].data_offsets[1]];
      return JSON.stringify(json);
    }),
    code: /SAFETENSORS_(INVALID_OFFSETS|SIZE_MISMATCH)/,
    names: SHARD_1,
  },
  { name: "index points outside the folder", setup: ({ model }) => editJson(join(model, INDEX), (index) => ({ ...index, weight_map: { ...index.weight_map, [O_PROJ]: "../outside.safetensors" } })), code: "INDEX_INVALID", names: INDEX },
  { name: "index gives an absolute path", setup: ({ model }) => editJson(join(model, INDEX), (index) => ({ ...index, weight_map: { ...index.weight_map, [O_PROJ]: "/etc/passwd" } })), code: "INDEX_INVALID", names: INDEX },
  { name: "index uses a backslash path", setup: ({ model }) => editJson(join(model, INDEX), (index) => ({ ...index, weight_map: { ...index.weight_map, [O_PROJ]: "..\\outside.safetensors" } })), code: "INDEX_INVALID", names: INDEX },
  { name: "index names a missing shard", setup: ({ model }) => void rmSync(join(model, SHARD_2)), code: "INDEX_INVALID", names: INDEX },
  {
    name: "index names a folder as a shard",
    setup: ({ model }) => {
      rmSync(join(model, SHARD_2));
      mkdirSync(join(model, SHARD_2));
    },
    code: "INDEX_INVALID",
    names: INDEX,
  },
  {
    name: "tensor in two shards",
    setup: ({ model }) => {
      // Shard 2 gets a second copy of a tensor that shard 1 holds (the index still maps it to shard 1).
      const first = readFileSync(join(model, SHARD_1));
      const { length, json } = headerOf(first);
      const name = Object.keys(json).find((key) => key !== "__metadata__") as string;
      const entry = json[name] as { dtype: "BF16"; shape: number[]; data_offsets: [number, number] };
      const data = first.subarray(8 + length + entry.data_offsets[0], 8 + length + entry.data_offsets[1]);
      const second = readFileSync(join(model, SHARD_2));
      const secondHeader = headerOf(second);
      const tensors = Object.entries(secondHeader.json)
        .filter(([key]) => key !== "__metadata__")
        .map(([key, value]) => {
          const { dtype, shape, data_offsets: [begin, end] } = value as { dtype: "BF16"; shape: number[]; data_offsets: [number, number] };
          return { name: key, dtype, shape, data: second.subarray(8 + secondHeader.length + begin, 8 + secondHeader.length + end) };
        });
      writeFileSync(join(model, SHARD_2), serializeSafetensors({ tensors: [...tensors, { name, dtype: entry.dtype, shape: entry.shape, data }] }));
    },
    code: "INDEX_INVALID",
    names: INDEX,
  },
  { name: "index is not JSON", setup: ({ model }) => writeFileSync(join(model, INDEX), "{ weight_map: nope"), code: "INDEX_INVALID", names: INDEX },
  { name: "index maps a tensor twice (duplicate key)", setup: ({ model }) => writeFileSync(join(model, INDEX), `{"weight_map":{"${O_PROJ}":"${SHARD_1}","${O_PROJ}":"${SHARD_2}"}}`), code: "INDEX_INVALID", names: INDEX },
  { name: "index with an empty weight_map", setup: ({ model }) => writeFileSync(join(model, INDEX), '{"metadata":{},"weight_map":{}}'), code: "INDEX_INVALID", names: INDEX },
  { name: "index maps a tensor to a shard that lacks it", setup: ({ model }) => editJson(join(model, INDEX), (index) => ({ ...index, weight_map: { ...index.weight_map, "model.ghost.weight": SHARD_1 } })), code: "INDEX_INVALID", names: INDEX },
  { name: "config.json missing", setup: ({ model }) => void rmSync(join(model, "config.json")), code: "CONFIG_INVALID", names: "config.json" },
  { name: "config.json not JSON", setup: ({ model }) => writeFileSync(join(model, "config.json"), "{model_type: llama"), code: "CONFIG_INVALID", names: "config.json" },
  { name: "config.json is an array", setup: ({ model }) => writeFileSync(join(model, "config.json"), "[1, 2]"), code: "CONFIG_INVALID", names: "config.json" },
  { name: "config.json without hidden_size", setup: ({ model }) => editJson(join(model, "config.json"), ({ hidden_size: _, ...rest }) => rest), code: "CONFIG_INVALID", names: "config.json" },
  { name: "config.json with a string hidden_size", setup: ({ model }) => editJson(join(model, "config.json"), (config) => ({ ...config, hidden_size: "16" })), code: "CONFIG_INVALID", names: "config.json" },
  { name: "config.json is a folder", setup: ({ model }) => { rmSync(join(model, "config.json")); mkdirSync(join(model, "config.json")); }, code: "CONFIG_INVALID", names: "config.json" },
  { name: "unknown family", setup: ({ model }) => editJson(join(model, "config.json"), (config) => ({ ...config, model_type: "frobnicator" })), code: "UNSUPPORTED_FAMILY", names: "frobnicator" },
  { name: "quantized checkpoint", setup: ({ model }) => editJson(join(model, "config.json"), (config) => ({ ...config, quantization_config: { quant_method: "gptq", bits: 4 } })), code: "UNSUPPORTED_QUANTIZATION", names: "gptq" },
  { name: "target tensor with the wrong shape", setup: ({ model }) => retypeTensor(shardHolding(model, O_PROJ), O_PROJ, { dtype: "BF16", shape: [HIDDEN / 2, HIDDEN * 2] }), code: "TENSOR_SHAPE", names: O_PROJ },
  { name: "target tensor of integer dtype", setup: ({ model }) => retypeTensor(shardHolding(model, O_PROJ), O_PROJ, { dtype: "I16", shape: [HIDDEN, HIDDEN] }), code: /TENSOR_SHAPE|UNSUPPORTED_QUANTIZATION/, names: O_PROJ },
  { name: "no weights at all", setup: ({ model }) => { for (const name of readdirSync(model)) if (name.includes("safetensors")) rmSync(join(model, name)); }, code: "NO_SAFETENSORS", names: "model" },
  { name: "several weight files and no index", setup: ({ model }) => void rmSync(join(model, INDEX)), code: "NO_SAFETENSORS", names: SHARD_1 },
];

const directionCases: Omit<BadInputCase, "command">[] = [
  { name: "direction file missing", setup: ({ direction }) => void rmSync(direction), code: "DIRECTION_INVALID", names: DIRECTION },
  { name: "direction file is a folder", setup: ({ direction }) => { rmSync(direction); mkdirSync(direction); }, code: "DIRECTION_INVALID", names: DIRECTION },
  { name: "direction of the wrong dimension", setup: ({ direction }) => writeDirectionFile(direction, [{ name: "direction", shape: [HIDDEN / 2], values: randomDirection(HIDDEN / 2, 2) }]), code: "DIRECTION_DIMENSION", names: DIRECTION },
  { name: "direction holding NaN", setup: ({ direction }) => writeDirectionFile(direction, [{ name: "direction", shape: [HIDDEN], values: randomDirection(HIDDEN, 2).map((value, i) => (i === 3 ? NaN : value)) }]), code: "DIRECTION_NOT_FINITE", names: DIRECTION },
  { name: "direction holding Inf", setup: ({ direction }) => writeDirectionFile(direction, [{ name: "direction", shape: [HIDDEN], values: randomDirection(HIDDEN, 2).map((value, i) => (i === 0 ? -Infinity : value)) }]), code: "DIRECTION_NOT_FINITE", names: DIRECTION },
  { name: "zero direction", setup: ({ direction }) => writeDirectionFile(direction, [{ name: "direction", shape: [HIDDEN], values: new Array(HIDDEN).fill(0) }]), code: "DIRECTION_DEGENERATE", names: DIRECTION },
  {
    name: "subspace with dependent rows",
    setup: ({ direction }) => {
      const row = randomDirection(HIDDEN, 2);
      writeDirectionFile(direction, [{ name: "subspace", shape: [2, HIDDEN], values: [...row, ...row.map((value) => 2 * value)] }]);
    },
    code: "DIRECTION_DEGENERATE",
    names: DIRECTION,
  },
  { name: "truncated direction file", setup: ({ direction }) => void truncateSync(direction, readFileSync(direction).length - 5), code: /DIRECTION_INVALID|SAFETENSORS_/, names: DIRECTION },
  { name: "direction file of random bytes", setup: ({ direction }) => writeFileSync(direction, Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 167 + 13) % 256))), code: /DIRECTION_INVALID|SAFETENSORS_/, names: DIRECTION },
  { name: "direction file without a known tensor", setup: ({ direction }) => writeDirectionFile(direction, [{ name: "weights", shape: [HIDDEN], values: randomDirection(HIDDEN, 2) }]), code: "DIRECTION_INVALID", names: DIRECTION },
  {
    name: "truncated .npy direction",
    setup: ({ dir }) => {
      const header = "{'descr': '<f4', 'fortran_order': False, 'shape': (16,), }";
      const padded = header.padEnd(118, " ") + "\n";
      const bytes = Buffer.concat([Buffer.from([0x93]), Buffer.from("NUMPY"), Buffer.from([1, 0, padded.length, 0]), Buffer.from(padded), Buffer.alloc(20)]);
      writeFileSync(join(dir, "d.npy"), bytes);
      return ["--direction", join(dir, "d.npy")];
    },
    code: "DIRECTION_INVALID",
    names: "d.npy",
  },
  { name: ".json direction that is not JSON", setup: ({ dir }) => { writeFileSync(join(dir, "d.json"), "[0.1, 0.2,"); return ["--direction", join(dir, "d.json")]; }, code: "DIRECTION_INVALID", names: "d.json" },
  { name: ".json direction of strings", setup: ({ dir }) => { writeFileSync(join(dir, "d.json"), JSON.stringify(new Array(HIDDEN).fill("x"))); return ["--direction", join(dir, "d.json")]; }, code: "DIRECTION_INVALID", names: "d.json" },
  { name: "garbage .gguf direction", setup: ({ dir }) => { writeFileSync(join(dir, "d.gguf"), Buffer.concat([Buffer.from("GGUF"), Buffer.from([3, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 127])])); return ["--direction", join(dir, "d.gguf")]; }, code: "DIRECTION_INVALID", names: "d.gguf" },
  { name: "garbage .pt direction", setup: ({ dir }) => { writeFileSync(join(dir, "d.pt"), Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), Buffer.alloc(40, 0xee)])); return ["--direction", join(dir, "d.pt")]; }, code: "DIRECTION_INVALID", names: "d.pt" },
  {
    name: "direction layer out of range",
    setup: ({ direction }) => {
      writeDirectionFile(direction, [{ name: "directions", shape: [LAYERS + 1, HIDDEN], values: [0, 1, 2].flatMap((seed) => randomDirection(HIDDEN, seed + 5)) }]);
      return ["--direction-layer", "7"];
    },
    code: /INVALID_ARGUMENT|DIRECTION_INVALID/,
    names: "7",
  },
];

const argumentCases: Omit<BadInputCase, "command">[] = [
  { name: "reversed layer range", setup: () => ["--layers", "2:1"], code: "INVALID_ARGUMENT", names: "2:1" },
  { name: "layer range that is not a range", setup: () => ["--layers", "all-of-them"], code: "INVALID_ARGUMENT", names: "all-of-them" },
  { name: "unknown target kind", setup: () => ["--targets", "attn,lm_head"], code: "INVALID_ARGUMENT", names: "lm_head" },
  { name: "invalid --include pattern", setup: () => ["--include", "(o_proj"], code: "INVALID_ARGUMENT", names: "(o_proj" },
  { name: "invalid --exclude pattern", setup: () => ["--exclude", "[0-"], code: "INVALID_ARGUMENT", names: "[0-" },
  { name: "scale that is not a number", setup: () => ["--scale", "abc"], code: "INVALID_ARGUMENT", names: "--scale" },
  { name: "negative thread count", setup: () => ["--threads", "-2"], code: "INVALID_ARGUMENT", names: "--threads" },
  { name: "fractional thread count", setup: () => ["--threads", "1.5"], code: "INVALID_ARGUMENT", names: "--threads" },
  { name: "output is an existing file", setup: ({ dir }) => { writeFileSync(join(dir, "out"), "x"); }, code: "OUTPUT_EXISTS", names: "out" },
  { name: "single-value option given twice", setup: ({ dir }) => ["--repeat-out", join(dir, "other")], code: "USAGE", status: 2, names: "--out" },
  { name: "unknown option", setup: () => ["--scael", "2"], code: "USAGE", status: 2, names: "scael" },
  { name: "output below a file", setup: ({ dir }) => { writeFileSync(join(dir, "file"), "x"); return ["--out", join(dir, "file", "out")]; }, code: "IO", names: "file" },
];

const verifyCases: Omit<BadInputCase, "command">[] = [
  { name: "verify: modified folder lacks a shard", setup: ({ modified }) => void rmSync(join(modified, SHARD_2)), code: /INDEX_INVALID|VERIFY_FAILED|IO/, names: SHARD_2 },
  { name: "verify: modified shard truncated", setup: ({ modified }) => void truncateSync(join(modified, SHARD_1), readFileSync(join(modified, SHARD_1)).length - 64), code: /SAFETENSORS_|VERIFY_FAILED/, names: SHARD_1 },
  {
    name: "verify: a byte flipped outside the targets",
    setup: ({ modified }) => {
      const path = join(modified, SHARD_1);
      const bytes = readFileSync(path);
      bytes[bytes.length - 1] ^= 0x40; // the last tensor of shard 1 is a norm or q/k/v, never a target
      writeFileSync(path, bytes);
    },
    code: "VERIFY_FAILED",
    names: "modified",
  },
  { name: "verify: the original passed as the modified model", setup: () => undefined, modelArgument: ({ model }) => model, code: "VERIFY_FAILED", names: "model" },
  { name: "verify: modified folder does not exist", setup: ({ modified }) => void rmSync(modified, { recursive: true }), code: /INVALID_ARGUMENT|IO|NO_SAFETENSORS/, names: "modified" },
];

const inspectCases: Omit<BadInputCase, "command">[] = modelCases.filter((candidate) =>
  ["header length beyond the file", "shape whose product overflows", "index points outside the folder", "tensor in two shards", "config.json not JSON", "quantized checkpoint", "target tensor with the wrong shape"].includes(candidate.name),
);

const CASES: BadInputCase[] = [
  ...modelCases.map((entry) => ({ ...entry, command: "apply" as const })),
  ...directionCases.map((entry) => ({ ...entry, command: "apply" as const })),
  ...argumentCases.map((entry) => ({ ...entry, command: "apply" as const })),
  ...verifyCases.map((entry) => ({ ...entry, command: "verify" as const })),
  ...inspectCases.map((entry) => ({ ...entry, name: `inspect: ${entry.name}`, command: "inspect" as const })),
];

// --- running ------------------------------------------------------------------------------------------------------
// The CLI's main() runs in one child process for all cases (this same file, started with ABL_BAD_INPUT_BATCH):
// a process per case would cost ~0.35 s of start-up each. A few cases are repeated through bin/abliterate.js to
// show that the real process exits the same way.

interface PreparedCase {
  entry: BadInputCase;
  context: CaseContext;
  args: string[];
  json: boolean;
  before: string;
}

interface CaseResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

function hashTree(path: string): string {
  const hash = createHash("sha256");
  const walk = (current: string) => {
    const info = lstatSync(current);
    hash.update(`${current}\0${info.mode}\0`);
    if (info.isDirectory()) for (const name of readdirSync(current).sort()) walk(join(current, name));
    else if (info.isFile()) hash.update(readFileSync(current));
  };
  if (existsSync(path)) walk(path);
  return hash.digest("hex");
}

const inputsHash = (context: CaseContext) => hashTree(context.model) + hashTree(context.direction) + hashTree(context.modified);

function prepareCase(root: string, template: { model: string; direction: string; modified: string }, entry: BadInputCase, index: number): PreparedCase {
  const dir = join(root, `case-${index}`);
  mkdirSync(dir);
  const context: CaseContext = { model: join(dir, "model"), direction: join(dir, DIRECTION), dir, modified: join(dir, "modified") };
  cpSync(template.model, context.model, { recursive: true });
  cpSync(template.direction, context.direction);
  if (entry.command === "verify") cpSync(template.modified, context.modified, { recursive: true });
  const extra = entry.setup(context) ?? [];
  const base =
    entry.command === "apply"
      ? ["apply", context.model, "--direction", context.direction, "--out", join(dir, "out"), "--threads", "1"]
      : entry.command === "verify"
        ? ["verify", context.model, entry.modelArgument?.(context) ?? context.modified, "--direction", context.direction, "--threads", "1"]
        : ["inspect", context.model];
  const json = index % 2 === 0;
  return { entry, context, args: [...mergeOptions(base, extra), ...(json ? ["--json"] : [])], json, before: inputsHash(context) };
}

/** A case's `--name value` replaces the default's (a repeated option is a usage error); other tokens are appended. */
function mergeOptions(base: string[], extra: string[]): string[] {
  const args = [...base];
  for (let i = 0; i < extra.length; i += 1) {
    const at = args.indexOf(extra[i]);
    const hasValue = extra[i].startsWith("--") && i + 1 < extra.length && !extra[i + 1].startsWith("--");
    if (hasValue && at >= 0 && !extra[i].startsWith("--repeat")) {
      args[at + 1] = extra[i + 1];
      i += 1;
    } else {
      args.push(extra[i].replace(/^--repeat-/, "--"));
    }
  }
  return args;
}

function checkCase(prepared: PreparedCase, result: CaseResult): string[] {
  const { entry, context, json } = prepared;
  const problems: string[] = [];
  const errorLine = result.stderr.split("\n").find((line) => line.startsWith("error [")) ?? "";
  const code = /^error \[([A-Z0-9_]+)\]/.exec(errorLine)?.[1];
  const expectedName = typeof entry.names === "function" ? entry.names(context) : entry.names;
  const status = entry.status ?? 1;
  if (result.status !== status) problems.push(`exit ${result.status}, expected ${status}`);
  if (code === undefined) problems.push("no `error [CODE]:` line");
  else if (typeof entry.code === "string" ? code !== entry.code : !entry.code.test(code)) problems.push(`code ${code}, expected ${entry.code}`);
  if (!errorLine.includes(expectedName)) problems.push(`the error line does not name ${JSON.stringify(expectedName)}`);
  if (/internal error/i.test(result.stderr) || /\n\s+at .+:\d+:\d+\)?(\n|$)/.test(result.stderr)) problems.push("stack trace or internal error on stderr");
  if (json) {
    try {
      const printed = JSON.parse(result.stdout);
      // verify prints its report (ok: false, with the failures); every other failure prints the error object.
      const described = printed.error?.code === code && typeof printed.error?.message === "string";
      if (printed.ok !== false || !(described || (entry.command === "verify" && Array.isArray(printed.failures)))) problems.push(`--json printed ${result.stdout.trim()}`);
    } catch {
      problems.push(`--json stdout is not one JSON document: ${JSON.stringify(result.stdout.slice(0, 300))}`);
    }
  } else if (result.stdout !== "" && entry.command !== "verify") {
    problems.push(`stdout is not empty: ${JSON.stringify(result.stdout.slice(0, 200))}`);
  }
  const leftovers = readdirSync(context.dir).filter((name) => name.startsWith("out.") || (name === "out" && entry.name !== "output is an existing file"));
  if (leftovers.length > 0) problems.push(`left behind: ${leftovers.join(", ")}`);
  if (inputsHash(context) !== prepared.before) problems.push("an input was modified");
  return problems.length === 0 ? [] : [`${entry.command} — ${entry.name}: ${problems.join("; ")}\n    stderr: ${result.stderr.trim().split("\n").slice(-3).join(" | ")}`];
}

/** Child side: runs main() for each argument list in `jobsPath`, appending one JSON result line per case. */
async function runBatch(jobsPath: string): Promise<void> {
  const { main } = await import("../../lib/cli/main.js");
  const jobs = JSON.parse(readFileSync(jobsPath, "utf8")) as string[][];
  const resultsPath = `${jobsPath}.results`;
  const stdoutWrite = process.stdout.write.bind(process.stdout);
  const stderrWrite = process.stderr.write.bind(process.stderr);
  for (const args of jobs) {
    let stdout = "";
    let stderr = "";
    process.stdout.write = ((chunk: string | Uint8Array) => ((stdout += String(chunk)), true)) as typeof process.stdout.write;
    process.stderr.write = ((chunk: string | Uint8Array) => ((stderr += String(chunk)), true)) as typeof process.stderr.write;
    let status: number | null = null;
    try {
      status = await main(args);
    } catch (error) {
      stderr += `main() threw: ${String(error)}`;
    } finally {
      process.stdout.write = stdoutWrite;
      process.stderr.write = stderrWrite;
    }
    appendFileSync(resultsPath, `${JSON.stringify({ status, stdout, stderr })}\n`);
  }
  process.exit(0);
}

if (process.env.ABL_BAD_INPUT_BATCH) await runBatch(process.env.ABL_BAD_INPUT_BATCH);

test(`bad-input sweep: ${CASES.length} malformed models, directions, arguments and outputs through apply/verify/inspect`, async (t) => {
  const root = mkdtempSync(join(tmpdir(), "abl-badinput-"));
  try {
    const template = { model: join(root, "template-model"), direction: join(root, DIRECTION), modified: join(root, "template-modified") };
    writeTinyLlama({ dir: template.model, dtype: "BF16", tied: false, hidden: HIDDEN, intermediate: 24, layers: LAYERS, vocab: 40, shards: 2 });
    writeDirectionFile(template.direction, [{ name: "direction", shape: [HIDDEN], values: randomDirection(HIDDEN, 9) }]);
    const made = await runCli(["apply", template.model, "--direction", template.direction, "--out", template.modified, "--quiet"], { env: OFFLINE });
    assert.equal(made.status, 0, made.stderr);

    const prepared = CASES.map((entry, index) => prepareCase(root, template, entry, index));
    const jobsPath = join(root, "jobs.json");
    writeFileSync(jobsPath, JSON.stringify(prepared.map((item) => item.args)));
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url)], {
      env: { ...process.env, ...OFFLINE, ABL_BAD_INPUT_BATCH: jobsPath },
      encoding: "utf8",
      timeout: 90_000,
    });
    const results = existsSync(`${jobsPath}.results`)
      ? readFileSync(`${jobsPath}.results`, "utf8").trim().split("\n").filter(Boolean).map((line) => JSON.parse(line) as CaseResult)
      : [];
    assert.equal(
      results.length,
      CASES.length,
      `the batch stopped after ${results.length} case(s) (next: ${CASES[results.length]?.name}); status ${child.status} signal ${child.signal}\n${child.stderr}`,
    );
    const failures = prepared.flatMap((item, index) => checkCase(item, results[index]));
    if (process.env.ABL_BAD_INPUT_SHOW) {
      for (const [index, item] of prepared.entries()) t.diagnostic(`${item.entry.command} — ${item.entry.name}: ${results[index].status} ${results[index].stderr.split("\n").find((line) => line.startsWith("error [")) ?? ""}`);
    }

    // The same through the real executable for a few cases: identical exit status and error line.
    for (const index of [0, modelCases.length + 2, modelCases.length + directionCases.length + 3]) {
      const real = await runCli(prepared[index].args, { env: OFFLINE });
      const line = (text: string) => text.split("\n").find((candidate) => candidate.startsWith("error [")) ?? "";
      if (real.status !== results[index].status || line(real.stderr) !== line(results[index].stderr)) {
        failures.push(`${CASES[index].name}: bin/abliterate.js gave ${real.status} ${line(real.stderr)}; main() gave ${results[index].status} ${line(results[index].stderr)}`);
      }
    }
    t.diagnostic(`bad inputs: ${CASES.length} cases (${modelCases.length} models, ${directionCases.length} directions, ${argumentCases.length} arguments, ${verifyCases.length} verify, ${inspectCases.length} inspect)`);
    assert.deepEqual(failures, [], `${failures.length} of ${CASES.length} bad inputs were not diagnosed cleanly:\n${failures.join("\n")}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

async function applyWithSpecialFile(root: string, label: string, prepare: (dir: string) => void): Promise<string | undefined> {
  const model = join(root, "template");
  if (!existsSync(model)) writeTinyLlama({ dir: model, dtype: "BF16", tied: false, hidden: HIDDEN, intermediate: 24, layers: LAYERS, vocab: 40, shards: 1 });
  const direction = join(root, DIRECTION);
  if (!existsSync(direction)) writeDirectionFile(direction, [{ name: "direction", shape: [HIDDEN], values: randomDirection(HIDDEN, 9) }]);
  const dir = join(root, label);
  cpSync(model, dir, { recursive: true });
  prepare(dir);
  const out = join(root, `${label}-out`);
  const result = await runCli(["apply", dir, "--direction", direction, "--out", out, "--threads", "1"], { env: OFFLINE, timeoutMs: 4_000 });
  const clean = result.status === 1 && /^error \[[A-Z0-9_]+\]: /m.test(result.stderr) && !/internal error/.test(result.stderr);
  const succeeded = result.status === 0 && existsSync(join(out, "model.safetensors"));
  const leftovers = existsSync(`${out}.partial`) || existsSync(`${out}.lock`);
  if ((clean || succeeded) && !leftovers) return undefined;
  return `${label}: status ${result.status} signal ${result.signal}${leftovers ? ", left a partial folder or lock" : ""}: ${result.stderr.trim().split("\n").slice(-2).join(" | ")}`;
}

test("a FIFO and a symlink loop among the model's other files fail cleanly (or are copied), never hang", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-special-"));
  try {
    const outcomes = [
      await applyWithSpecialFile(root, "fifo-extra", (dir) => execFileSync("mkfifo", [join(dir, "notes.txt")])),
      await applyWithSpecialFile(root, "symlink-loop", (dir) => symlinkSync(".", join(dir, "loop"))),
    ];
    assert.deepEqual(outcomes.filter(Boolean), []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test(
  "a FIFO where the weights or config.json should be fails cleanly instead of blocking forever",
  async () => {
    const root = mkdtempSync(join(tmpdir(), "abl-special-"));
    try {
      await applyWithSpecialFile(root, "warm-up", () => undefined);
      const outcomes = await Promise.all([
        applyWithSpecialFile(root, "fifo-shard", (dir) => {
          rmSync(join(dir, "model.safetensors"));
          execFileSync("mkfifo", [join(dir, "model.safetensors")]);
        }),
        applyWithSpecialFile(root, "fifo-config", (dir) => {
          rmSync(join(dir, "config.json"));
          execFileSync("mkfifo", [join(dir, "config.json")]);
        }),
      ]);
      assert.deepEqual(outcomes.filter(Boolean), []);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  },
);
