/**
 * The multi-objective TPE sampler on problems whose Pareto front is known in closed form: ZDT1 on a 3- and a
 * 4-dimensional box, and a mixed float / categorical / integer problem. It must come within ε of the true front,
 * beat random search's hypervolume at the same trial count, and be exactly reproducible from its seed. Also: the
 * numerical pieces it stands on (erf, hypervolume, the PRNG) against closed forms and tabulated values.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { erf, erfc, logNormalMass, normalCdf } from "../../lib/directions/search/normal.js";
import { dominates, hypervolume, nondominationRanks, paretoFront, selectByHypervolume } from "../../lib/directions/search/pareto.js";
import { createPrng } from "../../lib/directions/search/prng.js";
import { runSearch, type SearchResult } from "../../lib/directions/search/run-search.js";
import type { Params, SearchSpace } from "../../lib/directions/search/search-space.js";
import { goodSetSize, suggestTrial, type SamplerOptions } from "../../lib/directions/search/suggest-trial.js";
import type { Evaluation, Trial } from "../../lib/directions/search/trial.js";

const OBJECTIVES = [{ name: "f1" }, { name: "f2" }];
const REFERENCE = [1.1, 1.1];
/** Hypervolume of the true front f2 = 1 − √f1, f1 ∈ [0, 1], below (1.1, 1.1): 0.1 + ∫₀¹ √f1 df1 + 0.1 · 1.1. */
const TRUE_HYPERVOLUME = 0.1 + 2 / 3 + 0.11;

function zdt1(dims: number): { space: SearchSpace; f: (p: Params) => number[] } {
  const space: SearchSpace = { dimensions: Array.from({ length: dims }, (_, i) => ({ kind: "float" as const, name: `x${i}`, low: 0, high: 1, default: 0 })) };
  const f = (p: Params): number[] => {
    const x = space.dimensions.map((d) => p[d.name] as number);
    const g = 1 + (9 / (dims - 1)) * x.slice(1).reduce((a, b) => a + b, 0);
    return [x[0], g * (1 - Math.sqrt(x[0] / g))];
  };
  return { space, f };
}

/** Front: c = "b", flag = true, k = 3, y = 0.3 (an interior optimum), where again f2 = 1 − √f1. */
const MIXED_SPACE: SearchSpace = {
  dimensions: [
    { kind: "float", name: "x", low: 0, high: 1, default: 0 },
    { kind: "float", name: "y", low: 0, high: 1, default: 0 },
    { kind: "categorical", name: "c", choices: ["a", "b", "c", "d"], default: "a" },
    { kind: "categorical", name: "flag", choices: [false, true], default: false },
    { kind: "int", name: "k", low: 1, high: 5, default: 1 },
  ],
};
const OFFSET: Record<string, number> = { a: 0.6, b: 0, c: 0.3, d: 1 };
function mixed(p: Params): number[] {
  const g = 1 + OFFSET[p.c as string] + (p.flag ? 0 : 0.5) + 4 * ((p.y as number) - 0.3) ** 2 + 0.25 * Math.abs((p.k as number) - 3);
  const x = p.x as number;
  return [x, g * (1 - Math.sqrt(x / g))];
}

async function search(space: SearchSpace, f: (p: Params) => number[], trials: number, seed: number, sampler: SamplerOptions = {}, violation?: (values: number[]) => number): Promise<SearchResult> {
  const evaluate = async (p: Params): Promise<Evaluation> => {
    const values = f(p);
    return violation ? { values, violation: violation(values) } : { values };
  };
  const generator = runSearch({ space, objectives: OBJECTIVES, evaluate, trials, seed, sampler });
  for (;;) {
    const next = await generator.next();
    if (next.done) return next.value;
  }
}

