/**
 * The multivariate Parzen estimator of TPE, as optuna builds it (samplers/_tpe/parzen_estimator.py, multivariate
 * mode): a weighted mixture of product kernels, one per observed trial plus one prior kernel.
 *
 * - Float / int dimensions: a normal kernel centred on the observation, truncated to the dimension's bounds
 *   (ints: bins of width 1, so the kernel's mass over the bin is used). Bandwidth, the same for every kernel of a
 *   dimension (Scott-like rule of multivariate TPE): σ = 0.2 · max(n, 1)^(−1/(d+4)) · (high − low + step), then
 *   clipped to [(high − low + step) / min(100, n + 2), high − low + step] ("magic clip", so n kernels never
 *   collapse to spikes). The prior kernel is centred mid-range with σ = high − low + step.
 * - Categorical dimensions: each observation's kernel puts weight 1 + w/(n+1) on its choice and w/(n+1) on every
 *   other (w = prior weight), normalized; the prior kernel is uniform.
 * - Mixture weights: the caller's per-trial weights, plus the prior weight w for the prior kernel, normalized.
 * Float dimensions with log: true are modelled in log space.
 */
import { createPrng } from "./prng.js";
import { logNormalMass, logNormalPdf, sampleTruncatedNormal } from "./normal.js";
import { internalBounds, type SearchSpace } from "./search-space.js";

type Prng = ReturnType<typeof createPrng>;

interface NumericModel {
  kind: "numeric";
  low: number;
  high: number;
  step: number;
  mus: Float64Array;
  sigmas: Float64Array;
  /** log of each kernel's mass inside [low, high] (the truncation's normalizer). */
  logMass: Float64Array;
  /** −log σ − log mass − ½ log 2π per kernel: the constant part of a float kernel's log density. */
  logNormalizer: Float64Array;
}

interface CategoricalModel {
  kind: "categorical";
  /** kernels × choices, rows normalized. */
  logProbabilities: Float64Array[];
  probabilities: Float64Array[];
}

export interface ParzenEstimator {
  logWeights: Float64Array;
  weights: Float64Array;
  models: (NumericModel | CategoricalModel)[];
}

export interface ParzenOptions {
  priorWeight: number;
}

/**
 * `observations[i]` is trial i in internal coordinates (search-space.ts), `weights[i]` its mixture weight.
 * With no observations the estimator is the prior alone.
 */
export function buildParzenEstimator(space: SearchSpace, observations: readonly Float64Array[], weights: readonly number[], options: ParzenOptions): ParzenEstimator {
  const n = observations.length;
  const d = space.dimensions.length;
  const kernelCount = n + 1;
  const rawWeights = [...weights, n === 0 ? 1 : options.priorWeight];
  const total = rawWeights.reduce((sum, w) => sum + w, 0);
  const mixture = Float64Array.from(rawWeights, (w) => w / total);

  const models = space.dimensions.map((dimension, j): NumericModel | CategoricalModel => {
    if (dimension.kind === "categorical") {
      const choices = dimension.choices.length;
      const smoothing = options.priorWeight / kernelCount;
      const probabilities = Array.from({ length: kernelCount }, (_, k) => {
        const row = new Float64Array(choices).fill(k < n ? smoothing : 1);
        if (k < n) row[observations[k][j]] += 1;
        const sum = row.reduce((s, v) => s + v, 0);
        return row.map((v) => v / sum);
      });
      return { kind: "categorical", probabilities, logProbabilities: probabilities.map((row) => row.map(Math.log)) };
    }
    const { low, high, step } = internalBounds(dimension);
    // internalBounds already widens ints by half a bin either side; the span below is optuna's high − low + step.
    const span = high - low;
    const sigma = Math.min(span, Math.max(span / Math.min(100, n + 2), 0.2 * Math.max(n, 1) ** (-1 / (d + 4)) * span));
    const mus = new Float64Array(kernelCount);
    const sigmas = new Float64Array(kernelCount);
    for (let k = 0; k < n; k += 1) {
      mus[k] = observations[k][j];
      sigmas[k] = sigma;
    }
    mus[n] = 0.5 * (low + high);
    sigmas[n] = span;
    const logMass = Float64Array.from(mus, (mu, k) => logNormalMass((low - mu) / sigmas[k], (high - mu) / sigmas[k]));
    const logNormalizer = Float64Array.from(sigmas, (s, k) => logNormalPdf(0) - Math.log(s) - logMass[k]);
    return { kind: "numeric", low, high, step, mus, sigmas, logMass, logNormalizer };
  });
  return { weights: mixture, logWeights: mixture.map(Math.log), models };
}

function drawIndex(prng: Prng, probabilities: Float64Array): number {
  const u = prng.next();
  let cumulative = 0;
  for (let i = 0; i < probabilities.length; i += 1) {
    cumulative += probabilities[i];
    if (u < cumulative) return i;
  }
  return probabilities.length - 1;
}

/** One point from the mixture, in internal coordinates: pick a kernel by weight, then draw each dimension from it. */
export function sampleParzen(estimator: ParzenEstimator, prng: Prng): Float64Array {
  const k = drawIndex(prng, estimator.weights);
  return Float64Array.from(estimator.models, (model) => {
    if (model.kind === "categorical") return drawIndex(prng, model.probabilities[k]);
    const x = sampleTruncatedNormal(prng.normal, model.mus[k], model.sigmas[k], model.low, model.high);
    if (model.step === 0) return x;
    // An int: the bin it fell into, kept inside the dimension.
    return Math.min(model.high - 0.5, Math.max(model.low + 0.5, Math.round(x)));
  });
}

/** Per-kernel log terms, reused across calls: the sampler evaluates hundreds of points per trial. */
let scratch = new Float64Array(256);

/** log density (log mass for ints and categoricals) of the mixture at x. */
export function logPdfParzen(estimator: ParzenEstimator, x: Float64Array): number {
  const kernels = estimator.weights.length;
  if (scratch.length < kernels) scratch = new Float64Array(Math.max(kernels, 2 * scratch.length));
  const terms = scratch.subarray(0, kernels);
  terms.set(estimator.logWeights);
  estimator.models.forEach((model, j) => {
    const value = x[j];
    if (model.kind === "categorical") {
      for (let k = 0; k < kernels; k += 1) terms[k] += model.logProbabilities[k][value];
    } else if (model.step === 0) {
      // The hot loop of the sampler (candidates × kernels × dimensions): the constant part is precomputed.
      const { mus, sigmas, logNormalizer } = model;
      for (let k = 0; k < kernels; k += 1) {
        const z = (value - mus[k]) / sigmas[k];
        terms[k] += logNormalizer[k] - 0.5 * z * z;
      }
    } else {
      for (let k = 0; k < kernels; k += 1) {
        const mu = model.mus[k];
        const sigma = model.sigmas[k];
        terms[k] += logNormalMass((value - 0.5 - mu) / sigma, (value + 0.5 - mu) / sigma) - model.logMass[k];
      }
    }
  });
  let max = -Infinity;
  for (const t of terms) if (t > max) max = t;
  if (max === -Infinity) return -Infinity;
  let sum = 0;
  for (const t of terms) sum += Math.exp(t - max);
  return max + Math.log(sum);
}
