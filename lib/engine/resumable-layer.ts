/**
 * The deepest decoder layer a forward under an edit can resume at from the unedited model's residual stream: every
 * stream entering the layers below it is the unedited one. The embedding writes stream 0 and layer l's attention and
 * MLP write stream l + 1, so an ablation whose first non-zero α is at layer l leaves streams 0..l alone, and an
 * addition at point p leaves streams below p alone (it lands on p itself, which a resumed run adds too).
 * 0: the edit changes the embedding's output (nothing to skip); numLayers: no decoder layer is edited.
 */
import type { ForwardAblation, ForwardAddition } from "./run-forward.js";

function ablationStart(ablation: ForwardAblation, numLayers: number): number {
  const { strengths } = ablation;
  if (strengths) {
    if (strengths.embedding !== 0) return 0;
    for (let l = 0; l < numLayers; l += 1) if (strengths.attention[l] !== 0 || strengths.mlp[l] !== 0) return l;
    return numLayers;
  }
  if ((ablation.alpha ?? 1) === 0) return numLayers;
  if (ablation.embedding !== false) return 0;
  const layers = ablation.layers ?? Array.from({ length: numLayers }, (_, l) => l);
  return layers.length ? Math.min(numLayers, ...layers) : numLayers;
}

export function resumableLayer(params: { ablation?: ForwardAblation; addition?: ForwardAddition; numLayers: number }): number {
  const { ablation, addition, numLayers } = params;
  let layer = numLayers;
  if (ablation) layer = Math.min(layer, ablationStart(ablation, numLayers));
  if (addition) layer = Math.min(layer, addition.point);
  return Math.max(0, layer);
}