const frontHypervolume = (trials: readonly Trial[]) => hypervolume(paretoFront(trials).map((t) => t.values), REFERENCE);
/** How far above the true front f2 = 1 − √f1 each front point lies (≥ 0 for every feasible point). */
const gaps = (trials: readonly Trial[]) => paretoFront(trials).map((t) => ({ f1: t.values[0], gap: t.values[1] - (1 - Math.sqrt(t.values[0])) }));

function assertNearFront(trials: readonly Trial[], epsilon: number, minPoints: number, minSpan: number, label: string) {
  const close = gaps(trials).filter((g) => g.gap <= epsilon);
  assert.ok(gaps(trials).every((g) => g.gap >= -1e-12), `${label}: a point below the true front`);
  const span = close.length > 0 ? Math.max(...close.map((c) => c.f1)) - Math.min(...close.map((c) => c.f1)) : 0;
  assert.ok(close.length >= minPoints && span >= minSpan, `${label}: ${close.length} front points within ${epsilon} of the true front, spanning f1 by ${span.toFixed(2)}`);
}

test("ZDT1 on a 3-dim box: after 200 trials TPE is within ε of the true front and doubles random search's hypervolume", async (t) => {
  const { space, f } = zdt1(3);
  for (const seed of [1, 2, 3]) {
    const tpe = await search(space, f, 200, seed);
    const random = await search(space, f, 200, seed, { kind: "random" });
    const [hvTpe, hvRandom] = [frontHypervolume(tpe.trials), frontHypervolume(random.trials)];
    t.diagnostic(`seed ${seed}: hypervolume TPE ${hvTpe.toFixed(4)}, random ${hvRandom.toFixed(4)}, true ${TRUE_HYPERVOLUME.toFixed(4)}`);
    assert.ok(hvTpe >= 0.8 * TRUE_HYPERVOLUME, `seed ${seed}: TPE hypervolume ${hvTpe} < 80% of the true ${TRUE_HYPERVOLUME}`);
    assert.ok(hvTpe >= 1.5 * hvRandom, `seed ${seed}: TPE ${hvTpe} vs random ${hvRandom}`);
    assertNearFront(tpe.trials, 0.05, 5, 0.3, `seed ${seed}`);
    // Trials needed: TPE passes 75% of the true hypervolume within 100 trials (random search needs 2500–4500).
    const early = frontHypervolume(tpe.trials.slice(0, 100));
    assert.ok(early >= 0.75 * TRUE_HYPERVOLUME, `seed ${seed}: after 100 trials TPE's hypervolume is ${early}`);
    // Random search at the same count is nowhere near: its best point is well above the front.
    assert.ok(Math.min(...gaps(random.trials).map((g) => g.gap)) > 0.1, `seed ${seed}: random search came within 0.1`);
  }
});

test("ZDT1 on a 4-dim box: 200 TPE trials come within 0.1 of the true front, random search's nowhere near", async (t) => {
  const { space, f } = zdt1(4);
  for (const seed of [1, 2, 3]) {
    const tpe = await search(space, f, 200, seed);
    const random = await search(space, f, 200, seed, { kind: "random" });
    const [hvTpe, hvRandom] = [frontHypervolume(tpe.trials), frontHypervolume(random.trials)];
    t.diagnostic(`seed ${seed}: hypervolume TPE ${hvTpe.toFixed(4)}, random ${hvRandom.toFixed(4)}`);
    assert.ok(hvTpe >= 0.65 * TRUE_HYPERVOLUME, `seed ${seed}: TPE hypervolume ${hvTpe}`);
    assert.ok(hvTpe >= hvRandom + 0.4, `seed ${seed}: TPE ${hvTpe} vs random ${hvRandom}`);
    assert.ok(Math.min(...gaps(tpe.trials).map((g) => g.gap)) <= 0.1, `seed ${seed}: no TPE point within 0.1 of the front`);
    assert.ok(Math.min(...gaps(random.trials).map((g) => g.gap)) > 0.3, `seed ${seed}: random search came within 0.3`);
  }
});

