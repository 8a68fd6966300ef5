/**
 * An edit's native form (NativeForwardAblation, NativeForwardAddition): bases checked and orthonormalized, α per
 * writer resolved from the convenience fields, every value checked finite, so the engine gets only what it can use.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import { orthonormalizeRows } from "../direction-files/orthonormalize.js";
import type { NativeForwardAblation, NativeForwardAddition, NativeForwardEdit } from "../native/addon.js";
import type { ForwardModel } from "./load-forward-model.js";
import type { AblationStrengths, ForwardAblation, ForwardAddition } from "./run-forward.js";

function checkedBasis(directions: ArrayLike<number>[], d: number, what: string): Float64Array {
  const rows = directions.map((direction, i) => {
    if (direction.length !== d) {
      throw new AbliterateError(ErrorCodes.DIRECTION_DIMENSION, `${what} direction ${i} has ${direction.length} entries, hidden_size is ${d}`);
    }
    const values = Float64Array.from(direction);
    if (values.some((v) => !Number.isFinite(v))) throw new AbliterateError(ErrorCodes.DIRECTION_NOT_FINITE, `${what} direction ${i} holds NaN or Inf`);
    return values;
  });
  return orthonormalizeRows(rows, what);
}

function strengthsOf(ablation: ForwardAblation, numLayers: number): AblationStrengths {
  const convenience = ablation.alpha !== undefined || ablation.layers !== undefined || ablation.embedding !== undefined;
  if (ablation.strengths) {
    if (convenience) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "ablation: give strengths or alpha/layers/embedding, not both");
    const { embedding, attention, mlp } = ablation.strengths;
    if (attention.length !== numLayers || mlp.length !== numLayers) {
      throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `ablation strengths need ${numLayers} attention and ${numLayers} MLP values (got ${attention.length} and ${mlp.length})`);
    }
    const all = [embedding, ...Array.from(attention), ...Array.from(mlp)];
    if (all.some((v) => typeof v !== "number" || !Number.isFinite(v))) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "ablation strengths must be finite numbers");
    return ablation.strengths;
  }
  const alpha = ablation.alpha ?? 1;
  if (!Number.isFinite(alpha)) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `ablation alpha must be finite (got ${alpha})`);
  const selected = new Uint8Array(numLayers);
  if (ablation.layers) {
    for (const layer of ablation.layers) {
      if (!Number.isInteger(layer) || layer < 0 || layer >= numLayers) {
        throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `ablation layer ${layer} is outside 0..${numLayers - 1}`);
      }
      selected[layer] = 1;
    }
  } else {
    selected.fill(1);
  }
  const perLayer = Array.from(selected, (on) => (on ? alpha : 0));
  return { embedding: ablation.embedding ?? true ? alpha : 0, attention: perLayer, mlp: perLayer };
}

/** The native form: bases concatenated (one shared, or one per stream), α per writer in fp64. */
export function nativeAblation(model: ForwardModel, ablation: ForwardAblation): NativeForwardAblation {
  const { hiddenSize: d, numLayers } = model.spec;
  if ((ablation.directions === undefined) === (ablation.streamDirections === undefined)) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "ablation needs exactly one of directions and streamDirections");
  }
  const strengths = strengthsOf(ablation, numLayers);
  const bases: Float64Array[] = [];
  const ranks: number[] = [];
  if (ablation.directions) {
    bases.push(checkedBasis(ablation.directions, d, "ablation"));
    ranks.push(ablation.directions.length);
  } else {
    const streams = ablation.streamDirections!;
    if (streams.length !== numLayers + 1) {
      throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `ablation streamDirections needs ${numLayers + 1} entries (streams 0..${numLayers}), got ${streams.length}`);
    }
    streams.forEach((directions, s) => {
      const used = s === 0 ? strengths.embedding !== 0 : strengths.attention[s - 1] !== 0 || strengths.mlp[s - 1] !== 0;
      if (directions.length === 0) {
        if (used) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `ablation stream ${s} has no directions but a writer into it has α ≠ 0`);
        ranks.push(0);
        return;
      }
      bases.push(checkedBasis(directions, d, `ablation stream ${s}`));
      ranks.push(directions.length);
    });
  }
  const basis = new Float32Array(bases.reduce((n, b) => n + b.length, 0));
  let offset = 0;
  for (const b of bases) {
    basis.set(b, offset);
    offset += b.length;
  }
  return {
    basis,
    ranks: Uint32Array.from(ranks),
    embeddingAlpha: strengths.embedding,
    attentionAlpha: Float64Array.from(strengths.attention),
    mlpAlpha: Float64Array.from(strengths.mlp),
  };
}

export function nativeAddition(model: ForwardModel, addition: ForwardAddition): NativeForwardAddition {
  const { hiddenSize, numLayers } = model.spec;
  if (addition.vector.length !== hiddenSize) {
    throw new AbliterateError(ErrorCodes.DIRECTION_DIMENSION, `addition vector has ${addition.vector.length} entries, hidden_size is ${hiddenSize}`);
  }
  const vector = Float32Array.from(addition.vector);
  if (vector.some((v) => !Number.isFinite(v))) throw new AbliterateError(ErrorCodes.DIRECTION_NOT_FINITE, "addition vector holds NaN or Inf (or overflows f32)");
  if (!Number.isInteger(addition.point) || addition.point < 0 || addition.point > numLayers) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `addition point ${addition.point} is outside 0..${numLayers}`);
  }
  return { vector, point: addition.point };
}

/** Both hooks of an edit in native form (absent ones stay absent). */
export function nativeEdit(model: ForwardModel, edit: { ablation?: ForwardAblation; addition?: ForwardAddition }): NativeForwardEdit {
  return {
    ablation: edit.ablation ? nativeAblation(model, edit.ablation) : undefined,
    addition: edit.addition ? nativeAddition(model, edit.addition) : undefined,
  };
}
