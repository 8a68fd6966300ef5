/**
 * Pareto dominance, non-domination ranks, hypervolume and hypervolume subset selection, all for minimization.
 * a dominates b when a ≤ b in every objective and a < b in at least one. The hypervolume of a set is the measure
 * of the region it dominates inside the box below a reference point: exact, by a sweep in 2-D and by slicing along
 * the last objective above (fine for the handful of objectives and few hundred points a search has).
 */
import { isFeasible, type FeasibleTrial, type Trial } from "./trial.js";

export function dominates(a: readonly number[], b: readonly number[]): boolean {
  let strictly = false;
  for (let i = 0; i < a.length; i += 1) {
    if (a[i] > b[i]) return false;
    if (a[i] < b[i]) strictly = true;
  }
  return strictly;
}

/**
 * Rank 0 = non-dominated, rank 1 = non-dominated once rank 0 is removed, and so on. With `enough`, peeling stops
 * once that many points are ranked (the sampler only needs the good set); the rest keep rank −1.
 */
export function nondominationRanks(points: readonly (readonly number[])[], enough = points.length): number[] {
  const ranks = new Array<number>(points.length).fill(-1);
  let remaining = points.length;
  for (let rank = 0; remaining > 0 && points.length - remaining < enough; rank += 1) {
    const front: number[] = [];
    for (let i = 0; i < points.length; i += 1) {
      if (ranks[i] !== -1) continue;
      let dominated = false;
      for (let j = 0; j < points.length && !dominated; j += 1) {
        if (j !== i && ranks[j] === -1 && dominates(points[j], points[i])) dominated = true;
      }
      if (!dominated) front.push(i);
    }
    for (const i of front) ranks[i] = rank;
    remaining -= front.length;
  }
  return ranks;
}

function hypervolume2d(points: readonly (readonly number[])[], reference: readonly number[]): number {
  const sorted = [...points].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let volume = 0;
  let floor = reference[1];
  for (const [x, y] of sorted) {
    if (y < floor) {
      volume += (reference[0] - x) * (floor - y);
      floor = y;
    }
  }
  return volume;
}

function hypervolumeSliced(points: readonly (readonly number[])[], reference: readonly number[]): number {
  const d = reference.length;
  if (points.length === 0) return 0;
  if (d === 1) return reference[0] - Math.min(...points.map((p) => p[0]));
  if (d === 2) return hypervolume2d(points, reference);
  const sorted = [...points].sort((a, b) => a[d - 1] - b[d - 1]);
  const lower = reference.slice(0, d - 1);
  let volume = 0;
  for (let i = 0; i < sorted.length; i += 1) {
    const top = i + 1 < sorted.length ? sorted[i + 1][d - 1] : reference[d - 1];
    const depth = top - sorted[i][d - 1];
    if (depth > 0) volume += depth * hypervolumeSliced(sorted.slice(0, i + 1).map((p) => p.slice(0, d - 1)), lower);
  }
  return volume;
}

/** Hypervolume dominated by `points` below `reference`; points not strictly better than it in every objective add nothing. */
export function hypervolume(points: readonly (readonly number[])[], reference: readonly number[]): number {
  const inside = points.filter((p) => p.every((value, i) => value < reference[i]));
  return hypervolumeSliced(inside, reference);
}

/**
 * The reference point optuna uses for hypervolume weights and subset selection: 10% beyond the worst value of each
 * objective (on the right side of zero), and a tiny positive number where the worst is exactly 0.
 */
export function referencePointFor(points: readonly (readonly number[])[]): number[] {
  const worst = points[0].map((_, i) => Math.max(...points.map((p) => p[i])));
  return worst.map((w) => {
    const reference = Math.max(1.1 * w, 0.9 * w);
    return reference === 0 ? 1e-12 : reference;
  });
}

/**
 * Greedy hypervolume subset selection: `size` of `points` (their indices, in the order chosen) that together
 * dominate nearly the most volume, each step adding the point with the largest contribution (ties: lowest index).
 * Greedy is within 1 − 1/e of the best subset (the hypervolume is submodular), which is what optuna's HSSP does too.
 */
export function selectByHypervolume(points: readonly (readonly number[])[], size: number, reference: readonly number[]): number[] {
  const chosen: number[] = [];
  const left = new Set(points.map((_, i) => i));
  let volume = 0;
  while (chosen.length < size && left.size > 0) {
    let best = -1;
    let bestGain = -Infinity;
    for (const i of left) {
      const gain = hypervolume([...chosen.map((j) => points[j]), points[i]], reference) - volume;
      if (gain > bestGain) {
        bestGain = gain;
        best = i;
      }
    }
    chosen.push(best);
    left.delete(best);
    volume += bestGain;
  }
  return chosen;
}

/**
 * The feasible trials no other feasible trial dominates, sorted by the first objective, then the second, then
 * trial number. Two trials with equal values are both on the front.
 */
export function paretoFront<P>(trials: readonly Trial<P>[]): FeasibleTrial<P>[] {
  const feasible = trials.filter(isFeasible);
  const front = feasible.filter((trial) => !feasible.some((other) => other !== trial && dominates(other.values, trial.values)));
  return front.sort((a, b) => {
    for (let i = 0; i < a.values.length; i += 1) if (a.values[i] !== b.values[i]) return a.values[i] - b.values[i];
    return a.number - b.number;
  });
}
