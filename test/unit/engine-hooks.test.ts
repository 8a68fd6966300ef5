/**
 * The hooks the optimizer and the subspace search evaluate edits with (lib/engine/run-forward.ts):
 * - directional ablation with its own α per writer (embedding, each layer's attention and MLP) and its own basis per
 *   residual stream, against an fp64 reference of the same maths and against the engine run on weights edited with
 *   the same per-tensor α;
 * - logits at chosen rows (teacher forcing);
 * - batched greedy generation (every prompt one token per step, KV cache) against one prompt at a time.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { orthonormalizeRows } from "../../lib/direction-files/orthonormalize.js";
import { loadForwardModel } from "../../lib/engine/load-forward-model.js";
import { runForward, type AblationStrengths } from "../../lib/engine/run-forward.js";
import { hiddenBlock, readForwardGolden, relativeError } from "../golden/forward-golden.js";
import { normalGenerator, referenceLlamaForward, writeRandomLlama, writeTensors, type RandomLlama } from "../golden/random-llama.js";

const LAYERS = 4;
const D = 48;

/** A profile with every kind of entry: 1, 0 (untouched), 2 (reflect), negative (amplify), fractional. */
const STRENGTHS: AblationStrengths = { embedding: 0.7, attention: [1, 0, 2, -0.5], mlp: [0.3, 0, 1.5, 1] };

/** Per-stream bases with ranks 1, 2 and 3, and none for stream 2, whose writers (layer 1) have α 0. */
function streamBases(seed: number): number[][][] {
  const normal = normalGenerator(seed);
  const ranks = [1, 2, 0, 3, 1];
  return ranks.map((rank) => Array.from({ length: rank }, () => Array.from({ length: D }, () => normal())));
}

function randomPrompts(seed: number, vocab: number, lengths: number[]): number[][] {
  const normal = normalGenerator(seed);
  return lengths.map((n) => Array.from({ length: n }, () => Math.floor(Math.abs(normal()) * 1000) % vocab));
}

function randomModel(dir: string, seed: number): RandomLlama {
  return writeRandomLlama(dir, {
    hidden: D, heads: 4, kvHeads: 2, headDim: 12, intermediate: 80, layers: LAYERS, vocab: 64, dtype: "F32", tie: false, bias: true, seed,
  });
}

/** v ← v − α B Bᵀ v for each row of `rows` [n × d], B orthonormal (k × d, row-major), in fp64. */
function projectRows(rows: Float64Array, basis: Float64Array, alpha: number): void {
  const k = basis.length / D;
  for (let r = 0; r < rows.length / D; r += 1) {
    const row = rows.subarray(r * D, (r + 1) * D);
    const coefficients = Array.from({ length: k }, (_, j) => {
      let dot = 0;
      for (let i = 0; i < D; i += 1) dot += basis[j * D + i] * row[i];
      return dot;
    });
    for (let i = 0; i < D; i += 1) {
      let delta = 0;
      for (let j = 0; j < k; j += 1) delta += coefficients[j] * basis[j * D + i];
      row[i] -= alpha * delta;
    }
  }
}

function alphaOf(stream: number, writer: "embed" | "attn" | "mlp"): number {
  if (writer === "embed") return STRENGTHS.embedding;
  return (writer === "attn" ? STRENGTHS.attention : STRENGTHS.mlp)[stream - 1];
}