test("mixed float / categorical / int problem: TPE finds the optimal choices and the front within 100 trials", async (t) => {
  let advantage = 0;
  for (const seed of [1, 2, 3]) {
    const tpe = await search(MIXED_SPACE, mixed, 100, seed);
    const random = await search(MIXED_SPACE, mixed, 100, seed, { kind: "random" });
    const [hvTpe, hvRandom] = [frontHypervolume(tpe.trials), frontHypervolume(random.trials)];
    t.diagnostic(`seed ${seed}: hypervolume TPE ${hvTpe.toFixed(4)}, random ${hvRandom.toFixed(4)}`);
    // x alone spreads f1, so random search is not hopeless here; TPE still wins on every seed.
    assert.ok(hvTpe >= hvRandom + 0.05, `seed ${seed}: TPE ${hvTpe} vs random ${hvRandom}`);
    advantage += (hvTpe - hvRandom) / 3;
    assertNearFront(tpe.trials, 0.05, 8, 0.5, `seed ${seed}`);
    // The near-front points have the optimal categorical and integer values (only those reach g ≈ 1).
    const optimal = tpe.trials.filter((trial) => trial.params.c === "b" && trial.params.flag === true && trial.params.k === 3);
    const optimalRandom = random.trials.filter((trial) => trial.params.c === "b" && trial.params.flag === true && trial.params.k === 3);
    t.diagnostic(`seed ${seed}: ${optimal.length} trials with the optimal choices (random ${optimalRandom.length})`);
    assert.ok(optimal.length >= 3 * optimalRandom.length && optimal.length >= 10, `seed ${seed}: ${optimal.length} optimal-choice trials (random ${optimalRandom.length})`);
  }
  assert.ok(advantage >= 0.15, `mean hypervolume advantage ${advantage}`);
});

test("the search is exactly reproducible: same seed, same trials; another seed, other trials", async () => {
  const a = await search(MIXED_SPACE, mixed, 40, 11);
  const b = await search(MIXED_SPACE, mixed, 40, 11);
  const strip = (trials: readonly Trial[]) => trials.map(({ seconds: _, ...rest }) => rest);
  assert.deepEqual(strip(a.trials), strip(b.trials));
  const c = await search(MIXED_SPACE, mixed, 40, 12);
  assert.notDeepEqual(strip(a.trials).map((trial) => trial.params), strip(c.trials).map((trial) => trial.params));
  // The next suggestion is a pure function of (space, trials, seed).
  assert.deepEqual(suggestTrial({ space: MIXED_SPACE, trials: a.trials, seed: 11 }), suggestTrial({ space: MIXED_SPACE, trials: b.trials, seed: 11 }));
});

test("startup trials: scrambled Halton points stratify the box; every point of every sampler lies inside the space", async () => {
  const { space, f } = zdt1(3);
  const result = await search(space, f, 30, 5, { startupTrials: 16, startup: "halton" });
  const startup = result.trials.slice(0, 16).map((trial) => trial.params.x0 as number);
  // 16 Halton points in base 2 put exactly one point in each sixteenth of [0, 1) (a (0,1)-sequence, any scrambling).
  assert.deepEqual([...new Set(startup.map((x) => Math.floor(x * 16)))].sort((a, b) => a - b), Array.from({ length: 16 }, (_, i) => i));
  for (const trial of result.trials) for (const d of space.dimensions) assert.ok((trial.params[d.name] as number) >= 0 && (trial.params[d.name] as number) <= 1);
  const mixedTrials = [...(await search(MIXED_SPACE, mixed, 30, 5)).trials, ...(await search(MIXED_SPACE, mixed, 30, 5, { startup: "halton" })).trials];
  for (const trial of mixedTrials) {
    assert.ok(["a", "b", "c", "d"].includes(trial.params.c as string) && typeof trial.params.flag === "boolean");
    assert.ok(Number.isInteger(trial.params.k) && (trial.params.k as number) >= 1 && (trial.params.k as number) <= 5);
  }
});

