/** The one "verified: …" line that apply, verify and the one command print after a passed verification. */
import type { VerificationSummary } from "./verify-shards.js";

export function verifiedSummary(v: Pick<VerificationSummary, "tensorsChecked" | "elementsChecked" | "maxUlpError" | "maxAblationResidual">): string {
  return (
    `verified: ${v.tensorsChecked} tensor(s), ${v.elementsChecked} elements within 1 ulp of the fp64 reference ` +
    `(max ${v.maxUlpError.toFixed(3)} ulp, ablation residual ${v.maxAblationResidual.toExponential(2)}); untouched bytes identical`
  );
}
