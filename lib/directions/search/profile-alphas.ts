/**
 * A strength profile gives one α per layer for one component (the writers W ← W − α r rᵀW of that kind).
 * With δ_l = |l − position|:
 *
 *     α_l = peak + (δ_l / distance) · (floor − peak)     when δ_l ≤ distance   (linear fall-off from the peak)
 *     α_l = floor                                         when δ_l > distance and outside = "floor"
 *     α_l = 0                                             when δ_l > distance and outside = "zero"   (a band)
 *
 * outside = "zero" is heretic's kernel exactly (it skips layers beyond min_weight_distance); "floor" keeps a weaker
 * edit everywhere. A band with floor = peak edits layers position ± distance uniformly and nothing else: "delete
 * the direction from key layers only". distance = 0 edits the layer at the peak position only (when it is an
 * integer). peak = 0 turns the component off. The embedding has one matrix, so its profile is read at layer 0 of
 * a one-layer stack: α = peak for the profiles decodeEdit builds.
 */

export interface StrengthProfile {
  /** α at the peak position; ≥ 0. */
  peak: number;
  /** The layer (fractional allowed) where α is largest, in [0, numLayers − 1]. */
  position: number;
  /** α the fall-off ends at; 0 ≤ floor ≤ peak. */
  floor: number;
  /** Layers over which α falls linearly from peak to floor; ≥ 0. */
  distance: number;
  /** α beyond the fall-off: the floor, or 0 (a band). */
  outside: "floor" | "zero";
}

export function profileAlphas(profile: StrengthProfile, numLayers: number): Float64Array {
  const { peak, position, floor, distance, outside } = profile;
  const alphas = new Float64Array(numLayers);
  for (let layer = 0; layer < numLayers; layer += 1) {
    const delta = Math.abs(layer - position);
    if (delta <= distance) alphas[layer] = distance === 0 ? peak : peak + (delta / distance) * (floor - peak);
    else alphas[layer] = outside === "zero" ? 0 : floor;
  }
  return alphas;
}