test("constraints: infeasible trials inform the sampler but never reach the front; TPE finds more feasible points than random", async () => {
  const { space, f } = zdt1(3);
  const cap = (values: number[]) => Math.max(0, values[1] - 0.5); // "damage above the cap"
  const tpe = await search(space, f, 120, 3, {}, cap);
  const random = await search(space, f, 120, 3, { kind: "random" }, cap);
  for (const result of [tpe, random]) {
    assert.ok(result.trials.some((trial) => !trial.feasible));
    assert.ok(paretoFront(result.trials).every((trial) => trial.feasible && trial.values[1] <= 0.5));
  }
  const feasible = (result: SearchResult) => result.trials.filter((trial) => trial.feasible).length;
  assert.ok(feasible(tpe) >= 2 * feasible(random), `feasible: TPE ${feasible(tpe)}, random ${feasible(random)}`);
  assert.ok(Math.min(...gaps(tpe.trials).map((g) => g.gap)) <= 0.05);
});

test("an infeasible trial's unmeasured values change nothing the sampler or the pick does", async () => {
  // The same constrained search, once with every value measured and once with the first objective of each
  // infeasible trial left null (as the pipeline's search skips the behaviour pass of a trial its damage rules out).
  const { space, f } = zdt1(3);
  const run = async (measureInfeasible: boolean) => {
    const evaluate = async (p: Params): Promise<Evaluation> => {
      const values = f(p);
      const violation = Math.max(0, values[1] - 0.5);
      return { values: violation > 0 && !measureInfeasible ? [null, values[1]] : values, violation };
    };
    const generator = runSearch({ space, objectives: OBJECTIVES, evaluate, trials: 80, seed: 5 });
    for (;;) {
      const next = await generator.next();
      if (next.done) return next.value;
    }
  };
  const [measured, skipped] = [await run(true), await run(false)];
  const infeasible = skipped.trials.filter((trial) => !trial.feasible);
  assert.ok(infeasible.length >= 10 && infeasible.every((trial) => trial.values[0] === null), `${infeasible.length} infeasible trials, first values null`);
  assert.deepEqual(skipped.trials.map((trial) => trial.params), measured.trials.map((trial) => trial.params), "the same points, in the same order");
  assert.deepEqual(paretoFront(skipped.trials).map((trial) => trial.number), paretoFront(measured.trials).map((trial) => trial.number));
  assert.equal(skipped.best.trial?.number, measured.best.trial?.number);

  // A feasible trial must measure every value: null there is an error naming the trial and objective.
  const drain = async () => {
    for await (const _event of runSearch({ space, objectives: OBJECTIVES, evaluate: async () => ({ values: [null, 0.1] }), trials: 1, seed: 1 }));
  };
  await assert.rejects(drain(), /trial 0: objective "f1" is null/);
});

test("the good set grows as optuna's gamma: ⌈0.1 n⌉, at most 25", () => {
  assert.deepEqual([1, 9, 10, 11, 100, 249, 250, 251, 1000].map(goodSetSize), [1, 1, 1, 2, 10, 25, 25, 25, 25]);
});

