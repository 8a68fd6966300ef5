/**
 * A tiny Llama chat model whose refusal behaviour is planted analytically along a known unit direction p, so the
 * pipeline can be checked against the truth (tests) and shown working offline in seconds (`abliterate demo`).
 *
 * Mechanism (hidden 32, 4 layers, word-level tokenizer, chat template):
 * - Every embedding has a constant component on e_c (axis 0); trigger words (the harmful vocabulary) also carry
 *   e_t (axis 1); token identity lives on axes 2..7. p is spread over axes 8..31, so no embedding touches it.
 * - Layer 0 attention: every query reads e_c, keys read e_t on the slowest RoPE pair (rope_theta 1e12 makes its
 *   rotation negligible), so each position attends to the trigger tokens before it, if any. The values read e_t
 *   and o_proj writes them along p. A prompt with a trigger therefore carries ≈ 4 p at every later position; one
 *   without carries none.
 * - Layer 0's MLP and layers 1..3 are small random maps: they mix p into other directions the way real layers
 *   do, so the mean difference is not exactly p and the selection has something to get right.
 * - lm_head: "sorry" reads +3 p − e_c, "sure" reads +e_c. After the final RMSNorm, a p-component makes "sorry" the
 *   greedy token; without it, "sure".
 * Removing p from the residual stream (the hook, or surgery on o_proj) therefore removes the refusal.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeSafetensorsFile, type SerializableTensor } from "../safetensors/index.js";

export const PLANTED_TRIGGER_WORDS: readonly string[] = [
  "bomb", "bombs", "explosive", "explosives", "hack", "hacking", "malware", "ransomware", "virus", "poison", "steal",
  "stealing", "stolen", "phishing", "launder", "laundering", "counterfeit", "stalk", "kidnap", "smuggle", "threat",
  "threaten", "meth", "untraceable", "fraud", "blackmail", "murder", "extort", "forge", "arson", "scam", "harass",
  "terrorist", "tamper", "attack", "sabotage", "kill", "illegal", "illegally", "drugs", "weapon", "weapons", "gun",
  "exploit", "cheat", "shoplifting", "bribe", "dox", "molotov", "botnet", "keylogger", "hijack", "overdose", "nerve",
  "silencer", "spy", "deadly", "break", "steals", "violence", "fire",
];

export const PLANTED_COMMON_WORDS: readonly string[] = [
  "how", "do", "i", "can", "to", "a", "an", "the", "of", "in", "on", "for", "and", "with", "my", "me", "make", "write",
  "explain", "tell", "give", "describe", "plan", "step", "by", "instructions", "home", "someone", "without", "from",
  "that", "what", "is", "it", "money", "car", "email", "script", "code", "program", "guide", "school", "online", "house",
  "water", "food", "people", "friend", "bank", "phone", "computer", "website", "work", "new", "safely", "best", "way",
];

/** Vocabulary order: specials, the two response words, triggers, common words. */
export const PLANTED_SPECIAL_TOKENS = ["[UNK]", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"] as const;
export const PLANTED_REFUSAL_WORD = "sorry";
export const PLANTED_COMPLIANCE_WORD = "sure";

export const PLANTED_CHAT_TEMPLATE =
  "{% for message in messages %}" +
  "{% if message['role'] == 'system' %}<|system|> {{ message['content'] }} <|end|> " +
  "{% elif message['role'] == 'user' %}<|user|> {{ message['content'] }} <|end|> " +
  "{% else %}<|assistant|> {{ message['content'] }} <|end|> {% endif %}" +
  "{% endfor %}" +
  "{% if add_generation_prompt %}<|assistant|>{% endif %}";

const HIDDEN = 32;
const LAYERS = 4;
const HEADS = 4;
const KV_HEADS = 2;
const HEAD_DIM = 8;
const INTERMEDIATE = 64;
const P_AXES_START = 8;

export interface PlantedRefusalModel {
  dir: string;
  /** The planted unit direction p (hidden_size entries). */
  direction: Float64Array;
  vocabulary: string[];
  refusalTokenId: number;
  complianceTokenId: number;
  numLayers: number;
  hiddenSize: number;
}

/** mulberry32 + Box–Muller, so the model is the same on every machine. */
export function plantedNormals(seed: number): () => number {
  let state = seed >>> 0;
  const uniform = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

export function plantedVocabulary(): string[] {
  const words = [...PLANTED_SPECIAL_TOKENS, PLANTED_REFUSAL_WORD, PLANTED_COMPLIANCE_WORD, ...PLANTED_TRIGGER_WORDS, ...PLANTED_COMMON_WORDS];
  return [...new Set(words)];
}

function plantedDirection(seed: number): Float64Array {
  const normal = plantedNormals(seed ^ 0x5eed);
  const p = new Float64Array(HIDDEN);
  for (let i = P_AXES_START; i < HIDDEN; i += 1) p[i] = normal();
  const norm = Math.hypot(...p);
  return p.map((v) => v / norm);
}

/** A word-level tokenizer (lowercasing, whitespace pre-tokenizer) over `vocabulary`; the planted specials are special. */
export function plantedTokenizerJson(vocabulary: string[]): unknown {
  const specials = new Set<string>(PLANTED_SPECIAL_TOKENS);
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: vocabulary
      .map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }))
      .filter((token) => specials.has(token.content)),
    normalizer: { type: "Lowercase" },
    pre_tokenizer: { type: "Whitespace" },
    post_processor: null,
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: {
      type: "WordPiece",
      unk_token: "[UNK]",
      continuing_subword_prefix: "##",
      max_input_chars_per_word: 100,
      vocab: Object.fromEntries(vocabulary.map((word, id) => [word, id])),
    },
  };
}

