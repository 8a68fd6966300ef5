/**
 * Contrastive prompt sets → seeded, disjoint train / validation / test splits (train: candidate directions,
 * validation: selection, test: evaluation). A set that is empty, too small to split, or that shares prompts with
 * the other set is refused with the reason.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";

export interface PromptSplit {
  train: string[];
  validation: string[];
  test: string[];
}

export interface SplitOptions {
  seed?: number;
  /** Fractions of validation and test (default 0.2 each); train gets the rest. */
  validationFraction?: number;
  testFraction?: number;
  /** Caps (after the split), so a 50 000-prompt dataset does not mean 50 000 forward passes. */
  maxTrain?: number;
  maxValidation?: number;
  maxTest?: number;
}

/** The fewest prompts a set may have: 4 to train on, 2 to select with, 2 to evaluate on. */
export const MIN_PROMPTS_PER_SET = 8;
const MIN_TRAIN = 4;
const MIN_HELD_OUT = 2;

/** mulberry32: the same shuffle on every machine for a given seed. */
function seededUniform(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function seededShuffle<T>(items: readonly T[], seed: number): T[] {
  const random = seededUniform(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

function uniquePrompts(prompts: readonly string[], label: string): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const prompt of prompts) {
    const text = prompt.trim();
    if (text === "" || seen.has(text)) continue;
    seen.add(text);
    out.push(text);
  }
  if (out.length === 0) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `the ${label} prompt set is empty`);
  if (out.length < MIN_PROMPTS_PER_SET) {
    throw new AbliterateError(
      ErrorCodes.INVALID_ARGUMENT,
      `the ${label} prompt set is too small: ${out.length} distinct prompt(s), at least ${MIN_PROMPTS_PER_SET} are needed (${MIN_TRAIN} to train, ${MIN_HELD_OUT} to select, ${MIN_HELD_OUT} to evaluate)`,
    );
  }
  return out;
}

export function splitPromptSet(prompts: readonly string[], label: string, options: SplitOptions = {}): PromptSplit {
  const unique = uniquePrompts(prompts, label);
  const shuffled = seededShuffle(unique, options.seed ?? 0);
  const n = shuffled.length;
  const validation = Math.max(MIN_HELD_OUT, Math.round(n * (options.validationFraction ?? 0.2)));
  const test = Math.max(MIN_HELD_OUT, Math.round(n * (options.testFraction ?? 0.2)));
  if (n - validation - test < MIN_TRAIN) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `the ${label} prompt set is too small for the split fractions: ${n} prompts leave fewer than ${MIN_TRAIN} to train on`);
  }
  const cap = (list: string[], max: number | undefined) => (max !== undefined ? list.slice(0, max) : list);
  return {
    validation: cap(shuffled.slice(0, validation), options.maxValidation),
    test: cap(shuffled.slice(validation, validation + test), options.maxTest),
    train: cap(shuffled.slice(validation + test), options.maxTrain),
  };
}

export interface ContrastSplits {
  positive: PromptSplit;
  negative: PromptSplit;
}

/** Splits both sets after checking they share no prompt (a shared prompt would be its own contrast). */
export function splitContrastSets(params: {
  positive: readonly string[];
  negative: readonly string[];
  labels?: { positive: string; negative: string };
  options?: SplitOptions;
}): ContrastSplits {
  const labels = params.labels ?? { positive: "positive", negative: "negative" };
  const positive = uniquePrompts(params.positive, labels.positive);
  const negative = uniquePrompts(params.negative, labels.negative);
  const negativeSet = new Set(negative);
  const shared = positive.filter((prompt) => negativeSet.has(prompt));
  if (shared.length > 0) {
    const shown = shared.slice(0, 3).map((prompt) => JSON.stringify(prompt.length > 60 ? `${prompt.slice(0, 57)}...` : prompt));
    throw new AbliterateError(
      ErrorCodes.INVALID_ARGUMENT,
      `the ${labels.positive} and ${labels.negative} prompt sets overlap: ${shared.length} prompt(s) are in both (${shown.join(", ")}${shared.length > 3 ? ", ..." : ""}); the two sets must be disjoint`,
    );
  }
  const seed = params.options?.seed ?? 0;
  return {
    positive: splitPromptSet(positive, labels.positive, { ...params.options, seed }),
    negative: splitPromptSet(negative, labels.negative, { ...params.options, seed: seed + 1 }),
  };
}
