/**
 * The abliteration search space: which direction, how it is projected, and how strongly each component of each
 * layer is edited. editSearchSpace() lists the dimensions; decodeEdit() turns a sampled point into typed edit
 * parameters and editAlphas() into the α of every writer. The ranges are priors, not facts about a model: they
 * span the whole layer stack (no hard-coded band; heretic's 0.4–0.9 · L for the direction and 0.6–1.0 · L for the
 * peak are its own priors), and every one can be narrowed through the options, e.g. around the layer the
 * single-layer rule picked.
 *
 * | dimension | kind | range (default) | decoded as |
 * |---|---|---|---|
 * | directionIndex | float | [0, rows − 1], rows = L + 1 | the fractional candidate row, interpolateDirection() |
 * | directionScope | categorical | global, per-layer | one direction for all writers, or each layer's own row |
 * | projection | categorical | none, projected | the direction orthogonalized against the negative-set mean |
 * | normPreserving | categorical | false, true | surgery's normPreserving (keeps each d_model vector's norm) |
 * | C.peak | float | embed [−0.5, 1.5], attn and mlp [−0.25, 1.5] | max(0, x): below 0 is exactly 0, the component off |
 * | C.position | float | [0, L − 1] | the peak layer |
 * | C.floor | float | [0, 1] | floor = x · peak, so 0 ≤ floor ≤ peak always holds |
 * | C.distance | float, log | [1, max(2, L)] | the fall-off length in layers |
 * | C.outside | categorical | floor, zero | α beyond the fall-off: the floor, or 0 (a band of layers) |
 * | rank | int | [1, maxRank], only when maxRank > 1 | the subspace rank, for the rank-k directions |
 *
 * C is attn and mlp; the embedding has only embed.peak (one matrix, one α). The negative lower bound of the peaks
 * is heretic's device for turning a component off: a continuous sampler would hit exactly 0 with probability 0,
 * while max(0, x) gives 0 a prior mass of 0.25/1.75 (attn, mlp) or 0.5/2 (embed), and TPE learns to go there when
 * an edit only hurts. Sampling floor as a fraction of peak (again heretic's choice) keeps floor ≤ peak without
 * a range that depends on another dimension, which multivariate TPE cannot express.
 */
import { AbliterateError, ErrorCodes } from "../../errors.js";
import type { HarmlessProjection } from "../../direction-files/select-basis.js";
import { profileAlphas, type StrengthProfile } from "./profile-alphas.js";
import { validateSpace, type CategoricalDimension, type Choice, type Dimension, type FloatDimension, type Params, type SearchSpace } from "./search-space.js";

export type Component = "embed" | "attn" | "mlp";
export const COMPONENTS: readonly Component[] = ["embed", "attn", "mlp"];
export type DirectionScope = "global" | "per-layer";
export type Projection = "none" | HarmlessProjection;
export type Outside = StrengthProfile["outside"];

export interface EditSpaceOptions {
  /** Decoder layers L. */
  numLayers: number;
  /** Candidate direction rows; default L + 1 (the residual stream before each layer and after the last). */
  directionRows?: number;
  /** Range of the direction index; default [0, rows − 1]. */
  directionIndexRange?: readonly [number, number];
  /** Components the search may edit; the others keep α = 0. Default all three. */
  components?: readonly Component[];
  /** Raw range of each component's peak (values below 0 decode to 0). */
  peakRange?: Partial<Record<Component, readonly [number, number]>>;
  /** Range of the peak position; default [0, L − 1]. */
  positionRange?: readonly [number, number];
  /** Range of the fall-off distance (log-scale); default [1, max(2, L)]. */
  distanceRange?: readonly [number, number];
  /** Choices of the categoricals; a single choice removes the dimension and fixes its value. */
  scopes?: readonly DirectionScope[];
  projections?: readonly Projection[];
  normPreserving?: readonly boolean[];
  outside?: readonly Outside[];
  /** Largest subspace rank to search; 1 (default) adds no dimension. */
  maxRank?: number;
  /** Dimension names to leave out: they keep the defaults in EDIT_DEFAULTS. */
  omit?: readonly string[];
}

