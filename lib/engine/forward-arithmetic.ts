/**
 * Which forward table a run uses, and which arithmetic it performs on a given model, for the records and the keys of
 * work that is reused across runs.
 */
import { runtimeInfo, type NativeTensorRef } from "../native/addon.js";
import type { ForwardModel } from "./load-forward-model.js";
import type { ForwardCompute } from "./run-forward.js";

/**
 * The forward table a run under `compute` uses on this machine ("avx512+bf16", "avx512", ...): what its result's
 * `kernels` will say, known before the run.
 */
export function forwardTableFor(compute: ForwardCompute = "fp32"): string {
  return runtimeInfo().kernels.forwardCompute[compute];
}

function isTensorRef(value: unknown): value is NativeTensorRef {
  return typeof value === "object" && value !== null && typeof (value as NativeTensorRef).dtype === "string" && Array.isArray((value as NativeTensorRef).shape);
}

/**
 * True when some matrix the forward pass multiplies by is stored in BF16. The layer record has some thirty optional
 * roles across the families (and experts nested in arrays), so this walks it rather than listing them, which would
 * go stale with the next family.
 */
function holdsBf16Matrix(model: ForwardModel): boolean {
  const pending: unknown[] = [model.layers, model.lmHead ?? model.embed];
  while (pending.length > 0) {
    const value = pending.pop();
    if (isTensorRef(value)) {
      if (value.dtype === "BF16" && value.shape.length === 2) return true;
    } else if (Array.isArray(value)) {
      pending.push(...value);
    } else if (typeof value === "object" && value !== null) {
      pending.push(...Object.values(value));
    }
  }
  return false;
}

/**
 * The forward table whose sums a run under `compute` reproduces on `model`: its name, as runtimeInfo reports it.
 * Under "auto" the bf16 recipe serves only matrices stored in BF16 (native Bf16Use::Bf16Weights, and every other
 * kernel is shared with the fp32 table), so on a model without one auto sums exactly as fp32 does and is named as
 * fp32: work computed under either is reused by the other (test/unit/forward-arithmetic.test.ts checks the equality
 * bit for bit).
 */
export function forwardArithmeticFor(compute: ForwardCompute | undefined, model: ForwardModel): string {
  if (compute === "auto" && !holdsBf16Matrix(model)) return forwardTableFor("fp32");
  return forwardTableFor(compute);
}
