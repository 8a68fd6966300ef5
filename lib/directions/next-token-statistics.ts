/** Per-row statistics of next-token logits: refusal log-odds and KL divergence, computed in fp64. */

function logSumExp(values: ArrayLike<number>, start: number, length: number, include?: (index: number) => boolean): number {
  let max = -Infinity;
  for (let i = 0; i < length; i += 1) if (!include || include(i)) max = Math.max(max, values[start + i]);
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (let i = 0; i < length; i += 1) if (!include || include(i)) sum += Math.exp(values[start + i] - max);
  return max + Math.log(sum);
}

/**
 * log P(refusal) − log P(not refusal) at one position, where P(refusal) is the probability mass of the refusal
 * first-tokens (Arditi et al.'s refusal score). Positive: refusing is more likely than not.
 */
export function refusalLogOdds(logits: ArrayLike<number>, row: number, vocabSize: number, refusalIds: ReadonlySet<number>): number {
  const start = row * vocabSize;
  const refusing = logSumExp(logits, start, vocabSize, (i) => refusalIds.has(i));
  const other = logSumExp(logits, start, vocabSize, (i) => !refusalIds.has(i));
  return refusing - other;
}

/** KL(P ‖ Q) of the softmax distributions of two logit rows (P: the reference). */
export function klDivergence(reference: ArrayLike<number>, modified: ArrayLike<number>, row: number, vocabSize: number): number {
  const start = row * vocabSize;
  const lp = logSumExp(reference, start, vocabSize);
  const lq = logSumExp(modified, start, vocabSize);
  let kl = 0;
  for (let i = 0; i < vocabSize; i += 1) {
    const logP = reference[start + i] - lp;
    const p = Math.exp(logP);
    if (p > 0) kl += p * (logP - (modified[start + i] - lq));
  }
  return Math.max(0, kl);
}

export function mean(values: readonly number[]): number {
  return values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length;
}