test("hypervolume, dominance and ranks against closed forms", () => {
  assert.equal(hypervolume([[0.5, 0.5]], [1, 1]), 0.25);
  // Two boxes 0.75 × 0.25 and 0.25 × 0.75 overlapping in 0.25 × 0.25.
  assert.equal(hypervolume([[0.25, 0.75], [0.75, 0.25]], [1, 1]), 0.3125);
  assert.equal(hypervolume([[0.25, 0.75], [0.75, 0.25], [0.9, 0.9], [1.5, 0]], [1, 1]), 0.3125); // dominated / outside points add nothing
  assert.equal(hypervolume([[0.5, 0.5, 0.5]], [1, 1, 1]), 0.125);
  // Inclusion–exclusion in 3-D: 0.5·1·1 + 1·0.5·1 − 0.5·0.5·1 = 0.75 with the reference at the origin + 1.
  assert.equal(hypervolume([[0.5, 0, 0], [0, 0.5, 0]], [1, 1, 1]), 0.75);
  assert.ok(dominates([0, 1], [1, 1]) && !dominates([1, 1], [1, 1]) && !dominates([0, 2], [1, 1]));
  assert.deepEqual(nondominationRanks([[0, 1], [1, 0], [1, 1], [2, 2], [0.5, 0.5]]), [0, 0, 1, 2, 0]);
  // Greedy subset selection keeps the two extremes of a convex front before its middle.
  assert.deepEqual(selectByHypervolume([[0, 1], [0.45, 0.45], [1, 0]], 1, [1.1, 1.1]), [1]);
  assert.deepEqual(selectByHypervolume([[0, 1], [0.5, 0.6], [1, 0]], 3, [1.1, 1.1]).sort(), [0, 1, 2]);
});

test("erf, erfc and normal masses match tabulated values to ~1e-15 relative, far into the tails", () => {
  const table: [number, number][] = [[0.1, 0.1124629160182849], [0.5, 0.5204998778130465], [1, 0.8427007929497149], [2, 0.9953222650189527], [2.4, 0.999311486103355]];
  for (const [x, value] of table) {
    assert.ok(Math.abs(erf(x) - value) <= 2e-16 * 4, `erf(${x}) = ${erf(x)}`);
    assert.ok(Math.abs(erf(-x) + value) <= 2e-16 * 4);
  }
  const tails: [number, number][] = [[2.5, 4.069520174449590e-4], [3, 2.209049699858544e-5], [5, 1.537459794428035e-12], [10, 2.088487583762545e-45], [26, 5.663192408856143e-296]];
  for (const [x, value] of tails) assert.ok(Math.abs(erfc(x) / value - 1) < 1e-13, `erfc(${x}) = ${erfc(x)}`);
  assert.ok(Math.abs(normalCdf(1.959963984540054) - 0.975) < 1e-15);
  // The mass of [8, 9] under N(0, 1) is Φ(9) − Φ(8) ≈ 6.2198e-16: far below 1 − Φ's resolution, kept by the tail formula.
  assert.ok(Math.abs(Math.exp(logNormalMass(8, 9)) / 6.219831985865866e-16 - 1) < 1e-12);
  assert.ok(Math.abs(Math.exp(logNormalMass(-9, -8)) / 6.219831985865866e-16 - 1) < 1e-12);
  assert.ok(Number.isFinite(logNormalMass(60, 61)));
});

test("the PRNG is a pure function of its seed words, uniform enough, and 53-bit", () => {
  const a = createPrng(42, 7, 1);
  const b = createPrng(42, 7, 1);
  const drawsA = Array.from({ length: 1000 }, () => a.next());
  assert.deepEqual(drawsA, Array.from({ length: 1000 }, () => b.next()));
  assert.notDeepEqual(drawsA.slice(0, 10), Array.from({ length: 10 }, createPrng(42, 8, 1).next));
  assert.ok(drawsA.every((u) => u >= 0 && u < 1));
  const mean = drawsA.reduce((s, u) => s + u, 0) / drawsA.length;
  assert.ok(Math.abs(mean - 0.5) < 0.03, `mean ${mean}`);
  const normal = createPrng(3);
  const z = Array.from({ length: 4000 }, () => normal.normal());
  const zMean = z.reduce((s, v) => s + v, 0) / z.length;
  const zVar = z.reduce((s, v) => s + (v - zMean) ** 2, 0) / z.length;
  assert.ok(Math.abs(zMean) < 0.05 && Math.abs(zVar - 1) < 0.06, `normal mean ${zMean}, variance ${zVar}`);
  assert.ok(drawsA.some((u) => u * 2 ** 53 !== Math.floor(u * 2 ** 32) * 2 ** 21));
});