/** Values of left-out dimensions: uniform full-strength edit of every layer (Arditi et al.'s), global row mid-stack. */
export const EDIT_DEFAULTS = {
  directionScope: "global" as DirectionScope,
  projection: "none" as Projection,
  normPreserving: false,
  peak: 1,
  floorFraction: 1,
  outside: "floor" as Outside,
  rank: 1,
} as const;

export const DEFAULT_PEAK_RANGE: Readonly<Record<Component, readonly [number, number]>> = { embed: [-0.5, 1.5], attn: [-0.25, 1.5], mlp: [-0.25, 1.5] };

function invalid(message: string): AbliterateError {
  return new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `edit search space: ${message}`);
}

interface Resolved {
  numLayers: number;
  rows: number;
  components: readonly Component[];
}

function resolve(options: EditSpaceOptions): Resolved {
  const { numLayers } = options;
  if (!(Number.isInteger(numLayers) && numLayers >= 1)) throw invalid(`numLayers must be a whole number ≥ 1, got ${numLayers}`);
  const rows = options.directionRows ?? numLayers + 1;
  if (!(Number.isInteger(rows) && rows >= 1)) throw invalid(`directionRows must be a whole number ≥ 1, got ${rows}`);
  const components = options.components ?? COMPONENTS;
  for (const component of components) if (!COMPONENTS.includes(component)) throw invalid(`unknown component "${component}"`);
  return { numLayers, rows, components };
}

function floatDimension(name: string, range: readonly [number, number], defaultValue: number, doc: string, log = false): FloatDimension {
  return { kind: "float", name, low: range[0], high: range[1], log, default: Math.min(range[1], Math.max(range[0], defaultValue)), doc };
}

function categorical<T extends Choice>(name: string, choices: readonly T[], defaultValue: T, doc: string): CategoricalDimension[] {
  if (choices.length === 0) throw invalid(`"${name}" has no choices`);
  return choices.length === 1 ? [] : [{ kind: "categorical", name, choices, default: choices.includes(defaultValue) ? defaultValue : choices[0], doc }];
}

export function editSearchSpace(options: EditSpaceOptions): SearchSpace {
  const { numLayers, rows, components } = resolve(options);
  const omit = new Set(options.omit ?? []);
  const dimensions: Dimension[] = [];
  const indexRange = options.directionIndexRange ?? [0, rows - 1];
  if (rows > 1) dimensions.push(floatDimension("directionIndex", indexRange, (indexRange[0] + indexRange[1]) / 2, "fractional candidate row of the direction"));
  dimensions.push(...categorical("directionScope", options.scopes ?? ["global", "per-layer"], EDIT_DEFAULTS.directionScope, "one direction for every layer, or each layer's own row"));
  dimensions.push(...categorical("projection", options.projections ?? ["none", "projected"], EDIT_DEFAULTS.projection, "orthogonalize the direction against the negative-set mean"));
  dimensions.push(...categorical("normPreserving", options.normPreserving ?? [false, true], EDIT_DEFAULTS.normPreserving, "keep the norm of each edited d_model vector"));
  const positionRange = options.positionRange ?? [0, numLayers - 1];
  const distanceRange = options.distanceRange ?? [1, Math.max(2, numLayers)];
  for (const component of components) {
    dimensions.push(floatDimension(`${component}.peak`, options.peakRange?.[component] ?? DEFAULT_PEAK_RANGE[component], EDIT_DEFAULTS.peak, `${component}: α at the peak (below 0 decodes to 0: off)`));
    if (component === "embed") continue;
    if (numLayers > 1) dimensions.push(floatDimension(`${component}.position`, positionRange, (positionRange[0] + positionRange[1]) / 2, `${component}: the layer of the peak`));
    dimensions.push(floatDimension(`${component}.floor`, [0, 1], EDIT_DEFAULTS.floorFraction, `${component}: the floor as a fraction of the peak`));
    dimensions.push(floatDimension(`${component}.distance`, distanceRange, distanceRange[1], `${component}: layers over which α falls from peak to floor`, true));
    dimensions.push(...categorical(`${component}.outside`, options.outside ?? ["floor", "zero"], EDIT_DEFAULTS.outside, `${component}: α beyond the fall-off (floor, or 0 for a band)`));
  }
  const maxRank = options.maxRank ?? 1;
  if (!(Number.isInteger(maxRank) && maxRank >= 1)) throw invalid(`maxRank must be a whole number ≥ 1, got ${maxRank}`);
  if (maxRank > 1) dimensions.push({ kind: "int", name: "rank", low: 1, high: maxRank, default: 1, doc: "rank of the direction subspace" });
  const space = { dimensions: dimensions.filter((dimension) => !omit.has(dimension.name)) };
  validateSpace(space);
  return space;
}

