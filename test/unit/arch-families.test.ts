/**
 * Family table → surgery plan, on synthetic checkpoints for layouts the golden set (written by transformers 5)
 * does not contain: the newer multimodal nesting, fused expert tensors, GPT-2 without its `transformer.` prefix,
 * plus the rules that must never edit routers, readers, vision towers or an untied lm_head.
 * planSurgery reads only headers and norm weights, so no native code runs here.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describeForward, findFamily, forwardModelTypes, supportedModelTypes } from "../../lib/arch/families.js";
import { parseModelConfig } from "../../lib/arch/model-config.js";
import type { DirectionBasis } from "../../lib/direction-files/select-basis.js";
import { AbliterateError, ErrorCodes } from "../../lib/errors.js";
import { readCheckpoint } from "../../lib/safetensors/read-checkpoint.js";
import { planSurgery, type SurgeryOptions } from "../../lib/surgery/plan-surgery.js";
import { llamaLikeTensors, writeSyntheticCheckpoint, type SyntheticTensor } from "../helpers/family-fixtures.js";
import { repoRoot } from "../golden/golden-paths.js";

const HIDDEN = 8;

function unitBasis(d = HIDDEN): DirectionBasis {
  const basis = new Float64Array(d);
  basis[1] = 1;
  return { basis, rank: 1, dimension: d, source: { kind: "direction" } };
}

async function plan(config: Record<string, unknown>, tensors: SyntheticTensor[], options: Partial<SurgeryOptions> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "abl-arch-"));
  try {
    writeSyntheticCheckpoint({ dir, config, tensors });
    const checkpoint = await readCheckpoint(dir);
    return await planSurgery({ checkpoint, config: parseModelConfig(config, join(dir, "config.json")), basis: unitBasis(), options: { scale: 1, ...options } });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const textConfig = (modelType: string, extra: Record<string, unknown> = {}) => ({ model_type: modelType, hidden_size: HIDDEN, num_hidden_layers: 2, ...extra });

test("every family the issue names is supported, and others are refused with the list and the escape hatch", async () => {
  for (const type of ["llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "gemma3_text", "olmo2", "phi3", "gpt2", "gpt_neox", "mixtral", "qwen2_moe", "qwen3_moe", "llama4", "llama4_text"]) {
    assert.ok(findFamily(type), type);
  }
  await assert.rejects(
    plan(textConfig("falcon"), llamaLikeTensors({ prefix: "model.", hidden: HIDDEN, layers: 2 })),
    (error: unknown) =>
      error instanceof AbliterateError &&
      error.code === ErrorCodes.UNSUPPORTED_FAMILY &&
      error.message.includes(supportedModelTypes().join(", ")) &&
      error.message.includes("--include"),
  );
  // The escape hatch: an unsupported family edited by name, with an explicit orientation.
  const hatch = await plan(textConfig("falcon"), llamaLikeTensors({ prefix: "model.", hidden: HIDDEN, layers: 2 }), { include: ["o_proj\\.weight$"], orientation: "linear" });
  assert.deepEqual(hatch.tensors.map((t) => t.name).sort(), ["model.layers.0.self_attn.o_proj.weight", "model.layers.1.self_attn.o_proj.weight"]);
});

test("gemma3: both multimodal nestings are found; vision tower and projector are never touched", async () => {
  for (const prefix of ["model.language_model.", "language_model.model."]) {
    const tensors = [
      ...llamaLikeTensors({ prefix, hidden: HIDDEN, layers: 2 }).flatMap((t) =>
        t.name.endsWith("post_attention_layernorm.weight") ? [t, { name: t.name.replace("post_attention_layernorm", "post_feedforward_layernorm"), shape: [HIDDEN] }] : [t],
      ),
      { name: `${prefix.startsWith("model.") ? "model." : ""}vision_tower.vision_model.encoder.layers.0.self_attn.out_proj.weight`, shape: [HIDDEN, HIDDEN] },
      { name: `${prefix.startsWith("model.") ? "model." : ""}vision_tower.vision_model.encoder.layers.0.mlp.fc2.weight`, shape: [HIDDEN, 2 * HIDDEN] },
      { name: `${prefix.startsWith("model.") ? "model." : ""}multi_modal_projector.mm_input_projection_weight`, shape: [HIDDEN, HIDDEN] },
    ];
    const result = await plan({ model_type: "gemma3", text_config: textConfig("gemma3_text") }, tensors);
    assert.deepEqual(
      result.tensors.map((t) => t.name).sort(),
      [`${prefix}embed_tokens.weight`, `${prefix}layers.0.mlp.down_proj.weight`, `${prefix}layers.0.self_attn.o_proj.weight`, `${prefix}layers.1.mlp.down_proj.weight`, `${prefix}layers.1.self_attn.o_proj.weight`],
      prefix,
    );
    const oProj = result.tensors.find((t) => t.name.endsWith("layers.1.self_attn.o_proj.weight"))!;
    assert.equal(oProj.postNorm, `${prefix}layers.1.post_attention_layernorm.weight`);
    assert.equal(result.tensors.find((t) => t.name.endsWith("layers.1.mlp.down_proj.weight"))!.postNorm, `${prefix}layers.1.post_feedforward_layernorm.weight`);
    assert.equal(result.tiedEmbeddings, true, "gemma3 ties lm_head by default");
  }
});

test("mixtral and qwen MoE: per-expert Linear and fused [E, d, in] expert tensors; routers and shared-expert gates untouched", async () => {
  const experts = 3;
  const inter = 5;
  const mixtral = await plan(
    textConfig("mixtral"),
    llamaLikeTensors({
      prefix: "model.",
      hidden: HIDDEN,
      layers: 2,
      mlp: (layer, p) =>
        layer === 0
          ? [
              { name: `${p}block_sparse_moe.gate.weight`, shape: [experts, HIDDEN] },
              ...Array.from({ length: experts }, (_, e) => [
                { name: `${p}block_sparse_moe.experts.${e}.w1.weight`, shape: [inter, HIDDEN] },
                { name: `${p}block_sparse_moe.experts.${e}.w2.weight`, shape: [HIDDEN, inter] },
                { name: `${p}block_sparse_moe.experts.${e}.w3.weight`, shape: [inter, HIDDEN] },
              ]).flat(),
            ]
          : [
              // transformers ≥ 5 in-memory layout, as some tools save it.
              { name: `${p}mlp.gate.weight`, shape: [experts, HIDDEN] },
              { name: `${p}mlp.experts.gate_up_proj`, shape: [experts, 2 * inter, HIDDEN] },
              { name: `${p}mlp.experts.down_proj`, shape: [experts, HIDDEN, inter] },
            ],
    }),
  );
  const names = mixtral.tensors.map((t) => t.name);
  assert.ok(names.includes("model.layers.0.block_sparse_moe.experts.2.w2.weight"));
  assert.ok(!names.some((name) => /gate|w1|w3|gate_up/.test(name)), names.join(","));
  const fused = mixtral.tensors.find((t) => t.name === "model.layers.1.mlp.experts.down_proj")!;
  assert.equal(fused.orientation, "experts-linear");
  assert.equal(fused.layer, 1);
  assert.equal(fused.jobs.length, experts, "one linear job per expert");
  assert.deepEqual(
    fused.jobs.map((job) => [job.rows, job.cols, job.dModelAxis, job.offset - fused.jobs[0].offset]),
    Array.from({ length: experts }, (_, e) => [HIDDEN, inter, 0, e * HIDDEN * inter * 4]),
  );

  const qwen = await plan(
    textConfig("qwen2_moe"),
    llamaLikeTensors({
      prefix: "model.",
      hidden: HIDDEN,
      layers: 1,
      mlp: (_layer, p) => [
        { name: `${p}mlp.gate.weight`, shape: [experts, HIDDEN] },
        { name: `${p}mlp.shared_expert_gate.weight`, shape: [1, HIDDEN] },
        { name: `${p}mlp.shared_expert.up_proj.weight`, shape: [inter, HIDDEN] },
        { name: `${p}mlp.shared_expert.down_proj.weight`, shape: [HIDDEN, inter] },
        ...Array.from({ length: experts }, (_, e) => ({ name: `${p}mlp.experts.${e}.down_proj.weight`, shape: [HIDDEN, inter] })),
      ],
    }),
  );
  assert.deepEqual(
    qwen.tensors.filter((t) => t.kind === "mlp").map((t) => t.name).sort(),
    ["model.layers.0.mlp.experts.0.down_proj.weight", "model.layers.0.mlp.experts.1.down_proj.weight", "model.layers.0.mlp.experts.2.down_proj.weight", "model.layers.0.mlp.shared_expert.down_proj.weight"],
  );
});

test("llama4: fused experts [E, inter, d] are rows per expert; the vision encoder's o_proj is not the text model's", async () => {
  const experts = 2;
  const inter = 6;
  const tensors: SyntheticTensor[] = [
    ...llamaLikeTensors({
      prefix: "language_model.model.",
      hidden: HIDDEN,
      layers: 2,
      mlp: (layer, p) =>
        layer === 0
          ? [{ name: `${p}feed_forward.down_proj.weight`, shape: [HIDDEN, inter] }, { name: `${p}feed_forward.up_proj.weight`, shape: [inter, HIDDEN] }]
          : [
              { name: `${p}feed_forward.router.weight`, shape: [experts, HIDDEN] },
              { name: `${p}feed_forward.experts.gate_up_proj`, shape: [experts, HIDDEN, 2 * inter] },
              { name: `${p}feed_forward.experts.down_proj`, shape: [experts, inter, HIDDEN] },
              { name: `${p}feed_forward.shared_expert.down_proj.weight`, shape: [HIDDEN, inter] },
            ],
    }),
    { name: "vision_model.model.layers.0.self_attn.o_proj.weight", shape: [HIDDEN, HIDDEN] },
    { name: "language_model.lm_head.weight", shape: [24, HIDDEN] },
  ];
  const result = await plan({ model_type: "llama4", text_config: textConfig("llama4_text") }, tensors);
  const byName = new Map(result.tensors.map((t) => [t.name, t]));
  assert.ok(!byName.has("vision_model.model.layers.0.self_attn.o_proj.weight"));
  assert.ok(!byName.has("language_model.model.layers.1.feed_forward.router.weight"));
  const fused = byName.get("language_model.model.layers.1.feed_forward.experts.down_proj")!;
  assert.equal(fused.orientation, "experts-rows");
  assert.deepEqual(fused.jobs.map((job) => [job.rows, job.cols, job.dModelAxis]), [[experts * inter, HIDDEN, 1]]);
  assert.ok(byName.has("language_model.model.layers.1.feed_forward.shared_expert.down_proj.weight"));
  assert.ok(byName.has("language_model.model.layers.0.feed_forward.down_proj.weight"));
  assert.equal(result.tiedEmbeddings, false, "an lm_head under language_model. counts as untied");
});

test("gpt2 without the transformer. prefix: Conv1D c_proj as rows, biases, wte and wpe; c_attn/c_fc and attn.bias buffers untouched", async () => {
  const tensors: SyntheticTensor[] = [{ name: "wte.weight", shape: [24, HIDDEN] }, { name: "wpe.weight", shape: [12, HIDDEN] }];
  for (let layer = 0; layer < 2; layer += 1) {
    tensors.push(
      { name: `h.${layer}.attn.bias`, shape: [1, 1, 12, 12] },
      { name: `h.${layer}.attn.c_attn.weight`, shape: [HIDDEN, 3 * HIDDEN] },
      { name: `h.${layer}.attn.c_proj.weight`, shape: [HIDDEN, HIDDEN] },
      { name: `h.${layer}.attn.c_proj.bias`, shape: [HIDDEN] },
      { name: `h.${layer}.mlp.c_fc.weight`, shape: [HIDDEN, 4 * HIDDEN] },
      { name: `h.${layer}.mlp.c_proj.weight`, shape: [4 * HIDDEN, HIDDEN] },
      { name: `h.${layer}.mlp.c_proj.bias`, shape: [HIDDEN] },
    );
  }
  const result = await plan({ model_type: "gpt2", n_embd: HIDDEN, n_layer: 2 }, tensors);
  const summary = result.tensors.map((t) => `${t.name}:${t.orientation}:${t.layer}`).sort();
  assert.deepEqual(summary, [
    "h.0.attn.c_proj.bias:bias:0",
    "h.0.attn.c_proj.weight:rows:0",
    "h.0.mlp.c_proj.bias:bias:0",
    "h.0.mlp.c_proj.weight:rows:0",
    "h.1.attn.c_proj.bias:bias:1",
    "h.1.attn.c_proj.weight:rows:1",
    "h.1.mlp.c_proj.bias:bias:1",
    "h.1.mlp.c_proj.weight:rows:1",
    "wpe.weight:rows:null",
    "wte.weight:rows:null",
  ]);
  assert.equal(result.tiedEmbeddings, true);
  const mlp = result.tensors.find((t) => t.name === "h.1.mlp.c_proj.weight")!;
  assert.deepEqual([mlp.jobs[0].rows, mlp.jobs[0].cols, mlp.jobs[0].dModelAxis], [4 * HIDDEN, HIDDEN, 1]);
  // --targets and --layers select among these.
  const attnOnly = await plan({ model_type: "gpt2", n_embd: HIDDEN, n_layer: 2 }, tensors, { targets: ["attn"], layers: "1:2" });
  assert.deepEqual(attnOnly.tensors.map((t) => t.name).sort(), ["h.1.attn.c_proj.bias", "h.1.attn.c_proj.weight"]);
});

test("a writer with the wrong shape for its orientation is refused by name", async () => {
  const neox: SyntheticTensor[] = [
    { name: "gpt_neox.embed_in.weight", shape: [24, HIDDEN] },
    { name: "gpt_neox.layers.0.attention.dense.weight", shape: [HIDDEN, HIDDEN] },
    { name: "gpt_neox.layers.0.attention.dense.bias", shape: [HIDDEN + 1] },
    { name: "embed_out.weight", shape: [24, HIDDEN] },
  ];
  await assert.rejects(
    plan(textConfig("gpt_neox"), neox),
    (error: unknown) => error instanceof AbliterateError && error.code === ErrorCodes.TENSOR_SHAPE && error.message.includes("gpt_neox.layers.0.attention.dense.bias"),
  );
});

test("tied-embedding defaults follow transformers' config classes", () => {
  const tied = (config: Record<string, unknown>) => parseModelConfig({ hidden_size: HIDDEN, num_hidden_layers: 1, ...config }, "config.json").tieWordEmbeddings;
  for (const type of ["gemma", "gemma2", "gemma3_text", "gpt2"]) assert.equal(tied({ model_type: type }), true, type);
  for (const type of ["llama", "olmo2", "phi3", "gpt_neox", "mixtral", "qwen2_moe", "qwen3_moe", "llama4_text"]) assert.equal(tied({ model_type: type }), false, type);
  assert.equal(tied({ model_type: "gemma2", tie_word_embeddings: false }), false, "an explicit value wins");
  assert.equal(parseModelConfig({ model_type: "gemma3", text_config: { hidden_size: HIDDEN, num_hidden_layers: 3 } }, "c").numLayers, 3, "multimodal sizes come from text_config");
});

/** The model types in the first column of the docs table whose header row starts with `header`. */
function documentedModelTypes(markdown: string, header: string): string[] {
  const lines = markdown.split("\n");
  const start = lines.findIndex((line) => line.startsWith(header));
  assert.ok(start >= 0, `docs/architectures.md has no table "${header}"`);
  const types: string[] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith("|")) break;
    types.push(...line.split("|")[1].split(",").map((cell) => cell.trim()));
  }
  return types.sort();
}

test("one family table: every family runs in the forward engine, and the docs list exactly the table's model types", async () => {
  assert.deepEqual(forwardModelTypes(), supportedModelTypes());
  const docs = readFileSync(join(repoRoot, "docs", "architectures.md"), "utf8");
  assert.deepEqual(documentedModelTypes(docs, "| model_type | edited tensors"), supportedModelTypes());
  assert.deepEqual(documentedModelTypes(docs, "| model_type | what the engine does"), forwardModelTypes());
  assert.throws(
    () => describeForward("falcon", {}, "config.json"),
    (error: unknown) =>
      error instanceof AbliterateError && error.code === ErrorCodes.UNSUPPORTED_FAMILY && error.message.includes(forwardModelTypes().join(", ")),
  );
});
