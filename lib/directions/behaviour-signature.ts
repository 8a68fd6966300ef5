/**
 * The behaviour's signature, learned from the model's own completions instead of a phrase list: the token
 * sequences its completions of the positive prompts start with and its completions of the negative prompts do not.
 * It works on token ids, so it is the same for refusal in any language or casing, for formality or for French.
 *
 * - Preamble: the tokens every completion of both sets starts with (an empty think block, a role header) carry no
 *   contrast; they are kept at the front of each sequence but take no part in the search.
 * - A trie over the next `maxDepth` tokens counts, per node, how many positive and negative completions pass
 *   through it. A node is *distinctive* when at least `minSupport` of the positive completions pass through it and
 *   its share of positive over positive-plus-negative rates is at least `minPrecision`. The signature is the set of
 *   shallowest distinctive nodes: "I" may open both "I can't" and "I'd be happy to", so it is not distinctive and its
 *   children are searched instead. The sequences are prefix-free, so their probabilities add up.
 * - Priors: a phrase list (the built-in refusal openings) counts only where the model produces one; a distinctive
 *   node whose text starts a listed phrase may then have a single completion behind it.
 * - Override: with `labels` the caller says which completions show the behaviour (e.g. by user-given markers), and
 *   the trie separates those from the rest instead of the two prompt sets.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";

export interface SignatureSequence {
  /** Token ids, the preamble included. */
  tokens: number[];
  text: string;
  /** Completions of each side that start with it. */
  positive: number;
  negative: number;
  /** Kept because it starts a phrase of the prior, below the support threshold. */
  byPrior?: boolean;
}

export interface BehaviourSignature {
  preamble: number[];
  sequences: SignatureSequence[];
  /** Share of positive (behaviour) completions that start with a signature sequence, and of negative ones. */
  coverage: number;
  leak: number;
  /** coverage − leak: 1 when the sequences separate the two sides perfectly, 0 when not at all. */
  separability: number;
  /** What defined the two sides: the prompt sets, or the caller's labels (markers). */
  labelledBy: "prompt sets" | "markers";
  /** Prior phrases the model produced, for the report. */
  priorPhrasesSeen: string[];
  completions: { positive: number; negative: number };
  /** A few completions of each side, decoded, for the report and for errors. */
  samples: { positive: string[]; negative: string[] };
}

export interface LearnSignatureParams {
  /** Token ids of each completion (without the prompt). */
  positive: number[][];
  negative: number[][];
  decode: (ids: number[]) => string;
  /** Which completions show the behaviour, when the caller decides (markers); default: the positive set's. */
  labels?: { positive: boolean[]; negative: boolean[] };
  /** Phrases that count as evidence only where the model produces them. */
  priorPhrases?: readonly string[];
  maxDepth?: number;
  minSupport?: number;
  minPrecision?: number;
  maxSequences?: number;
  /** Below this coverage the sets are taken not to be separated by any behaviour. */
  minCoverage?: number;
  names?: { positive: string; negative: string };
}

export const SIGNATURE_DEFAULTS = { maxDepth: 4, minSupport: 0.03, minPrecision: 0.9, maxSequences: 8, minCoverage: 0.2, maxPreamble: 16 } as const;

interface TrieNode {
  children: Map<number, TrieNode>;
  positive: number;
  negative: number;
}

function normalizeText(text: string): string {
  return text.replace(/\u2019/g, "'").toLowerCase().trim();
}

function commonPrefix(sequences: number[][], cap: number): number[] {
  if (sequences.length === 0) return [];
  const first = sequences[0];
  let length = Math.min(first.length, cap);
  for (const sequence of sequences) {
    let i = 0;
    while (i < length && i < sequence.length && sequence[i] === first[i]) i += 1;
    length = i;
  }
  return first.slice(0, length);
}