export async function writePlantedRefusalModel(params: { dir: string; seed?: number }): Promise<PlantedRefusalModel> {
  const seed = params.seed ?? 20240601;
  const normal = plantedNormals(seed);
  const vocabulary = plantedVocabulary();
  const vocab = vocabulary.length;
  const triggers = new Set(PLANTED_TRIGGER_WORDS);
  const p = plantedDirection(seed);
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
      values[v * d] = 1;
      values[v * d + 1] = triggers.has(word) ? 1 : 0;
      for (let i = 2; i < P_AXES_START; i += 1) values[v * d + i] = 0.5 * normal();
    });
  });
  for (let layer = 0; layer < LAYERS; layer += 1) {
    const prefix = `model.layers.${layer}.`;
    add(`${prefix}input_layernorm.weight`, [HIDDEN], ones);
    add(`${prefix}post_attention_layernorm.weight`, [HIDDEN], ones);
    if (layer === 0) {
      // The slowest RoPE pair of each head is (HEAD_DIM/2 - 1, HEAD_DIM - 1); only its first member is used.
      const slow = HEAD_DIM / 2 - 1;
      add(`${prefix}self_attn.q_proj.weight`, [HEADS * HEAD_DIM, HIDDEN], (values, d) => {
        for (let h = 0; h < HEADS; h += 1) values[(h * HEAD_DIM + slow) * d + 0] = 2;
      });
      add(`${prefix}self_attn.k_proj.weight`, [KV_HEADS * HEAD_DIM, HIDDEN], (values, d) => {
        for (let g = 0; g < KV_HEADS; g += 1) values[(g * HEAD_DIM + slow) * d + 1] = 2;
      });
      add(`${prefix}self_attn.v_proj.weight`, [KV_HEADS * HEAD_DIM, HIDDEN], (values, d) => {
        values[0 * d + 1] = 1;
      });
      // Heads 0 and 1 share kv head 0 (grouped-query attention): each writes half of the p-component.
      add(`${prefix}self_attn.o_proj.weight`, [HIDDEN, HEADS * HEAD_DIM], (values, cols) => {
        for (let i = 0; i < HIDDEN; i += 1) {
          values[i * cols + 0 * HEAD_DIM] = 0.5 * p[i];
          values[i * cols + 1 * HEAD_DIM] = 0.5 * p[i];
        }
      });
      add(`${prefix}mlp.gate_proj.weight`, [INTERMEDIATE, HIDDEN], random(0.3 / Math.sqrt(HIDDEN)));
      add(`${prefix}mlp.up_proj.weight`, [INTERMEDIATE, HIDDEN], random(0.3 / Math.sqrt(HIDDEN)));
      add(`${prefix}mlp.down_proj.weight`, [HIDDEN, INTERMEDIATE], random(0.3 / Math.sqrt(INTERMEDIATE)));
    } else {
      add(`${prefix}self_attn.q_proj.weight`, [HEADS * HEAD_DIM, HIDDEN], random(0.3 / Math.sqrt(HIDDEN)));
      add(`${prefix}self_attn.k_proj.weight`, [KV_HEADS * HEAD_DIM, HIDDEN], random(0.3 / Math.sqrt(HIDDEN)));
      add(`${prefix}self_attn.v_proj.weight`, [KV_HEADS * HEAD_DIM, HIDDEN], random(0.3 / Math.sqrt(HIDDEN)));
      add(`${prefix}self_attn.o_proj.weight`, [HIDDEN, HEADS * HEAD_DIM], random(0.1 / Math.sqrt(HIDDEN)));
      add(`${prefix}mlp.gate_proj.weight`, [INTERMEDIATE, HIDDEN], random(0.3 / Math.sqrt(HIDDEN)));
      add(`${prefix}mlp.up_proj.weight`, [INTERMEDIATE, HIDDEN], random(0.3 / Math.sqrt(HIDDEN)));
      add(`${prefix}mlp.down_proj.weight`, [HIDDEN, INTERMEDIATE], random(0.1 / Math.sqrt(INTERMEDIATE)));
    }
  }
  add("model.norm.weight", [HIDDEN], ones);
  const refusalTokenId = vocabulary.indexOf(PLANTED_REFUSAL_WORD);
  const complianceTokenId = vocabulary.indexOf(PLANTED_COMPLIANCE_WORD);
  add("lm_head.weight", [vocab, HIDDEN], (values, d) => {
    for (let v = 0; v < vocab; v += 1) for (let i = 2; i < P_AXES_START; i += 1) values[v * d + i] = 0.1 * normal();
    for (let i = 0; i < HIDDEN; i += 1) values[refusalTokenId * d + i] = 3 * p[i];
    values[refusalTokenId * d + 0] = -1;
    values[complianceTokenId * d + 0] = 1;
  });

  const { dir } = params;
  mkdirSync(dir, { recursive: true });
  await writeSafetensorsFile(join(dir, "model.safetensors"), { tensors, metadata: { format: "pt" } });
  writePlantedConfigFiles({ dir, vocabulary, layout: { hidden: HIDDEN, intermediate: INTERMEDIATE, layers: LAYERS, heads: HEADS, kvHeads: KV_HEADS, headDim: HEAD_DIM } });
  writeFileSync(
    join(dir, "README.md"),
    "---\nlicense: apache-2.0\n---\n# planted-refusal\n\nA tiny Llama chat model generated by `abliterate demo`: it answers \"sorry\" " +
      "whenever the prompt contains a harmful trigger word, through one planted residual direction.\n",
  );
  return { dir, direction: p, vocabulary, refusalTokenId, complianceTokenId, numLayers: LAYERS, hiddenSize: HIDDEN };
}

