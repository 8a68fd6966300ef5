/**
 * Model cards: front matter checked with the emulator's strict YAML-subset parser (independent of lib/hub),
 * existing cards extended without disturbing their other lines, and a second push replacing, not stacking.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { buildModelCard, CARD_BEGIN, CARD_END, licenseOfCard } from "../../lib/hub/model-card.js";
import { readTopLevel, setTopLevel, splitFrontMatter, yamlScalar } from "../../lib/hub/front-matter.js";
import type { Provenance } from "../../lib/provenance/provenance.js";
import { parseFrontMatter, parseYamlSubset } from "../hub-emulator/simple-yaml.js";

const provenance: Provenance = {
  tool: { name: "abliterate", version: "9.8.7" },
  created: "2025-01-01T00:00:00.000Z",
  source: { repo: "org/base-model", revision: "main", commit: "0123456789abcdef0123456789abcdef01234567" },
  model: { family: "llama", model_type: "llama", hidden_size: 16, num_layers: 3 },
  direction: { file: "refusal.safetensors", sha256: "ab".repeat(32), kind: "directions", direction_layer: 2, rank: 1 },
  scale: 1.5,
  layers: "1:3",
  targets: ["attn", "mlp"],
  norm_preserving: false,
  tied_embeddings: true,
  notes: ["lm_head is tied to the embedding; editing the embedding edits the unembedding too"],
  tensors_changed: [
    { name: "model.layers.1.self_attn.o_proj.weight", shard: "model.safetensors", kind: "attn", layer: 1, orientation: "linear" },
    { name: "model.layers.1.mlp.down_proj.weight", shard: "model.safetensors", kind: "mlp", layer: 1, orientation: "linear" },
  ],
  verification: { passed: true, tensors_checked: 2, elements_checked: 1234, mismatches: 0, max_ulp_error: 0.5, max_ablation_residual: 3.25e-7, untouched_identical: true },
};
const endpoint = "https://huggingface.co";

test("a generated card has the required front matter and the parameters and verification numbers", () => {
  const card = buildModelCard({ repo: "me/base-model-abliterated", provenance, endpoint, baseLicense: { license: "apache-2.0" } });
  const parsed = parseFrontMatter(card);
  assert.ok(parsed, "card starts with front matter");
  assert.deepEqual(parsed.data, { base_model: "org/base-model", tags: ["abliterated"], library_name: "transformers", license: "apache-2.0" });
  const body = parsed.body;
  assert.match(body, /^# base-model-abliterated$/m);
  assert.equal(body.split(CARD_BEGIN).length, 2);
  assert.ok(body.indexOf(CARD_BEGIN) < body.indexOf(CARD_END));
  for (const row of [
    "| Scale α | 1.5 |",
    "| Layers | 1:3 |",
    "| Targets | attn, mlp |",
    "| Tied embeddings | yes |",
    "| Tensors changed | 2 |",
    "| Tensors checked | 2 |",
    "| Elements checked | 1234 |",
    "| Elements off by more than 1 ulp | 0 |",
    "| Largest error (ulp) | 0.5 |",
    "| Largest remaining component along r | 3.25e-7 |",
    "| Untouched tensors byte-identical | yes |",
  ]) {
    assert.ok(body.includes(row), `card has ${row}`);
  }
  assert.match(body, /\*\*passed\*\*/);
  assert.match(body, /\[org\/base-model\]\(https:\/\/huggingface\.co\/org\/base-model\) @ `0123456789ab`/);
  assert.match(body, /`refusal\.safetensors` \(directions, layer 2, rank 1; sha256 `abababababababab…`\)/);
  assert.match(body, /abliterate\)? 9\.8\.7/);
  assert.match(body, /^- lm_head is tied/m);
});

