/**
 * Through the CLI, on the transformers-written golden checkpoints: apply then verify passes for every family;
 * inspect reports the γ-aware writers; the variant flags reach the surgery, are recorded in abliteration.json and
 * are picked up again by verify; every direction format works as --direction.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readStoredZip } from "../../lib/direction-files/read-zip.js";
import {
  buildGguf,
  decodeTensor,
  GOLDEN_DIRECTION,
  goldenModelDir,
  llamaLikeTensors,
  PROJECTION_GOLDEN_DIR,
  readGoldenManifest,
  readTensor,
  writeStoredZip,
  writeSyntheticCheckpoint,
} from "../helpers/family-fixtures.js";
import { runCli } from "../helpers/run-cli.js";
import { makeRandom, writeDirectionFile } from "../helpers/tiny-llama.js";

const manifest = readGoldenManifest();
const D = manifest.hidden_size;
let root: string;
let runs = 0;

before(() => {
  root = mkdtempSync(join(tmpdir(), "abl-families-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

function gaussianRows(count: number, seed: number): number[][] {
  const random = makeRandom(seed);
  return Array.from({ length: count }, () => Array.from({ length: D }, () => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random())));
}

async function applyAndVerify(model: string, applyArgs: string[], verifyArgs: string[] = []) {
  const out = join(root, `out-${runs++}`);
  const applied = await runCli(["apply", model, "--out", out, "--json", "--threads", "1", ...applyArgs]);
  assert.equal(applied.status, 0, applied.stderr);
  const verified = await runCli(["verify", model, out, "--threads", "1", ...verifyArgs]);
  return { out, applied: JSON.parse(applied.stdout), verified, provenance: JSON.parse(readFileSync(join(out, "abliteration.json"), "utf8")) };
}

for (const [family, golden] of Object.entries(manifest.families)) {
  test(`${family}: apply then verify through the CLI`, async () => {
    const { applied, verified, provenance } = await applyAndVerify(goldenModelDir(family), ["--direction", GOLDEN_DIRECTION], ["--direction", GOLDEN_DIRECTION]);
    assert.equal(applied.ok, true);
    assert.equal(applied.tensorsChanged, Object.keys(golden.targets).length);
    assert.equal(verified.status, 0, verified.stderr);
    assert.match(verified.stdout, new RegExp(`verified: ${Object.keys(golden.targets).length} tensor\\(s\\)`));
    assert.equal(provenance.model.model_type, golden.model_type);
    if (!golden.lm_head_saved) assert.ok(applied.notes.some((note: string) => /tied to the token embedding/.test(note)), "tied embeddings are reported");
    if (Object.values(golden.targets).some((target) => target.post_norm)) assert.ok(applied.notes.some((note: string) => /γ-aware/.test(note)));
  });
}

test("inspect names the post-norm each gemma2 writer is γ-aware through", async () => {
  const result = await runCli(["inspect", goldenModelDir("gemma2")]);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /model\.layers\.1\.self_attn\.o_proj\.weight .* γ-aware via model\.layers\.1\.post_attention_layernorm\.weight/);
  assert.match(result.stdout, /model\.layers\.0\.mlp\.down_proj\.weight .* γ-aware via model\.layers\.0\.post_feedforward_layernorm\.weight/);
  assert.match(result.stdout, /tied lm_head:  yes/);
});

test("variant flags are applied, recorded, and verify reads them back from abliteration.json", async () => {
  const model = goldenModelDir("llama");
  const layers = 2;
  const directions = join(root, "per-layer.safetensors");
  writeDirectionFile(directions, [
    { name: "directions", shape: [layers + 1, D], values: gaussianRows(layers + 1, 1).flat(), dtype: "F64" },
    { name: "harmless_mean", shape: [layers + 1, D], values: gaussianRows(layers + 1, 2).flat(), dtype: "F64" },
  ]);

  const perLayer = await applyAndVerify(model, ["--direction", directions, "--per-layer", "--biprojected", "--scale", "0.75", "--norm-preserving"], ["--direction", directions]);
  assert.equal(perLayer.verified.status, 0, perLayer.verified.stderr);
  assert.equal(perLayer.provenance.per_layer, true);
  assert.equal(perLayer.provenance.projection, "biprojected");
  assert.equal(perLayer.provenance.scale, 0.75);
  assert.equal(perLayer.provenance.norm_preserving, true);
  const streams = Object.fromEntries(perLayer.provenance.tensors_changed.map((entry: { name: string; stream: number }) => [entry.name, entry.stream]));
  assert.equal(streams["model.embed_tokens.weight"], 0);
  assert.equal(streams["model.layers.1.mlp.down_proj.weight"], 2);
  // Verifying with a different variant than the one applied fails.
  const wrong = await runCli(["verify", model, perLayer.out, "--direction", directions, "--scale", "1"]);
  assert.notEqual(wrong.status, 0);
  assert.match(wrong.stderr, /outside 1 ulp of the fp64 reference/);

  const projected = await applyAndVerify(model, ["--direction", directions, "--direction-layer", "1", "--projected"], ["--direction", directions]);
  assert.equal(projected.verified.status, 0, projected.verified.stderr);
  assert.equal(projected.provenance.projection, "projected");
  assert.equal(projected.provenance.direction.harmless_row, 1);

  const both = await runCli(["apply", model, "--direction", directions, "--out", join(root, "never"), "--projected", "--biprojected", "--direction-layer", "1"]);
  assert.notEqual(both.status, 0);
  assert.match(both.stderr, /--projected and --biprojected are alternatives/);
});

test("every direction format works as --direction: .npy, .json, .pt, llama.cpp .gguf", async () => {
  const model = goldenModelDir("qwen3_moe");
  const directions = join(PROJECTION_GOLDEN_DIR, "directions");
  for (const file of ["direction-f32.npy", "dict-f32.pt"]) {
    const run = await applyAndVerify(model, ["--direction", join(directions, file)], ["--direction", join(directions, file)]);
    assert.equal(run.verified.status, 0, `${file}: ${run.verified.stderr}`);
    assert.equal(run.provenance.direction.format, file.endsWith(".pt") ? "pt" : "npy");
  }
  const json = join(root, "direction.json");
  writeFileSync(json, JSON.stringify({ direction: gaussianRows(1, 3)[0] }));
  assert.equal((await applyAndVerify(model, ["--direction", json], ["--direction", json])).verified.status, 0);

  // A control vector for this 2-layer model: direction.1 is layer 1's output, our row 2.
  const gguf = join(root, "control.gguf");
  writeFileSync(gguf, buildGguf({ kv: [["general.architecture", "controlvector"]], tensors: [{ name: "direction.1", values: gaussianRows(1, 4)[0] }] }));
  const layerOne = await applyAndVerify(model, ["--direction", gguf, "--direction-layer", "2"], ["--direction", gguf]);
  assert.equal(layerOne.verified.status, 0, layerOne.verified.stderr);
  const absent = await runCli(["apply", model, "--direction", gguf, "--direction-layer", "1", "--out", join(root, "never")]);
  assert.notEqual(absent.status, 0);
  assert.match(absent.stderr, /row 1 is absent .*direction\.N is row N \+ 1/);

  // The refused pickle reaches the user as a one-line error naming the global, before anything is written.
  const evil = join(root, "evil.pt");
  const entries = readStoredZip(readFileSync(join(directions, "dict-f32.pt")), "dict-f32.pt");
  const pickle = Buffer.from(entries.get("dict-f32/data.pkl")!).toString("latin1").replace("collections\nOrderedDict\n", "posix\nsystem\n");
  writeFileSync(evil, writeStoredZip([...entries].map(([name, data]) => ({ name, data: name.endsWith("data.pkl") ? Buffer.from(pickle, "latin1") : data }))));
  const refused = await runCli(["apply", model, "--direction", evil, "--out", join(root, "never")]);
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /DIRECTION_INVALID.*refused pickle global posix\.system/);
  assert.ok(!existsSync(join(root, "never")) && !existsSync(join(root, "never.partial")), "nothing was written");
});

test("fused expert tensors: [E, d, in] (mixtral, transformers ≥ 5 layout) and [E, in, d] (llama4) lose r in every expert", async () => {
  const experts = 3;
  const inter = 5;
  const layout = (kind: "mixtral" | "llama4") =>
    llamaLikeTensors({
      prefix: "model.",
      hidden: D,
      layers: 2,
      mlp: (_layer, p) =>
        kind === "mixtral"
          ? [
              { name: `${p}mlp.gate.weight`, shape: [experts, D] },
              { name: `${p}mlp.experts.gate_up_proj`, shape: [experts, 2 * inter, D] },
              { name: `${p}mlp.experts.down_proj`, shape: [experts, D, inter] },
            ]
          : [
              { name: `${p}feed_forward.router.weight`, shape: [experts, D] },
              { name: `${p}feed_forward.experts.gate_up_proj`, shape: [experts, D, 2 * inter] },
              { name: `${p}feed_forward.experts.down_proj`, shape: [experts, inter, D] },
            ],
    });
  const r = gaussianRows(1, 11)[0];
  const direction = join(root, "fused-direction.safetensors");
  writeDirectionFile(direction, [{ name: "direction", shape: [D], values: r, dtype: "F64" }]);
  const unit = r.map((value) => value / Math.hypot(...r));
  for (const kind of ["mixtral", "llama4_text"] as const) {
    const model = join(root, `fused-${kind}`);
    writeSyntheticCheckpoint({ dir: model, config: { model_type: kind, hidden_size: D, num_hidden_layers: 2 }, tensors: layout(kind === "mixtral" ? "mixtral" : "llama4"), dtype: "F32" });
    const run = await applyAndVerify(model, ["--direction", direction], ["--direction", direction]);
    assert.equal(run.verified.status, 0, run.verified.stderr);
    const name = kind === "mixtral" ? "model.layers.1.mlp.experts.down_proj" : "model.layers.1.feed_forward.experts.down_proj";
    const edited = await readTensor(join(run.out, "model.safetensors"), name);
    const values = decodeTensor(edited);
    for (let e = 0; e < experts; e += 1) {
      // Every vector the expert writes: columns of [d, inter] or rows of [inter, d].
      for (let j = 0; j < inter; j += 1) {
        const written = Array.from({ length: D }, (_, i) => (kind === "mixtral" ? values[e * D * inter + i * inter + j] : values[e * inter * D + j * D + i]));
        const along = written.reduce((sum, value, i) => sum + value * unit[i], 0);
        assert.ok(Math.abs(along) < 1e-5, `${kind} expert ${e} vector ${j}: rᵀw = ${along}`);
      }
    }
    const untouched = await readTensor(join(run.out, "model.safetensors"), name.replace("down_proj", "gate_up_proj"));
    assert.deepEqual(untouched.bytes, (await readTensor(join(model, "model.safetensors"), name.replace("down_proj", "gate_up_proj"))).bytes);
  }
});
