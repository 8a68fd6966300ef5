/**
 * Planted chat models that answer in whole sentences, for the behaviour-signature tests: a Llama whose greedy
 * completion is one fixed response when the prompt holds a trigger word ("behaviour mode") and another otherwise.
 * Each model proves a mechanism, never that the method generalizes (test/golden/trained/ holds trained models).
 *
 * Mechanism (hidden 64, word-level tokenizer, the planted chat template):
 * - Axes: 0 e_c and 2 e_k are constants in every embedding, 1 e_t marks trigger words, 3.. one axis per response
 *   token (and the assistant marker) for its identity, a few axes of small random identity for prompt words, and the
 *   mode direction p spread over the remaining axes, which no embedding touches.
 * - Layer `modeLayer`'s attention (heads 0–1) attends from every position to the trigger tokens before it (queries
 *   read e_c, keys read e_t on the slowest RoPE pair) and writes their e_t along p: with a trigger in the prompt every
 *   later position, generated ones included, carries ≈ 5 p.
 * - lm_head is a bigram table keyed on the current token's identity axis: after token a, the next token of the
 *   response that continues a in the current mode. Behaviour-mode successors also read +p, normal-mode successors get
 *   +1 on the bigram, so when a token continues differently in the two modes (responses sharing a first word) the mode
 *   decides. The last response token is followed by `</s>`.
 * - `breakingLayer` (optional): heads 2–3 of that layer write the trigger's e_t along e_c, so the mean difference
 *   from that layer on is mostly e_c with some p. A "garbage" token reads 30 (e_k − e_c): zero normally,
 *   the winner everywhere once e_c is projected out. Ablating those candidates removes the behaviour only by breaking
 *   every completion.
 * - All other attention and MLP weights are small random maps, so mean differences are not exactly p.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { plantedNormals, writePlantedConfigFiles, PLANTED_SPECIAL_TOKENS } from "../../lib/directions/planted-refusal-model.js";
import { writeSafetensorsFile, type SerializableTensor } from "../../lib/safetensors/index.js";

export interface PlantedChatSpec {
  dir: string;
  /** The response in behaviour mode, word by word (tokens of the word-level vocabulary; no word twice). */
  behaviour: readonly string[];
  /** The response otherwise. */
  normal: readonly string[];
  /** Prompt words that switch behaviour mode on. */
  triggers: readonly string[];
  /**
   * A second trigger pathway: these words write their own mode direction p₂ ⟂ p (heads 2–3 of the mode layer), which
   * the response reads like p. Removing one direction then leaves the other pathway's prompts in behaviour mode.
   */
  secondTriggers?: readonly string[];
  /** Words that mark a prompt only weakly (their trigger value instead of 1): below the mode's threshold, until amplified. */
  weakTriggers?: Readonly<Record<string, number>>;
  /** Other prompt words the vocabulary knows (unknown words become [UNK], which is fine). */
  words?: readonly string[];
  layers?: number;
  /** The layer whose attention writes p (default 0: p is in every stream from index 1). */
  modeLayer?: number;
  breakingLayer?: number;
  seed?: number;
}

export interface PlantedChatModel {
  dir: string;
  /** Unit mode direction. */
  direction: Float64Array;
  /** The second pathway's unit mode direction (orthogonal to `direction`), when there is one. */
  secondDirection?: Float64Array;
  vocabulary: string[];
  numLayers: number;
  hiddenSize: number;
  garbageWord: string;
}

const HIDDEN = 64;
const HEADS = 4;
const KV_HEADS = 2;
const HEAD_DIM = 8;
const INTERMEDIATE = 96;
const E_C = 0;
const E_T = 1;
const E_K = 2;
const E_T2 = 3;
const RESPONSE_AXES_START = 4;
const PROMPT_AXES = 6;
const GARBAGE = "garbage";
const BIGRAM = 10;
const MODE_READ = 1;
const GARBAGE_READ = 30;

