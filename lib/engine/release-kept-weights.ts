import { releaseKeptLayers } from "../native/addon.js";

/**
 * Frees the layers runs with `keepWeights` kept in this process (runForward), and the huge-page mappings given back
 * so far; returns the bytes the layers took. Call it when the forward passes are over (the one command does before
 * surgery), so the process holds no model's weights while it does something else.
 */
export function releaseKeptWeights(): number {
  return releaseKeptLayers();
}