test("an existing card is kept and extended: other keys byte for byte, license kept, tags merged", () => {
  const existing = [
    "---",
    "language:",
    "- en",
    "- fr",
    "license: other",
    "license_name: llama3",
    "license_link: LICENSE",
    "base_model: meta/older-base",
    "tags: [chat, 'llama-3']",
    "model-index:",
    "  - name: base",
    "    results: []",
    "---",
    "",
    "# Base model",
    "",
    "Original description.",
    "",
  ].join("\n");
  const card = buildModelCard({ repo: "me/x", provenance, existing, endpoint, baseLicense: { license: "mit" } });
  const { yaml, body } = splitFrontMatter(card);
  assert.ok(yaml);
  // Untouched blocks survive exactly, including YAML the strict parser would refuse (model-index).
  assert.ok(yaml.includes("language:\n- en\n- fr\n"));
  assert.ok(yaml.includes("model-index:\n  - name: base\n    results: []"));
  assert.ok(yaml.includes("license: other\nlicense_name: llama3\nlicense_link: LICENSE"));
  assert.equal(readTopLevel(yaml, "base_model"), "org/base-model");
  assert.deepEqual(readTopLevel(yaml, "tags"), ["chat", "llama-3", "abliterated"]);
  assert.equal(readTopLevel(yaml, "library_name"), "transformers");
  assert.equal(readTopLevel(yaml, "license"), "other", "the card's own license wins over the base lookup");
  assert.ok(body.indexOf(CARD_BEGIN) < body.indexOf("## Original model card (org/base-model)"));
  assert.ok(body.includes("# Base model\n\nOriginal description."));
});

test("per-layer and projected runs say so in the parameters", () => {
  const card = buildModelCard({ repo: "me/x", provenance: { ...provenance, per_layer: true, projection: "projected", direction: { ...provenance.direction, harmless_row: 3 } }, endpoint });
  assert.ok(card.includes("| Per-layer directions | yes: each writer uses the direction of the stream it writes into |"));
  assert.ok(card.includes("| Projection | projected (r made orthogonal to the mean harmless activation at row 3) |"));
  assert.ok(!buildModelCard({ repo: "me/x", provenance, endpoint }).includes("Projection"));
});

test("pushing again replaces the marked section instead of stacking a second one", () => {
  const first = buildModelCard({ repo: "me/x", provenance, endpoint });
  const again = buildModelCard({ repo: "me/x", provenance: { ...provenance, scale: 2 }, existing: first, endpoint });
  assert.equal(again.split(CARD_BEGIN).length, 2);
  assert.ok(again.includes("| Scale α | 2 |"));
  assert.ok(!again.includes("| Scale α | 1.5 |"));
  assert.deepEqual(parseFrontMatter(again)?.data.tags, ["abliterated"]);
  assert.equal(buildModelCard({ repo: "me/x", provenance: { ...provenance, scale: 2 }, existing: again, endpoint }), again, "idempotent");
});

test("without abliteration.json an existing card is left exactly as it is", () => {
  const existing = "# just a readme\n";
  assert.equal(buildModelCard({ repo: "me/x", existing, endpoint }), existing);
  const generated = parseFrontMatter(buildModelCard({ repo: "me/x", endpoint }));
  assert.deepEqual(generated?.data, { library_name: "transformers" });
});

test("license_name and license_link travel with license: other", () => {
  const base = "---\nlicense: other\nlicense_name: gemma\nlicense_link: https://ai.google.dev/gemma/terms\n---\n";
  const license = licenseOfCard(base);
  assert.deepEqual(license, { license: "other", licenseName: "gemma", licenseLink: "https://ai.google.dev/gemma/terms" });
  const card = buildModelCard({ repo: "me/x", provenance, endpoint, baseLicense: license });
  assert.deepEqual(parseFrontMatter(card)?.data.license_link, "https://ai.google.dev/gemma/terms");
  assert.equal(licenseOfCard("# no front matter"), undefined);
});

test("scalars are written so YAML reads back the same string", () => {
  for (const value of ["apache-2.0", "org/name", "yes", "1.0", "null", "a: b", "#tag", "- dash", 'quote"d', "it's", "~", "ünïcode", "@at", "*star"]) {
    const yaml = setTopLevel(undefined, "key", value);
    assert.equal(parseYamlSubset(yaml).key, value, `${value} → ${yamlScalar(value)}`);
  }
  const list = setTopLevel("other: 1", "tags", ["x", "true", "a b"]);
  assert.deepEqual(parseYamlSubset(list), { other: 1, tags: ["x", "true", "a b"] });
});
