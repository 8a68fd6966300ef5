/**
 * A search space is a declarative list of typed dimensions. The sampler only sees this list, so a caller adds,
 * removes or fixes a dimension by editing the list (see edit-space.ts for the abliteration one). Each dimension has
 * a default, used when a caller wants the "do nothing special" point or fixes a dimension instead of searching it.
 */
import { AbliterateError, ErrorCodes } from "../../errors.js";

export type Choice = string | number | boolean;
export type ParamValue = number | Choice;
/** One point of the space: dimension name → value (a number for float/int, one of the choices for categorical). */
export type Params = Readonly<Record<string, ParamValue>>;

interface DimensionBase {
  name: string;
  /** What the dimension means, for reports and docs; not part of the store key. */
  doc?: string;
}

export interface FloatDimension extends DimensionBase {
  kind: "float";
  low: number;
  high: number;
  /** Sample log(x) uniformly / model it in log space (low must be > 0). */
  log?: boolean;
  default: number;
}

export interface IntDimension extends DimensionBase {
  kind: "int";
  low: number;
  high: number;
  log?: boolean;
  default: number;
}

export interface CategoricalDimension extends DimensionBase {
  kind: "categorical";
  choices: readonly Choice[];
  default: Choice;
}

export type Dimension = FloatDimension | IntDimension | CategoricalDimension;

export interface SearchSpace {
  dimensions: readonly Dimension[];
}

function invalid(message: string): AbliterateError {
  return new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `search space: ${message}`);
}

/** Throws INVALID_ARGUMENT naming the dimension when the space is not usable. */
export function validateSpace(space: SearchSpace): void {
  const names = new Set<string>();
  if (space.dimensions.length === 0) throw invalid("no dimensions");
  for (const dimension of space.dimensions) {
    const { name } = dimension;
    if (typeof name !== "string" || name === "") throw invalid("a dimension has no name");
    if (names.has(name)) throw invalid(`dimension "${name}" appears twice`);
    names.add(name);
    if (dimension.kind === "categorical") {
      if (dimension.choices.length === 0) throw invalid(`"${name}" has no choices`);
      if (new Set(dimension.choices).size !== dimension.choices.length) throw invalid(`"${name}" lists a choice twice`);
      if (!dimension.choices.includes(dimension.default)) throw invalid(`"${name}": the default ${JSON.stringify(dimension.default)} is not one of the choices`);
      for (const choice of dimension.choices) {
        if (typeof choice === "number" && !Number.isFinite(choice)) throw invalid(`"${name}" has a non-finite choice`);
      }
      continue;
    }
    const { low, high } = dimension;
    if (!Number.isFinite(low) || !Number.isFinite(high) || !(low < high)) throw invalid(`"${name}" needs finite bounds low < high, got [${low}, ${high}]`);
    if (dimension.log && !(low > 0)) throw invalid(`"${name}" is log-scale, so low must be > 0 (got ${low})`);
    if (dimension.kind === "int" && !(Number.isInteger(low) && Number.isInteger(high))) throw invalid(`"${name}" is an integer dimension with non-integer bounds`);
    if (!(dimension.default >= low && dimension.default <= high)) throw invalid(`"${name}": the default ${dimension.default} is outside [${low}, ${high}]`);
    if (dimension.kind === "int" && !Number.isInteger(dimension.default)) throw invalid(`"${name}": the default ${dimension.default} is not an integer`);
  }
}

export function defaultParams(space: SearchSpace): Params {
  return Object.fromEntries(space.dimensions.map((dimension) => [dimension.name, dimension.default]));
}

/** The part of a dimension that decides what is sampled: what the store key is made of (docs and defaults are not). */
export function dimensionIdentity(dimension: Dimension): Record<string, unknown> {
  return dimension.kind === "categorical"
    ? { name: dimension.name, kind: dimension.kind, choices: [...dimension.choices] }
    : { name: dimension.name, kind: dimension.kind, low: dimension.low, high: dimension.high, log: dimension.log ?? false };
}

/** Why `params` is not a point of `space`, or undefined when it is. */
export function paramsProblem(space: SearchSpace, params: Params): string | undefined {
  const expected = new Set(space.dimensions.map((dimension) => dimension.name));
  for (const name of Object.keys(params)) if (!expected.has(name)) return `"${name}" is not a dimension of the space`;
  for (const dimension of space.dimensions) {
    const value = params[dimension.name];
    if (value === undefined) return `"${dimension.name}" is missing`;
    if (dimension.kind === "categorical") {
      if (!dimension.choices.includes(value)) return `"${dimension.name}" = ${JSON.stringify(value)} is not one of the choices`;
    } else if (typeof value !== "number" || !(value >= dimension.low && value <= dimension.high)) {
      return `"${dimension.name}" = ${JSON.stringify(value)} is outside [${dimension.low}, ${dimension.high}]`;
    } else if (dimension.kind === "int" && !Number.isInteger(value)) {
      return `"${dimension.name}" = ${value} is not an integer`;
    }
  }
  return undefined;
}

/**
 * The sampler's coordinates of a dimension: floats and ints as they are (log of them when log-scale), categoricals
 * as the choice index. `low`/`high` bound the kernels; ints widen by half a step either side so each integer owns
 * a bin of width 1 (as optuna does).
 */
export interface InternalBounds {
  low: number;
  high: number;
  /** Bin width of an int dimension in linear scale (1), else 0. */
  step: number;
}

export function internalBounds(dimension: FloatDimension | IntDimension): InternalBounds {
  if (dimension.kind === "int") {
    if (dimension.log) return { low: Math.log(dimension.low - 0.5), high: Math.log(dimension.high + 0.5), step: 0 };
    return { low: dimension.low - 0.5, high: dimension.high + 0.5, step: 1 };
  }
  return dimension.log ? { low: Math.log(dimension.low), high: Math.log(dimension.high), step: 0 } : { low: dimension.low, high: dimension.high, step: 0 };
}

export function toInternal(dimension: Dimension, value: ParamValue): number {
  if (dimension.kind === "categorical") return dimension.choices.indexOf(value);
  return dimension.log ? Math.log(value as number) : (value as number);
}

export function fromInternal(dimension: Dimension, x: number): ParamValue {
  if (dimension.kind === "categorical") return dimension.choices[x];
  const linear = dimension.log ? Math.exp(x) : x;
  const value = dimension.kind === "int" ? Math.round(linear) : linear;
  return Math.min(dimension.high, Math.max(dimension.low, value));
}

/** Maps u ∈ [0, 1) to a value of the dimension, uniformly in its (log-)scale: used by the startup and random samplers. */
export function fromUnit(dimension: Dimension, u: number): ParamValue {
  if (dimension.kind === "categorical") return dimension.choices[Math.min(dimension.choices.length - 1, Math.floor(u * dimension.choices.length))];
  if (dimension.kind === "int" && !dimension.log) return Math.min(dimension.high, dimension.low + Math.floor(u * (dimension.high - dimension.low + 1)));
  const { low, high } = internalBounds(dimension);
  return fromInternal(dimension, low + u * (high - low));
}
