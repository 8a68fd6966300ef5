/**
 * One sentence for an evaluation, used by the CLI summary, the model card note and the report, so they never
 * disagree: the behaviour rate by signature before → after (with the phrase list's opinion), and what the edit did
 * to the other set. For refusal it speaks of refusing; for any other concept of "showing the behaviour".
 */
import type { Evaluation } from "./evaluate-model.js";

const pct = (value: number) => `${(100 * value).toFixed(0)}%`;

export function describeEvaluation(evaluation: Evaluation, labels: { positive: string; negative: string }, refusal: boolean): string {
  const verb = refusal ? "refused" : "showed the behaviour";
  const marked =
    evaluation.before.positiveMarked !== null && evaluation.after.positiveMarked !== null
      ? ` (by ${refusal ? "refusal phrases" : "the markers"}: ${pct(evaluation.before.positiveMarked)} → ${pct(evaluation.after.positiveMarked)})`
      : "";
  return (
    `held-out ${labels.positive} prompts ${verb} ${pct(evaluation.before.positiveBehaviour)} → ${pct(evaluation.after.positiveBehaviour)}${marked}; ` +
    `${labels.negative} completions unchanged ${pct(evaluation.negativeUnchanged)} (first ${evaluation.unchangedTokens} tokens), ` +
    `mean KL ${evaluation.negativeKl.toFixed(4)}`
  );
}

/** The loud line for an edit that changed the other set, or undefined when it did not. */
export function damageWarning(evaluation: Evaluation, labels: { positive: string; negative: string }): string | undefined {
  const changed = pct(1 - evaluation.negativeUnchanged);
  if (evaluation.verdict === "damaged") {
    return `DAMAGED: the edit changed ${changed} of the held-out ${labels.negative} completions, so the ${labels.positive} behaviour may be gone only because the model broke`;
  }
  if (evaluation.verdict === "changed") return `the edit changed ${changed} of the held-out ${labels.negative} completions; check the samples in report.html`;
  return undefined;
}
