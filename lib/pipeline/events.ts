/**
 * Typed events of the one command (and of `abliterate direction`), as the surgery and download libraries emit
 * theirs: the CLI and `demo` render them; the library never prints.
 */
import type { SurgeryEvent } from "../surgery/events.js";

export type StageName = "prompts" | "signature" | "directions" | "selection" | "search" | "subspace" | "surgery" | "evaluation" | "report";

export type PipelineEvent =
  /** A stage began, was answered from the work dir (or from OUT) with identical inputs, or finished. */
  | { type: "stage"; stage: StageName; status: "start" | "reused" | "done"; detail?: string }
  /** Work inside a stage: prompts run, candidates scored, … */
  | { type: "progress"; stage: StageName; done: number; total: number }
  /** Something the user should know (a fallback taken, a filter switched off). */
  | { type: "note"; message: string }
  /** What a stage found, in a sentence (the selected layer and its scores, the before/after figures). */
  | { type: "finding"; stage: StageName; message: string }
  /** The surgery library's own events (plan, bytes written and verified). */
  | { type: "surgery"; event: SurgeryEvent };
