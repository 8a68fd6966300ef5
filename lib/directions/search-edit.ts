/**
 * One point of the edit search (lib/directions/search/) made concrete, twice over and identically:
 * - as a hook request for the engine (the trial: no weights written), and
 * - as what the streaming surgery applies: the direction(s) to write to a file and the α of every writer.
 * The hook subtracts α_w · B Bᵀ(out) at each writer w, which for plain projections equals the weight edit
 * W ← W − α_w B Bᵀ W (test/unit/search-edit-parity.test.ts checks the two agree to fp32 precision).
 *
 * Norm-preserving edits are not searched: grimjim's variant rescales each written column of W after the projection,
 * which acts on the writer's *input* side and so has no exact hook at its output; a trial scored through the hook
 * would not be the edit applied. heretic's row normalization has the same problem. Keeping the search to what the
 * hook represents exactly means the front it shows is the front of edits it can apply. (`--norm-preserving` still
 * applies to a single-layer edit.)
 */
import type { ForwardAblation } from "../engine/run-forward.js";
import type { DirectionCandidates } from "../direction-files/write-direction-candidates.js";
import { decodeEdit, editAlphas, editSearchSpace, type EditParams, type EditSpaceOptions } from "./search/edit-space.js";
import { interpolateDirection } from "./search/interpolate-direction.js";
import type { Params, SearchSpace } from "./search/search-space.js";

/** A candidate row this small against the largest is noise (the two sets' means agree there). */
const ROW_FLOOR = 1e-6;

function unit(row: ArrayLike<number>): Float64Array | undefined {
  const norm = Math.hypot(...Array.from(row));
  return norm > 0 && Number.isFinite(norm) ? Float64Array.from(row, (v) => v / norm) : undefined;
}

/** r ← normalize(r − (r·ĥ)ĥ), ĥ = normalize(negative mean); undefined when r is (nearly) parallel to ĥ. */
function projectOut(r: Float64Array, negativeMean: ArrayLike<number> | undefined): Float64Array | undefined {
  const h = negativeMean ? unit(negativeMean) : undefined;
  if (!h) return r;
  let dot = 0;
  for (let i = 0; i < r.length; i += 1) dot += r[i] * h[i];
  const out = r.map((v, i) => v - dot * h[i]);
  const norm = Math.hypot(...out);
  return norm > 1e-6 ? out.map((v) => v / norm) : undefined;
}

export interface EditSearchSetup {
  space: SearchSpace;
  options: EditSpaceOptions;
  /** Rows that carry a direction (the others are zero: the two sets agree there). */
  usableRows: boolean[];
}

/** The space over this model's candidates: the direction index spans the rows that carry a direction. */
export function editSearchSetup(params: { candidates: DirectionCandidates; numLayers: number; options?: Partial<EditSpaceOptions> }): EditSearchSetup {
  const norms = params.candidates.directions.map((row) => Math.hypot(...row));
  const largest = Math.max(...norms);
  const usableRows = norms.map((n) => n > ROW_FLOOR * largest);
  const first = usableRows.indexOf(true);
  const last = usableRows.lastIndexOf(true);
  const options: EditSpaceOptions = {
    numLayers: params.numLayers,
    directionRows: params.candidates.directions.length,
    directionIndexRange: [first, Math.max(first, last)],
    normPreserving: [false],
    maxRank: 1,
    ...params.options,
  };
  return { space: editSearchSpace(options), options, usableRows };
}

export interface ConcreteEdit {
  edit: EditParams;
  /** The hook request. */
  ablation: ForwardAblation;
  /** For the surgery: one direction for every writer, or one per stream (row s for writers into stream s). */
  direction?: Float64Array;
  streamDirections?: (Float64Array | undefined)[];
  /** α of every writer (0 where a per-stream row is missing). */
  alphas: { embed: number; attn: number[]; mlp: number[] };
}

/** True when the edit changes no writer (every α is 0): it is the unedited model, not an edit. */
export function isNullEdit(alphas: ConcreteEdit["alphas"]): boolean {
  return alphas.embed === 0 && alphas.attn.every((a) => a === 0) && alphas.mlp.every((a) => a === 0);
}

/** Throws DIRECTION_DEGENERATE when the point's direction does not exist (two opposite rows mixed, r ∥ ĥ). */
export function concreteEdit(params: { point: Params; setup: EditSearchSetup; candidates: DirectionCandidates }): ConcreteEdit {
  const { setup, candidates } = params;
  const edit = decodeEdit(params.point, setup.options);
  const numLayers = setup.options.numLayers;
  const raw = editAlphas(edit, numLayers);
  const alphas = { embed: raw.embed, attn: Array.from(raw.attn), mlp: Array.from(raw.mlp) };
  const projected = edit.projection !== "none";
  if (edit.directionScope === "global") {
    let direction = interpolateDirection(candidates.directions, edit.directionIndex);
    if (projected) {
      const h = interpolateDirection(candidates.negativeMean, edit.directionIndex);
      direction = projectOut(direction, h) ?? direction;
    }
    const ablation: ForwardAblation = { directions: [direction], strengths: { embedding: alphas.embed, attention: alphas.attn, mlp: alphas.mlp } };
    return { edit, ablation, direction, alphas };
  }
  // Per layer: the writer into stream s uses row s (embeddings 0, layer l's writers l + 1); no row, no edit.
  const streams = candidates.directions.map((row, s) => {
    if (!setup.usableRows[s]) return undefined;
    const r = unit(row)!;
    return projected ? projectOut(r, candidates.negativeMean[s]) : r;
  });
  if (!streams[0]) alphas.embed = 0;
  for (let l = 0; l < numLayers; l += 1) {
    if (!streams[l + 1]) {
      alphas.attn[l] = 0;
      alphas.mlp[l] = 0;
    }
  }
  const ablation: ForwardAblation = {
    streamDirections: streams.map((r) => (r ? [r] : [])),
    strengths: { embedding: alphas.embed, attention: alphas.attn, mlp: alphas.mlp },
  };
  return { edit, ablation, streamDirections: streams, alphas };
}

/** The single-layer rule's edit as a point of the space: row `layer`, one direction, every writer at α = 1. */
export function singleLayerPoint(setup: EditSearchSetup, layer: number): Params {
  const point: Record<string, number | string | boolean> = {};
  for (const dimension of setup.space.dimensions) {
    if (dimension.name === "directionIndex") point[dimension.name] = layer;
    else if (dimension.name === "directionScope") point[dimension.name] = "global";
    else if (dimension.name === "projection") point[dimension.name] = "none";
    else if (dimension.name.endsWith(".peak")) point[dimension.name] = 1;
    else if (dimension.name.endsWith(".floor")) point[dimension.name] = 1;
    else if (dimension.name.endsWith(".outside")) point[dimension.name] = "floor";
    else point[dimension.name] = dimension.default;
  }
  return point;
}