export interface EditParams {
  directionIndex: number;
  directionScope: DirectionScope;
  projection: Projection;
  normPreserving: boolean;
  /** Components the search does not edit have peak 0. */
  profiles: Record<Component, StrengthProfile>;
  rank: number;
}

/**
 * The typed edit of a sampled point. Dimensions absent from `params` (left out, or fixed by a one-choice option)
 * take the fixed choice or EDIT_DEFAULTS; the direction index defaults to the middle of its range.
 */
export function decodeEdit(params: Params, options: EditSpaceOptions): EditParams {
  const { numLayers, rows, components } = resolve(options);
  const read = <T extends Choice>(name: string, fallback: T): T => (params[name] ?? fallback) as T;
  const only = <T>(choices: readonly T[] | undefined, fallback: T): T => (choices?.length === 1 ? choices[0] : fallback);
  const indexRange = options.directionIndexRange ?? [0, rows - 1];
  const positionRange = options.positionRange ?? [0, numLayers - 1];
  const distanceRange = options.distanceRange ?? [1, Math.max(2, numLayers)];
  const profile = (component: Component): StrengthProfile => {
    if (!components.includes(component)) return { peak: 0, position: 0, floor: 0, distance: 0, outside: "zero" };
    const peak = Math.max(0, read(`${component}.peak`, EDIT_DEFAULTS.peak));
    if (component === "embed") return { peak, position: 0, floor: peak, distance: 0, outside: "floor" };
    return {
      peak,
      position: numLayers > 1 ? read(`${component}.position`, (positionRange[0] + positionRange[1]) / 2) : 0,
      floor: read(`${component}.floor`, EDIT_DEFAULTS.floorFraction) * peak,
      distance: read(`${component}.distance`, distanceRange[1]),
      outside: read(`${component}.outside`, only(options.outside, EDIT_DEFAULTS.outside)),
    };
  };
  return {
    directionIndex: rows > 1 ? read("directionIndex", (indexRange[0] + indexRange[1]) / 2) : 0,
    directionScope: read("directionScope", only(options.scopes, EDIT_DEFAULTS.directionScope)),
    projection: read("projection", only(options.projections, EDIT_DEFAULTS.projection)),
    normPreserving: read("normPreserving", only(options.normPreserving, EDIT_DEFAULTS.normPreserving)),
    profiles: { embed: profile("embed"), attn: profile("attn"), mlp: profile("mlp") },
    rank: read("rank", EDIT_DEFAULTS.rank),
  };
}

/** Every writer's α: the embedding's one, and one per layer for the attention and MLP writers. */
export function editAlphas(edit: EditParams, numLayers: number): { embed: number; attn: Float64Array; mlp: Float64Array } {
  return { embed: profileAlphas(edit.profiles.embed, 1)[0], attn: profileAlphas(edit.profiles.attn, numLayers), mlp: profileAlphas(edit.profiles.mlp, numLayers) };
}