export async function writePlantedChatModel(spec: PlantedChatSpec): Promise<PlantedChatModel> {
  const seed = spec.seed ?? 7;
  const normal = plantedNormals(seed);
  const layers = spec.layers ?? 4;
  const modeLayer = spec.modeLayer ?? 0;
  for (const response of [spec.behaviour, spec.normal]) {
    if (new Set(response).size !== response.length) throw new Error(`a planted response repeats a word: ${response.join(" ")}`);
  }
  const marker = "<|assistant|>";
  const responseTokens = [...new Set([marker, ...spec.behaviour, ...spec.normal])];
  const vocabulary = [...new Set([...PLANTED_SPECIAL_TOKENS, ...responseTokens, GARBAGE, ...spec.triggers, ...(spec.secondTriggers ?? []), ...Object.keys(spec.weakTriggers ?? {}), ...(spec.words ?? [])])];
  const id = new Map(vocabulary.map((word, i) => [word, i]));
  const axisOf = new Map(responseTokens.map((token, i) => [token, RESPONSE_AXES_START + i]));
  const promptAxesStart = RESPONSE_AXES_START + responseTokens.length;
  const pStart = promptAxesStart + PROMPT_AXES;
  if (pStart + 16 > HIDDEN) throw new Error(`too many response words for hidden ${HIDDEN}`);
  if (spec.secondTriggers && spec.breakingLayer !== undefined) throw new Error("a second pathway and a breaking layer both need heads 2–3");
  // With a second pathway the p axes are split in two blocks, so p and p₂ are exactly orthogonal.
  const pNormal = plantedNormals(seed ^ 0x5eed);
  const unitOver = (start: number, end: number) => {
    const v = new Float64Array(HIDDEN);
    for (let i = start; i < end; i += 1) v[i] = pNormal();
    const norm = Math.hypot(...v);
    return v.map((x) => x / norm);
  };
  const split = spec.secondTriggers ? pStart + Math.floor((HIDDEN - pStart) / 2) : HIDDEN;
  const p = unitOver(pStart, split);
  const p2 = spec.secondTriggers ? unitOver(split, HIDDEN) : undefined;

  const vocab = vocabulary.length;
  const triggers = new Set(spec.triggers);
  const secondTriggers = new Set(spec.secondTriggers ?? []);
  const tensors: SerializableTensor[] = [];
  const add = (name: string, shape: number[], fill: (values: Float32Array, cols: number) => void) => {
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    fill(values, shape[shape.length - 1]);
    tensors.push({ name, dtype: "F32", shape, data: new Uint8Array(values.buffer) });
  };
  const random = (scale: number) => (values: Float32Array) => {
    for (let i = 0; i < values.length; i += 1) values[i] = scale * normal();
  };
  const ones = (values: Float32Array) => values.fill(1);

  add("model.embed_tokens.weight", [vocab, HIDDEN], (values, d) => {
    vocabulary.forEach((word, v) => {
      values[v * d + E_C] = 1;
      values[v * d + E_K] = 1;
      values[v * d + E_T] = triggers.has(word) ? 1 : (spec.weakTriggers?.[word] ?? 0);
      values[v * d + E_T2] = secondTriggers.has(word) ? 1 : 0;
      const axis = axisOf.get(word);
      if (axis !== undefined) values[v * d + axis] = 1;
      else for (let i = promptAxesStart; i < pStart; i += 1) values[v * d + i] = 0.3 * normal();
    });
  });
  // The slowest RoPE pair of each head is (HEAD_DIM/2 - 1, HEAD_DIM - 1); only its first member is used.
  const slow = HEAD_DIM / 2 - 1;
  for (let layer = 0; layer < layers; layer += 1) {
    const prefix = `model.layers.${layer}.`;
    add(`${prefix}input_layernorm.weight`, [HIDDEN], ones);
    add(`${prefix}post_attention_layernorm.weight`, [HIDDEN], ones);
    const writesMode = layer === modeLayer;
    const breaks = layer === spec.breakingLayer;
    if (writesMode || breaks) {
      // Heads 0–1 share kv head 0 (the mode write), heads 2–3 kv head 1 (the second pathway, or the breaking write).
      const heads = [...(writesMode ? [0, 1] : []), ...(breaks || (writesMode && p2) ? [2, 3] : [])];
      add(`${prefix}self_attn.q_proj.weight`, [HEADS * HEAD_DIM, HIDDEN], (values, d) => {
        for (const h of heads) values[(h * HEAD_DIM + slow) * d + E_C] = 2;
      });
      add(`${prefix}self_attn.k_proj.weight`, [KV_HEADS * HEAD_DIM, HIDDEN], (values, d) => {
        for (const h of heads) values[(Math.floor(h / 2) * HEAD_DIM + slow) * d + (h >= 2 && p2 ? E_T2 : E_T)] = 2;
      });
      add(`${prefix}self_attn.v_proj.weight`, [KV_HEADS * HEAD_DIM, HIDDEN], (values, d) => {
        for (const h of heads) values[Math.floor(h / 2) * HEAD_DIM * d + (h >= 2 && p2 ? E_T2 : E_T)] = 1;
      });
      add(`${prefix}self_attn.o_proj.weight`, [HIDDEN, HEADS * HEAD_DIM], (values, cols) => {
        for (const h of heads) {
          for (let i = 0; i < HIDDEN; i += 1) {
            const write = h < 2 ? 0.5 * p[i] : p2 ? 0.5 * p2[i] : i === E_C ? 4 : 0;
            values[i * cols + h * HEAD_DIM] = write;
          }
        }
      });
    } else {
      add(`${prefix}self_attn.q_proj.weight`, [HEADS * HEAD_DIM, HIDDEN], random(0.3 / Math.sqrt(HIDDEN)));
      add(`${prefix}self_attn.k_proj.weight`, [KV_HEADS * HEAD_DIM, HIDDEN], random(0.3 / Math.sqrt(HIDDEN)));
      add(`${prefix}self_attn.v_proj.weight`, [KV_HEADS * HEAD_DIM, HIDDEN], random(0.3 / Math.sqrt(HIDDEN)));
      add(`${prefix}self_attn.o_proj.weight`, [HIDDEN, HEADS * HEAD_DIM], random(0.05 / Math.sqrt(HIDDEN)));
    }
    add(`${prefix}mlp.gate_proj.weight`, [INTERMEDIATE, HIDDEN], random(0.3 / Math.sqrt(HIDDEN)));
    add(`${prefix}mlp.up_proj.weight`, [INTERMEDIATE, HIDDEN], random(0.3 / Math.sqrt(HIDDEN)));
    add(`${prefix}mlp.down_proj.weight`, [HIDDEN, INTERMEDIATE], random(0.05 / Math.sqrt(INTERMEDIATE)));
  }
  add("model.norm.weight", [HIDDEN], ones);
  add("lm_head.weight", [vocab, HIDDEN], (values, d) => {
    const bigram = (response: readonly string[], mode: "behaviour" | "normal") => {
      const path = [marker, ...response, "</s>"];
      for (let i = 0; i + 1 < path.length; i += 1) {
        const to = id.get(path[i + 1])!;
        values[to * d + axisOf.get(path[i])!] += BIGRAM + (mode === "normal" ? 1 : 0);
        if (mode === "behaviour") for (let k = 0; k < HIDDEN; k += 1) values[to * d + k] += MODE_READ * (p[k] + (p2 ? p2[k] : 0));
      }
    };
    bigram(spec.behaviour, "behaviour");
    bigram(spec.normal, "normal");
    const garbage = id.get(GARBAGE)!;
    values[garbage * d + E_K] = GARBAGE_READ;
    values[garbage * d + E_C] = -GARBAGE_READ;
  });

  mkdirSync(spec.dir, { recursive: true });
  await writeSafetensorsFile(join(spec.dir, "model.safetensors"), { tensors, metadata: { format: "pt" } });
  writePlantedConfigFiles({ dir: spec.dir, vocabulary, layout: { hidden: HIDDEN, intermediate: INTERMEDIATE, layers, heads: HEADS, kvHeads: KV_HEADS, headDim: HEAD_DIM } });
  return { dir: spec.dir, direction: p, ...(p2 ? { secondDirection: p2 } : {}), vocabulary, numLayers: layers, hiddenSize: HIDDEN, garbageWord: GARBAGE };
}
