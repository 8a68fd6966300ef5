/**
 * A small seeded PRNG for the search. Math.random cannot be seeded, and the search must be reproducible: the same
 * seed and the same finished trials give the same next trial. Every draw of trial n comes from its own stream,
 * derived from (seed, n, purpose) alone, so the sampler carries no hidden state between trials and a resumed run
 * (which only has the stored trials) continues exactly where an uninterrupted one would.
 *
 * xoshiro128** (Blackman & Vigna), seeded through splitmix32: 32-bit integer arithmetic only (Math.imul and shifts),
 * so it is bit-identical on every platform.
 */

export interface Prng {
  /** Uniform in [0, 1), 53 random bits. */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** Standard normal (Box–Muller, the cosine branch only, so each call consumes exactly two uniforms). */
  normal(): number;
}

/** One step of splitmix32: a well-mixed 32-bit output from any 32-bit input. */
function mix32(value: number): number {
  let z = (value + 0x9e3779b9) | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/** Folds any list of safe integers (seed, trial number, stream tag) into one 32-bit hash. */
function hashWords(words: readonly number[]): number {
  let h = 0x6a09e667;
  for (const word of words) {
    if (!Number.isSafeInteger(word)) throw new RangeError(`PRNG seed words must be safe integers, got ${word}`);
    const low = word >>> 0; // the low 32 bits (two's complement for negatives)
    const high = Math.floor(word / 0x1_0000_0000) >>> 0;
    h = mix32(h ^ low);
    h = mix32(h ^ high);
  }
  return h;
}

export function createPrng(...words: number[]): Prng {
  let seed = hashWords(words);
  const state = new Uint32Array(4);
  for (let i = 0; i < 4; i += 1) {
    seed = mix32(seed + i);
    state[i] = seed;
  }
  if (state[0] === 0 && state[1] === 0 && state[2] === 0 && state[3] === 0) state[0] = 1; // xoshiro's one bad state

  const next32 = (): number => {
    const s1 = state[1];
    const product = Math.imul(s1, 5);
    const result = Math.imul((product << 7) | (product >>> 25), 9) >>> 0;
    const t = s1 << 9;
    state[2] ^= state[0];
    state[3] ^= state[1];
    state[1] ^= state[2];
    state[0] ^= state[3];
    state[2] ^= t;
    state[3] = (state[3] << 11) | (state[3] >>> 21);
    return result;
  };

  const next = (): number => ((next32() >>> 5) * 67108864 + (next32() >>> 6)) / 9007199254740992;
  return {
    next,
    int(n: number): number {
      return Math.min(n - 1, Math.floor(next() * n));
    },
    normal(): number {
      const u1 = 1 - next(); // (0, 1]: the logarithm stays finite
      const u2 = next();
      return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    },
  };
}

/** Purposes of the per-trial streams, so two uses within one trial never share draws. */
export const PrngStream = { startup: 1, tpe: 2, random: 3, scramble: 4 } as const;