export function learnSignature(params: LearnSignatureParams): BehaviourSignature {
  const maxDepth = params.maxDepth ?? SIGNATURE_DEFAULTS.maxDepth;
  const minSupport = params.minSupport ?? SIGNATURE_DEFAULTS.minSupport;
  const minPrecision = params.minPrecision ?? SIGNATURE_DEFAULTS.minPrecision;
  const maxSequences = params.maxSequences ?? SIGNATURE_DEFAULTS.maxSequences;
  const minCoverage = params.minCoverage ?? SIGNATURE_DEFAULTS.minCoverage;
  const names = params.names ?? { positive: "positive", negative: "negative" };
  const all = [...params.positive, ...params.negative];
  // Which completions show the behaviour: the positive set's, or the caller's labels across both sets.
  const isBehaviour = params.labels ? [...params.labels.positive, ...params.labels.negative] : all.map((_, i) => i < params.positive.length);
  const behaviourCount = isBehaviour.filter(Boolean).length;
  const otherCount = all.length - behaviourCount;
  const samples = {
    positive: params.positive.slice(0, 4).map(params.decode),
    negative: params.negative.slice(0, 4).map(params.decode),
  };
  const fail = (why: string): never => {
    const show = (label: string, texts: string[]) => texts.map((text) => `  ${label}: ${JSON.stringify(text.length > 80 ? `${text.slice(0, 77)}...` : text)}`).join("\n");
    throw new AbliterateError(
      ErrorCodes.SIGNATURE_NOT_FOUND,
      `${why}. The model's own completions:\n${show(names.positive, samples.positive)}\n${show(names.negative, samples.negative)}\n` +
        "If the sets really differ in behaviour, try more prompts, prompts that separate more clearly, longer completions " +
        "(--signature-tokens), or name the behaviour with --behaviour-markers \"phrase,phrase\".",
    );
  };
  if (behaviourCount === 0 || otherCount === 0) {
    fail(params.labels ? `the markers match ${behaviourCount === 0 ? "no" : "every"} completion, so they separate nothing` : "one of the sets has no completions");
  }
  // The preamble is never the whole of every completion: then nothing could differ after it.
  const preamble = commonPrefix(all, Math.min(SIGNATURE_DEFAULTS.maxPreamble, Math.max(0, Math.min(...all.map((c) => c.length)) - 1)));
  const root: TrieNode = { children: new Map(), positive: 0, negative: 0 };
  all.forEach((completion, index) => {
    let node = root;
    const behaviour = isBehaviour[index];
    for (let depth = 0; depth < maxDepth && preamble.length + depth < completion.length; depth += 1) {
      const token = completion[preamble.length + depth];
      let child = node.children.get(token);
      if (!child) node.children.set(token, (child = { children: new Map(), positive: 0, negative: 0 }));
      if (behaviour) child.positive += 1;
      else child.negative += 1;
      node = child;
    }
  });
  const priors = (params.priorPhrases ?? []).map(normalizeText).filter(Boolean);
  const priorPhrasesSeen = new Set<string>();
  const startsPrior = (text: string) => {
    const normalized = normalizeText(text);
    if (normalized.length < 2) return undefined;
    return priors.find((phrase) => phrase.startsWith(normalized) || normalized.startsWith(phrase));
  };
  const found: SignatureSequence[] = [];
  const visit = (node: TrieNode, path: number[]) => {
    for (const [token, child] of node.children) {
      const tokens = [...path, token];
      const positiveRate = child.positive / behaviourCount;
      const negativeRate = child.negative / otherCount;
      const precision = positiveRate / (positiveRate + negativeRate);
      const text = params.decode([...preamble, ...tokens]);
      const prior = child.positive > 0 ? startsPrior(params.decode(tokens)) : undefined;
      if (prior) priorPhrasesSeen.add(prior);
      if (child.positive > 0 && precision >= minPrecision && (positiveRate >= minSupport || prior !== undefined)) {
        found.push({ tokens: [...preamble, ...tokens], text, positive: child.positive, negative: child.negative, ...(positiveRate < minSupport ? { byPrior: true } : {}) });
      } else if (child.positive > 0) {
        visit(child, tokens);
      }
    }
  };
  visit(root, []);
  found.sort((a, b) => b.positive - a.positive || a.negative - b.negative || a.tokens.length - b.tokens.length);
  const sequences = found.slice(0, maxSequences);
  if (sequences.length === 0) fail(`no token sequence at the start of the completions is typical of the ${names.positive} set and rare in the ${names.negative} set`);
  const matches = (completion: number[]) => sequences.some((s) => s.tokens.every((token, i) => completion[i] === token));
  const behaviourMatched = all.filter((c, i) => isBehaviour[i] && matches(c)).length;
  const otherMatched = all.filter((c, i) => !isBehaviour[i] && matches(c)).length;
  const coverage = behaviourMatched / behaviourCount;
  const leak = otherMatched / otherCount;
  if (coverage < minCoverage) {
    fail(`the most typical openings of the ${names.positive} completions cover only ${(100 * coverage).toFixed(0)}% of them (at least ${(100 * minCoverage).toFixed(0)}% needed)`);
  }
  return {
    preamble,
    sequences,
    coverage,
    leak,
    separability: coverage - leak,
    labelledBy: params.labels ? "markers" : "prompt sets",
    priorPhrasesSeen: [...priorPhrasesSeen],
    completions: { positive: params.positive.length, negative: params.negative.length },
    samples,
  };
}

/** Whether a completion (token ids, without the prompt) starts with one of the signature's sequences. */
export function showsBehaviour(signature: Pick<BehaviourSignature, "sequences">, completion: readonly number[]): boolean {
  return signature.sequences.some((s) => s.tokens.length <= completion.length && s.tokens.every((token, i) => completion[i] === token));
}
