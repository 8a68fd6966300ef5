/**
 * Points for the startup trials (before TPE has enough history) and for plain random search.
 *
 * "random" (the default): independent uniform points from the trial's own PRNG stream (optuna's RandomSampler).
 * "halton": a scrambled Halton sequence. Point n uses, in dimension j, the radical inverse of n in the j-th
 * prime base with every digit passed through a permutation of 0..base−1 drawn from the seed (random-digit
 * scrambling): it covers the box more evenly than random points for the few dozen startup trials, and the
 * scrambling removes the correlations plain Halton has between high prime bases. A permutation that moves 0 also
 * changes the trailing zeros, so digits are taken down to 1e−12.
 */
import { createPrng, PrngStream } from "./prng.js";
import { fromUnit, type Params, type SearchSpace } from "./search-space.js";

const PRIMES: number[] = [];
function prime(index: number): number {
  for (let candidate = PRIMES.length === 0 ? 2 : PRIMES[PRIMES.length - 1] + 1; PRIMES.length <= index; candidate += 1) {
    if (PRIMES.every((p) => candidate % p !== 0)) PRIMES.push(candidate);
  }
  return PRIMES[index];
}

function digitPermutation(seed: number, dimension: number, base: number): number[] {
  const prng = createPrng(seed, dimension, PrngStream.scramble);
  const permutation = Array.from({ length: base }, (_, i) => i);
  for (let i = base - 1; i > 0; i -= 1) {
    const j = prng.int(i + 1);
    [permutation[i], permutation[j]] = [permutation[j], permutation[i]];
  }
  return permutation;
}

/** The scrambled radical inverse of `index` (≥ 0) in `base`, in [0, 1). */
function scrambledRadicalInverse(index: number, base: number, permutation: readonly number[]): number {
  let value = 0;
  let scale = 1 / base;
  let rest = index;
  // Digits of index, then its trailing zeros down to 1e−12: a deeper tail of (base − 1)s would round the sum up
  // onto the next stratum's edge (0.0010111…1 to 0.0011 in base 2), and nothing below 1e−12 matters to a search.
  while (scale > 1e-12) {
    value += permutation[rest % base] * scale;
    rest = Math.floor(rest / base);
    scale /= base;
    if (rest === 0 && permutation[0] === 0) break;
  }
  return Math.min(value, 1 - Number.EPSILON / 2);
}

export function haltonPoint(space: SearchSpace, seed: number, index: number): Params {
  return Object.fromEntries(
    space.dimensions.map((dimension, j) => {
      const base = prime(j);
      return [dimension.name, fromUnit(dimension, scrambledRadicalInverse(index, base, digitPermutation(seed, j, base)))];
    }),
  );
}

export function randomPoint(space: SearchSpace, seed: number, index: number): Params {
  const prng = createPrng(seed, index, PrngStream.random);
  return Object.fromEntries(space.dimensions.map((dimension) => [dimension.name, fromUnit(dimension, prng.next())]));
}