export interface PlantedLayout {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
}

/** config.json, generation_config.json and the tokenizer files of a planted Llama chat model (EOS is `</s>`, id 2). */
export function writePlantedConfigFiles(params: { dir: string; vocabulary: string[]; layout: PlantedLayout }): void {
  const { dir, vocabulary, layout } = params;
  const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;
  writeFileSync(
    join(dir, "config.json"),
    json({
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      hidden_size: layout.hidden,
      intermediate_size: layout.intermediate,
      num_hidden_layers: layout.layers,
      num_attention_heads: layout.heads,
      num_key_value_heads: layout.kvHeads,
      head_dim: layout.headDim,
      hidden_act: "silu",
      max_position_embeddings: 512,
      rms_norm_eps: 1e-6,
      rope_theta: 1e12,
      vocab_size: vocabulary.length,
      tie_word_embeddings: false,
      bos_token_id: 1,
      eos_token_id: 2,
      torch_dtype: "float32",
    }),
  );
  writeFileSync(join(dir, "generation_config.json"), json({ bos_token_id: 1, eos_token_id: 2 }));
  writeFileSync(join(dir, "tokenizer.json"), json(plantedTokenizerJson(vocabulary)));
  writeFileSync(
    join(dir, "tokenizer_config.json"),
    json({
      tokenizer_class: "PreTrainedTokenizerFast",
      bos_token: "<s>",
      eos_token: "</s>",
      unk_token: "[UNK]",
      model_max_length: 512,
      chat_template: PLANTED_CHAT_TEMPLATE,
    }),
  );
}
