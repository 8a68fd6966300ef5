/**
 * End to end through the CLI on generated tiny Llama-shaped checkpoints (3 shards + index; tied and untied;
 * BF16, F16, F32): apply then verify; byte-level checks done here independently of the tool's own verifier.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readCheckpoint } from "../../lib/safetensors/read-checkpoint.js";
import { runCli } from "../helpers/run-cli.js";
import { applyCommand } from "../../lib/cli/apply-command.js";
import { directionCommand } from "../../lib/cli/direction-command.js";
import { verifyCommand } from "../../lib/cli/verify-command.js";
import { randomDirection, writeDirectionFile, writeTinyLlama, TINY_EXTRA_FILES, type FloatDtype } from "../helpers/tiny-llama.js";

const HIDDEN = 16;

function scratch(): string {
  return mkdtempSync(join(tmpdir(), "abl-e2e-"));
}

function isTarget(name: string): boolean {
  return /embed_tokens\.weight$|o_proj\.weight$|down_proj\.weight$/.test(name);
}

for (const dtype of ["BF16", "F16", "F32"] as FloatDtype[]) {
  for (const tied of [true, false]) {
    test(`apply then verify: ${dtype}, ${tied ? "tied" : "untied"} embeddings, 3 shards`, async () => {
      const root = scratch();
      try {
        const model = join(root, "model");
        const out = join(root, "out");
        const direction = join(root, "refusal.safetensors");
        writeTinyLlama({ dir: model, dtype, tied, hidden: HIDDEN });
        writeDirectionFile(direction, [{ name: "direction", shape: [HIDDEN], values: randomDirection(HIDDEN, 7) }]);

        const applied = await runCli(["apply", model, "--direction", direction, "--out", out, "--json"]);
        assert.equal(applied.status, 0, applied.stderr);
        const result = JSON.parse(applied.stdout);
        assert.equal(result.ok, true);
        assert.equal(result.verification.passed, true);
        // embed + 3 × (o_proj, down_proj)
        assert.equal(result.tensorsChanged, 7);
        assert.ok(!existsSync(`${out}.partial`), "partial folder is gone after success");
        assert.ok(!existsSync(`${out}.lock`), "lock released");

        // Non-weight files byte for byte, the index included.
        for (const file of [...Object.keys(TINY_EXTRA_FILES), "config.json", "model.safetensors.index.json"]) {
          assert.deepEqual(readFileSync(join(out, file)), readFileSync(join(model, file)), file);
        }
        // Every tensor outside the targets is byte-identical; every target changed; headers identical.
        const original = await readCheckpoint(model);
        const modified = await readCheckpoint(out);
        assert.equal(modified.shards.length, 3);
        for (const [name, { shard, tensor }] of original.tensorLocations) {
          const before = readFileSync(shard.path).subarray(tensor.byteOffset, tensor.byteOffset + tensor.byteLength);
          const location = modified.tensorLocations.get(name)!;
          assert.equal(location.tensor.byteOffset, tensor.byteOffset, `${name} keeps its offset`);
          const after = readFileSync(location.shard.path).subarray(tensor.byteOffset, tensor.byteOffset + tensor.byteLength);
          if (isTarget(name)) assert.notDeepEqual(after, before, `${name} was edited`);
          else assert.deepEqual(after, before, `${name} is untouched`);
        }
        for (const shard of original.shards) {
          const name = shard.path.split("/").pop()!;
          assert.deepEqual(readFileSync(join(out, name)).subarray(0, shard.dataStart), readFileSync(shard.path).subarray(0, shard.dataStart), `${name} header`);
        }
        const provenance = JSON.parse(readFileSync(join(out, "abliteration.json"), "utf8"));
        assert.equal(provenance.scale, 1);
        assert.equal(provenance.layers, "0:3");
        assert.equal(provenance.tied_embeddings, tied);
        assert.equal(provenance.tensors_changed.length, 7);
        assert.match(provenance.direction.sha256, /^[0-9a-f]{64}$/);

        const verified = await runCli(["verify", model, out, "--direction", direction]);
        assert.equal(verified.status, 0, verified.stderr);
        assert.match(verified.stdout, /verified: 7 tensor\(s\)/);
        if (tied) assert.match(applied.stdout, /tied to the token embedding/);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    });
  }
}

test("verify names the tensor when one element of the output is flipped", async () => {
  const root = scratch();
  try {
    const model = join(root, "model");
    const out = join(root, "out");
    const direction = join(root, "d.safetensors");
    writeTinyLlama({ dir: model, dtype: "BF16", tied: false, hidden: HIDDEN });
    writeDirectionFile(direction, [{ name: "direction", shape: [HIDDEN], values: randomDirection(HIDDEN, 3) }]);
    const applied = await runCli(["apply", model, "--direction", direction, "--out", out, "--quiet"]);
    assert.equal(applied.status, 0);
    assert.deepEqual([applied.stdout, applied.stderr], ["", ""], "--quiet prints nothing when all is well");
    const checkpoint = await readCheckpoint(out);
    const { shard, tensor } = checkpoint.tensorLocations.get("model.layers.1.mlp.down_proj.weight")!;
    const bytes = readFileSync(shard.path);
    bytes[tensor.byteOffset + 37] ^= 0x40; // one exponent bit of one element
    writeFileSync(shard.path, bytes);
    const verified = await runCli(["verify", model, out, "--direction", direction]);
    assert.notEqual(verified.status, 0);
    assert.match(verified.stdout + verified.stderr, /model\.layers\.1\.mlp\.down_proj\.weight/);
    assert.match(verified.stderr, /VERIFY_FAILED/);

    // A flipped byte in an untouched tensor is caught too, and named.
    bytes[tensor.byteOffset + 37] ^= 0x40;
    const untouched = checkpoint.tensorLocations.get("model.layers.1.mlp.up_proj.weight")!;
    assert.equal(untouched.shard.path, shard.path, "fixture keeps both tensors in one shard");
    bytes[untouched.tensor.byteOffset + 3] ^= 0x01;
    writeFileSync(shard.path, bytes);
    const again = await runCli(["verify", model, out, "--direction", direction]);
    assert.notEqual(again.status, 0);
    assert.match(again.stdout + again.stderr, /model\.layers\.1\.mlp\.up_proj\.weight/);

    // --quiet: errors only. The failure still names the tensor, on stderr; stdout stays empty.
    const quiet = await runCli(["verify", model, out, "--direction", direction, "--quiet"]);
    assert.notEqual(quiet.status, 0);
    assert.equal(quiet.stdout, "");
    assert.match(quiet.stderr, /model\.layers\.1\.mlp\.up_proj\.weight/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a leftover DIR.partial from a killed run is never taken as output, and a rerun replaces it", async () => {
  const root = scratch();
  try {
    const model = join(root, "model");
    const out = join(root, "out");
    const direction = join(root, "d.safetensors");
    writeTinyLlama({ dir: model, dtype: "F16", tied: true, hidden: HIDDEN });
    writeDirectionFile(direction, [{ name: "direction", shape: [HIDDEN], values: randomDirection(HIDDEN, 5) }]);
    mkdirSync(`${out}.partial`);
    // A killed run's partial folder carries the marker it wrote when it created the folder.
    writeFileSync(join(`${out}.partial`, ".abliterate-partial"), JSON.stringify({ tool: "abliterate", pid: 999_999_999 }));
    writeFileSync(join(`${out}.partial`, "model-00001-of-00003.safetensors"), "garbage from a killed run");
    // verify refuses to treat the partial folder's sibling as a model: DIR does not exist yet.
    const early = await runCli(["verify", model, out, "--direction", direction]);
    assert.notEqual(early.status, 0);
    const applied = await runCli(["apply", model, "--direction", direction, "--out", out]);
    assert.equal(applied.status, 0, applied.stderr);
    assert.ok(!existsSync(`${out}.partial`));
    assert.deepEqual(readdirSync(out).sort(), readdirSync(model).concat("abliteration.json").sort());
    assert.equal((await runCli(["verify", model, out, "--direction", direction])).status, 0);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("an existing output needs --force; bad directions are rejected before anything is written", async () => {
  const root = scratch();
  try {
    const model = join(root, "model");
    const out = join(root, "out");
    writeTinyLlama({ dir: model, dtype: "F32", tied: false, hidden: HIDDEN });
    const cases: [string, { name: string; shape: number[]; values: number[] }[], RegExp][] = [
      ["wrong-dim", [{ name: "direction", shape: [HIDDEN + 1], values: randomDirection(HIDDEN + 1, 1) }], /DIRECTION_DIMENSION.*dimension 17.*hidden_size is 16/],
      ["nan", [{ name: "direction", shape: [HIDDEN], values: randomDirection(HIDDEN, 1).map((v, i) => (i === 3 ? NaN : v)) }], /DIRECTION_NOT_FINITE.*NaN at element 3/],
      ["zero", [{ name: "direction", shape: [HIDDEN], values: new Array(HIDDEN).fill(0) }], /DIRECTION_DEGENERATE.*zero norm/],
      ["per-layer-without-index", [{ name: "directions", shape: [4, HIDDEN], values: randomDirection(4 * HIDDEN, 2) }], /--direction-layer/],
    ];
    for (const [label, tensors, expected] of cases) {
      const file = join(root, `${label}.safetensors`);
      writeDirectionFile(file, tensors);
      const result = await runCli(["apply", model, "--direction", file, "--out", out]);
      assert.equal(result.status, 1, label);
      assert.match(result.stderr, expected, label);
      assert.match(result.stderr, new RegExp(`${label}\\.safetensors`), `${label}: the message names the file`);
      assert.ok(!existsSync(out) && !existsSync(`${out}.partial`), `${label}: nothing written`);
    }
    const good = join(root, "good.safetensors");
    writeDirectionFile(good, [{ name: "directions", shape: [4, HIDDEN], values: randomDirection(4 * HIDDEN, 2) }]);
    assert.equal((await runCli(["apply", model, "--direction", good, "--direction-layer", "2", "--out", out])).status, 0);
    const again = await runCli(["apply", model, "--direction", good, "--direction-layer", "2", "--out", out]);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /OUTPUT_EXISTS/);
    const forced = await runCli(["apply", model, "--direction", good, "--direction-layer", "1", "--out", out, "--force", "--layers", "1:3", "--targets", "mlp"]);
    assert.equal(forced.status, 0, forced.stderr);
    const provenance = JSON.parse(readFileSync(join(out, "abliteration.json"), "utf8"));
    assert.equal(provenance.direction.direction_layer, 1);
    assert.deepEqual(provenance.tensors_changed.map((t: { name: string }) => t.name), ["model.layers.1.mlp.down_proj.weight", "model.layers.2.mlp.down_proj.weight"]);
    // verify picks the options up from abliteration.json.
    assert.equal((await runCli(["verify", model, out, "--direction", good])).status, 0);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("inspect lists what would change, with orientation and the tied-embedding note", async () => {
  const root = scratch();
  try {
    const model = join(root, "model");
    writeTinyLlama({ dir: model, dtype: "BF16", tied: true, hidden: HIDDEN });
    const human = await runCli(["inspect", model]);
    assert.equal(human.status, 0, human.stderr);
    assert.match(human.stdout, /family: +llama/);
    assert.match(human.stdout, /model\.layers\.2\.self_attn\.o_proj\.weight +\[16, 16\] BF16 +attn +linear/);
    assert.match(human.stdout, /model\.embed_tokens\.weight +\[40, 16\] BF16 +embed +rows/);
    assert.match(human.stdout, /tied/);
    const json = JSON.parse((await runCli(["inspect", model, "--json"])).stdout);
    assert.equal(json.hiddenSize, 16);
    assert.equal(json.numLayers, 3);
    assert.equal(json.targets.length, 7);
    assert.equal(json.tiedEmbeddings, true);

    writeFileSync(join(model, "config.json"), JSON.stringify({ model_type: "mamba", hidden_size: 16, num_hidden_layers: 3 }));
    const unknown = await runCli(["inspect", model]);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /UNSUPPORTED_FAMILY.*"mamba".*llama.*--include/);
    const escaped = await runCli(["inspect", model, "--include", String.raw`o_proj\.weight$`, "--orientation", "linear"]);
    assert.equal(escaped.status, 0, escaped.stderr);
    assert.match(escaped.stdout, /would change: +3 tensor/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("--help lists every command and exits 0; usage errors exit 2 without a stack trace", async () => {
  const help = await runCli(["--help"]);
  assert.equal(help.status, 0, help.stderr);
  for (const command of ["apply", "verify", "inspect", "push", "activations", "direction", "demo"]) {
    assert.match(help.stdout + help.stderr, new RegExp(`abliterate ${command}\\b`), command);
  }
  // Descriptions are wrapped at word boundaries: with the line breaks and column padding folded back into single
  // spaces, each sentence reads whole (yargs' ESM build cut words in two at the column edge).
  const folded = (help.stdout + help.stderr).replace(/\s+/g, " ");
  for (const module of [applyCommand, verifyCommand, directionCommand]) {
    assert.ok(folded.includes(String(module.describe)), `help shows "${String(module.describe)}" unbroken`);
  }
  const usage = await runCli(["apply", "--no-such-flag"]);
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /error \[USAGE\]/);
  assert.doesNotMatch(usage.stderr, /internal error|    at /);
  const missing = await runCli(["./some-model", "--direction", "d.safetensors"]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /INVALID_ARGUMENT.*--out DIR, --push REPO/);
  // Refused before any download or pipeline stage runs (the model folder does not even exist).
  const perLayer = await runCli(["./some-model", "--out", "./never-written", "--per-layer"]);
  assert.equal(perLayer.status, 1);
  assert.match(perLayer.stderr, /INVALID_ARGUMENT.*--per-layer needs --direction FILE/);
});