test("per-writer α with per-stream bases matches an fp64 reference of the same maths; all-zero α is no hook at all", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-hooks-"));
  try {
    const model = randomModel(join(root, "model"), 21);
    await writeTensors(model);
    const forward = await loadForwardModel(model.dir);
    const streams = streamBases(5);
    const orthonormal = streams.map((rows) => (rows.length ? orthonormalizeRows(rows.map((row) => Float64Array.from(row)), "test") : new Float64Array()));
    const prompts = randomPrompts(8, 64, [11, 4, 17]);
    const hooked = await runForward({ model: forward, prompts, positions: "all", ablation: { streamDirections: streams, strengths: STRENGTHS } });
    const plain = await runForward({ model: forward, prompts, positions: "all" });
    const points = LAYERS + 1;
    let offset = 0;
    let changed = 0;
    for (const tokens of prompts) {
      const reference = referenceLlamaForward(model, tokens, undefined, (write, stream, writer) => {
        const alpha = alphaOf(stream, writer);
        if (alpha !== 0) projectRows(write, orthonormal[stream], alpha);
      });
      for (let point = 0; point < points; point += 1) {
        const ours = hiddenBlock(hooked.hidden, offset, tokens.length, point, points, D);
        const error = relativeError(ours, reference[point]);
        assert.ok(error <= 1e-5, `${tokens.length} tokens, point ${point}: relative error ${error}`);
        changed = Math.max(changed, relativeError(hiddenBlock(plain.hidden, offset, tokens.length, point, points, D), reference[point]));
      }
      offset += tokens.length;
    }
    assert.ok(changed > 0.05, `the profile must change the stream (${changed}), or the comparison proves nothing`);

    const zero = { embedding: 0, attention: new Array(LAYERS).fill(0), mlp: new Array(LAYERS).fill(0) };
    const none = await runForward({ model: forward, prompts, positions: "all", ablation: { streamDirections: streams, strengths: zero } });
    assert.deepEqual(none.hidden, plain.hidden);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("plain Llama: the hook equals the forward pass on weights edited with the same per-tensor α (fp64 edit, f32 weights)", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-hooks-"));
  try {
    const model = randomModel(join(root, "model"), 22);
    await writeTensors(model);
    const streams = streamBases(6);
    const orthonormal = streams.map((rows) => (rows.length ? orthonormalizeRows(rows.map((row) => Float64Array.from(row)), "test") : new Float64Array()));
    // The weight edit of every writer, in fp64: linear [d, in] (o_proj, down_proj) W ← W − α B (BᵀW), its bias
    // b ← b − α B Bᵀ b, the embedding's rows E ← E − α (E B) Bᵀ.
    const edited = new Map([...model.tensors].map(([name, t]) => [name, { shape: t.shape, values: Float64Array.from(t.values) }]));
    const editLinear = (name: string, alpha: number, basis: Float64Array) => {
      const { shape, values } = edited.get(name)!;
      const [rows, cols] = shape;
      const columns = new Float64Array(rows);
      for (let c = 0; c < cols; c += 1) {
        for (let r = 0; r < rows; r += 1) columns[r] = values[r * cols + c];
        projectRows(columns, basis, alpha);
        for (let r = 0; r < rows; r += 1) values[r * cols + c] = columns[r];
      }
    };
    if (STRENGTHS.embedding !== 0) projectRows(edited.get("model.embed_tokens.weight")!.values, orthonormal[0], STRENGTHS.embedding);
    for (let l = 0; l < LAYERS; l += 1) {
      const p = `model.layers.${l}.`;
      const [attention, mlp] = [STRENGTHS.attention[l], STRENGTHS.mlp[l]];
      if (attention !== 0) {
        editLinear(`${p}self_attn.o_proj.weight`, attention, orthonormal[l + 1]);
        projectRows(edited.get(`${p}self_attn.o_proj.bias`)!.values, orthonormal[l + 1], attention);
      }
      if (mlp !== 0) {
        editLinear(`${p}mlp.down_proj.weight`, mlp, orthonormal[l + 1]);
        projectRows(edited.get(`${p}mlp.down_proj.bias`)!.values, orthonormal[l + 1], mlp);
      }
    }
    const editedModel = randomModel(join(root, "edited"), 22);
    await writeTensors(editedModel, edited);

    const prompts = randomPrompts(9, 64, [13, 6]);
    const hooked = await runForward({
      model: await loadForwardModel(model.dir), prompts, positions: "all", logits: "all", ablation: { streamDirections: streams, strengths: STRENGTHS },
    });
    const surgered = await runForward({ model: await loadForwardModel(editedModel.dir), prompts, positions: "all", logits: "all" });
    const error = relativeError(hooked.hidden, surgered.hidden);
    assert.ok(error <= 1e-5, `hook vs edited weights: relative error ${error}`);
    const logitsError = relativeError(hooked.logits!, surgered.logits!);
    assert.ok(logitsError <= 1e-5, `logits: relative error ${logitsError}`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("the old request shape (alpha, layers, embedding) is the profile it stands for", async () => {
  const golden = await readForwardGolden("llama3-tied-bf16");
  const model = await loadForwardModel(golden.dir);
  const normal = normalGenerator(3);
  const r = Array.from({ length: model.spec.hiddenSize }, () => normal());
  const old = await runForward({ model, prompts: golden.inputIds, positions: "all", ablation: { directions: [r], alpha: 1.5, layers: [0, 2], embedding: false } });
  const profile = await runForward({
    model, prompts: golden.inputIds, positions: "all", ablation: { directions: [r], strengths: { embedding: 0, attention: [1.5, 0, 1.5], mlp: [1.5, 0, 1.5] } },
  });
  assert.deepEqual(old.hidden, profile.hidden);
  await assert.rejects(
    runForward({ model, prompts: golden.inputIds, ablation: { directions: [r], alpha: 1, strengths: { embedding: 1, attention: [1, 1, 1], mlp: [1, 1, 1] } } }),
    (e: { code?: string }) => e.code === "INVALID_ARGUMENT",
  );
  await assert.rejects(
    runForward({ model, prompts: golden.inputIds, ablation: { streamDirections: [[r], [], [r], [r]], strengths: { embedding: 1, attention: [1, 1, 1], mlp: [1, 1, 1] } } }),
    (e: { code?: string; message?: string }) => e.code === "INVALID_ARGUMENT" && /stream 1 has no directions/.test(e.message ?? ""),
  );
});

test("logits at chosen rows: last k positions and explicit positions are those rows of the all-positions run", async () => {
  const golden = await readForwardGolden("qwen3");
  const model = await loadForwardModel(golden.dir);
  const prompts = golden.inputIds;
  const vocab = model.spec.vocabSize;
  const all = await runForward({ model, prompts, positions: "none", logits: "all" });
  const rowOf = (p: number, position: number) => prompts.slice(0, p).reduce((n, ids) => n + ids.length, 0) + position;
  const check = (out: Awaited<ReturnType<typeof runForward>>, expected: [number, number][]) => {
    assert.deepEqual(Array.from(out.logitsPrompt!), expected.map(([p]) => p));
    assert.deepEqual(Array.from(out.logitsPosition!), expected.map(([, position]) => position));
    assert.equal(out.logits!.length, expected.length * vocab);
    expected.forEach(([p, position], r) => {
      const row = rowOf(p, position);
      const error = relativeError(out.logits!.subarray(r * vocab, (r + 1) * vocab), all.logits!.subarray(row * vocab, (row + 1) * vocab));
      assert.ok(error <= 1e-6, `prompt ${p} position ${position}: ${error}`);
    });
  };
  // Prompt lengths 7, 12, 3: the last 3 positions of each, then 4, 1 and 3 of them.
  const lastThree = await runForward({ model, prompts, positions: "none", logits: { last: 3 } });
  check(lastThree, prompts.flatMap((ids, p) => Array.from({ length: 3 }, (_, i): [number, number] => [p, ids.length - 3 + i])));
  const counts = [4, 1, 3];
  const perPrompt = await runForward({ model, prompts, positions: "none", logits: { last: counts } });
  check(perPrompt, prompts.flatMap((ids, p) => Array.from({ length: counts[p] }, (_, i): [number, number] => [p, ids.length - counts[p] + i])));
  const chosen = await runForward({ model, prompts, positions: "none", logits: { positions: [[6, 0], [], [1]] } });
  check(chosen, [[0, 6], [0, 0], [2, 1]]);
  await assert.rejects(runForward({ model, prompts, logits: { positions: [[7], [], []] } }), (e: { code?: string }) => e.code === "INVALID_ARGUMENT");
  await assert.rejects(runForward({ model, prompts, logits: { last: 0 } }), (e: { code?: string }) => e.code === "INVALID_ARGUMENT");
  await assert.rejects(runForward({ model, prompts, logits: { last: 4 } }), (e: { code?: string }) => e.code === "INVALID_ARGUMENT");
});

test("teacher forcing in one pass: log-probs of appended targets equal those of step-by-step greedy continuation", async () => {
  const golden = await readForwardGolden("llama");
  const model = await loadForwardModel(golden.dir);
  const vocab = model.spec.vocabSize;
  const targets = golden.generated.map((ids) => ids.slice(0, 3));
  const forced = await runForward({
    model, prompts: golden.inputIds.map((ids, p) => [...ids, ...targets[p]]), positions: "none", logits: { last: 4 },
  });
  // Row j of each prompt predicts target j (row 3 the token after the last target); greedy targets are the argmax.
  golden.inputIds.forEach((_, p) => {
    for (let j = 0; j < 3; j += 1) {
      const row = forced.logits!.subarray((p * 4 + j) * vocab, (p * 4 + j + 1) * vocab);
      let best = 0;
      for (let v = 1; v < vocab; v += 1) if (row[v] > row[best]) best = v;
      assert.equal(best, targets[p][j], `prompt ${p}, target ${j}`);
    }
  });
});

for (const name of ["llama", "qwen3-moe", "llama4", "gemma2"] as const) {
  test(`${name}: batched greedy generation returns exactly the tokens of one prompt at a time (also with a hook)`, async () => {
    const golden = await readForwardGolden(name);
    const model = await loadForwardModel(golden.dir);
    const normal = normalGenerator(17);
    const r = Array.from({ length: model.spec.hiddenSize }, () => normal());
    const prompts = [...golden.inputIds, golden.inputIds[0].slice(0, 2)];
    for (const ablation of [undefined, { directions: [r], alpha: 0.8 }]) {
      const batched = await runForward({ model, prompts, positions: "none", maxNewTokens: 10, eosTokenIds: [], ablation });
      for (let p = 0; p < prompts.length; p += 1) {
        const alone = await runForward({ model, prompts: [prompts[p]], positions: "none", maxNewTokens: 10, eosTokenIds: [], ablation });
        assert.deepEqual(batched.generated![p], alone.generated![0], `prompt ${p}${ablation ? " with ablation" : ""}`);
      }
    }
  });
}
