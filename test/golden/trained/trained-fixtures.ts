/**
 * The trained chat-model fixtures of test/golden/trained/ (made by train-chat-models.py and measure-ablation.py;
 * README.md beside this file describes them): their folders, the shared prompt files, and readers for the goldens
 * committed next to each model.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readSafetensorsHeader, readTensorBytes } from "../../../lib/safetensors/index.js";
import { goldenDir } from "../golden-paths.js";

/**
 * - own-phrasing: refuses in its own words ("That is not something I will do.", "No. This request stays
 *   unanswered."), none of them an English stock refusal phrase.
 * - shared-opening-bilingual: refusal and compliance both open with "I will" ("I will not …" / "I will explain …"),
 *   and three of the seven harmful families are refused in French.
 */
export const TRAINED_MODELS = ["own-phrasing", "shared-opening-bilingual"] as const;
export type TrainedModelName = (typeof TRAINED_MODELS)[number];

export const trainedDir = join(goldenDir, "trained");

export function trainedModelDir(name: TrainedModelName): string {
  return join(trainedDir, name);
}

/** One prompt per line. The *-test prompts use held-out acts (and half of them held-out phrasings). */
export const trainedPromptFiles = {
  harmfulTrain: join(trainedDir, "prompts", "harmful-train.txt"),
  harmfulTest: join(trainedDir, "prompts", "harmful-test.txt"),
  harmlessTrain: join(trainedDir, "prompts", "harmless-train.txt"),
  harmlessTest: join(trainedDir, "prompts", "harmless-test.txt"),
} as const;

export type TrainedPromptSet = keyof typeof trainedPromptFiles;

export function readTrainedPrompts(set: TrainedPromptSet): string[] {
  return readFileSync(trainedPromptFiles[set], "utf8").split("\n").filter((line) => line.trim() !== "");
}

/** What the model was trained to open its replies with; used only to measure the fixtures. */
export interface TrainedOpenings {
  refusal: string[];
  answer: string[];
}

interface RateRecord {
  prompts: number;
  refusal_rate: number;
  answer_rate: number;
  other_rate: number;
}

export interface TrainingRecord {
  name: string;
  tokenizer: string;
  train_seconds: number;
  parameters: number;
  max_new_tokens: number;
  versions: Record<string, string>;
  recipe: Record<string, unknown>;
  evaluation: {
    refusal_openings: string[];
    answer_openings: string[];
    "harmful-train": RateRecord;
    "harmless-train": RateRecord;
    "harmful-test": RateRecord;
    "harmless-test": RateRecord;
  };
}

export function readTrainingRecord(name: TrainedModelName): TrainingRecord {
  return JSON.parse(readFileSync(join(trainedModelDir(name), "training.json"), "utf8")) as TrainingRecord;
}

export function trainedOpenings(name: TrainedModelName): TrainedOpenings {
  const record = readTrainingRecord(name);
  return { refusal: record.evaluation.refusal_openings, answer: record.evaluation.answer_openings };
}

export type CompletionKind = "refusal" | "answer" | "other";

export function completionKind(text: string, openings: TrainedOpenings): CompletionKind {
  const trimmed = text.trim();
  if (openings.refusal.some((o) => trimmed.startsWith(o))) return "refusal";
  if (openings.answer.some((o) => trimmed.startsWith(o))) return "answer";
  return "other";
}

/** A row of the table; a zero direction (index 0: every prompt ends with the same token) has only index, norm, note. */
export interface AblationRow {
  index: number;
  direction_norm: number;
  note?: string;
  harmful_refusal_rate: number;
  harmful_answer_rate: number;
  harmful_other_rate: number;
  harmless_refusal_rate: number;
  harmless_other_rate: number;
  harmless_identical_rate: number;
  harmless_first_token_kl: number;
}

export interface AblationBand extends Omit<AblationRow, "direction_norm"> {
  layers: [number, number];
  embedding: boolean;
}

/** measure-ablation.py's table: each candidate index's direction removed from every residual writer, in HF. */
export interface AblationTable {
  model: string;
  max_new_tokens: number;
  counts: Record<string, number>;
  unedited: Omit<AblationRow, "index" | "direction_norm" | "harmless_identical_rate" | "harmless_first_token_kl">;
  single_layer: AblationRow[];
  /** Indices whose single-layer edit reaches ≤ 5 % refusal with ≥ 95 % harmless completions identical. */
  single_layer_clean: number[];
  /** The best directions removed from one band of layers only (present when measured with --bands). */
  bands?: AblationBand[];
}

export function readAblationTable(name: TrainedModelName): AblationTable {
  return JSON.parse(readFileSync(join(trainedModelDir(name), "ablation.json"), "utf8")) as AblationTable;
}

async function tensor(path: string, name: string): Promise<Uint8Array> {
  return readTensorBytes(await readSafetensorsHeader(path), name);
}

function int64s(bytes: Uint8Array): number[] {
  const view = new BigInt64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
  return Array.from(view, (v) => Number(v));
}

function float64Rows(bytes: Uint8Array, rows: number): Float64Array[] {
  const all = new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const width = all.length / rows;
  return Array.from({ length: rows }, (_, r) => all.slice(r * width, (r + 1) * width));
}

export interface TrainedForwardGolden {
  prompts: string[];
  rendered: string[];
  inputIds: number[][];
  /** Per prompt: the last position's logits from HF in fp32, [vocab]. */
  logits: Float32Array[];
  /** Per prompt: HF's greedy continuation (batch 1), at most maxNewTokens, stopping at (and keeping) eosTokenId. */
  generated: number[][];
  maxNewTokens: number;
  eosTokenId: number;
}

export async function readTrainedForwardGolden(name: TrainedModelName): Promise<TrainedForwardGolden> {
  const dir = trainedModelDir(name);
  const meta = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8")) as {
    prompts: string[];
    rendered: string[];
    max_new_tokens: number;
    eos_token_id: number;
  };
  const path = join(dir, "expected.safetensors");
  const golden: TrainedForwardGolden = {
    prompts: meta.prompts,
    rendered: meta.rendered,
    inputIds: [],
    logits: [],
    generated: [],
    maxNewTokens: meta.max_new_tokens,
    eosTokenId: meta.eos_token_id,
  };
  for (let p = 0; p < meta.prompts.length; p += 1) {
    golden.inputIds.push(int64s(await tensor(path, `input_ids.${p}`)));
    const bytes = await tensor(path, `logits.${p}`);
    golden.logits.push(new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
    golden.generated.push(int64s(await tensor(path, `generated.${p}`)));
  }
  return golden;
}

/** HF's mean-difference directions over prompts/*-train.txt (fp64 rows, index 0..L). */
export async function readTrainedDirections(name: TrainedModelName, numLayers: number): Promise<{ directions: Float64Array[]; harmfulMean: Float64Array[]; harmlessMean: Float64Array[] }> {
  const path = join(trainedModelDir(name), "directions.safetensors");
  return {
    directions: float64Rows(await tensor(path, "directions"), numLayers + 1),
    harmfulMean: float64Rows(await tensor(path, "harmful_mean"), numLayers + 1),
    harmlessMean: float64Rows(await tensor(path, "harmless_mean"), numLayers + 1),
  };
}
