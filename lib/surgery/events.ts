/** Typed progress events of the surgery library (the CLI renders them; the library never prints). */
export type SurgeryPhase = "apply" | "verify";

export type SurgeryEvent =
  | { type: "plan"; shards: number; tensors: number; bytesTotal: number }
  | { type: "progress"; phase: SurgeryPhase; bytesDone: number; bytesTotal: number }
  | { type: "phase-done"; phase: SurgeryPhase }
  /** Something the run repaired or decided that the user should hear about (e.g. an interrupted --force run's output restored). */
  | { type: "note"; message: string };
