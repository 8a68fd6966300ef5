import { dtypeAlignmentRank } from "./dtypes.js";
import type { SerializableTensor } from "./types.js";

/**
 * The order in which the reference writer (Rust `serialize`, used by Python's `save_file`) lays tensors out:
 * descending dtype position in the crate's enum (so the widest-aligned data comes first and every tensor stays
 * aligned), then by name compared as UTF-8 bytes (Rust `String` ordering, which differs from JS UTF-16 order
 * for characters beyond U+FFFF).
 */
export function sortLikeSafetensorsWriter<T extends Pick<SerializableTensor, "name" | "dtype">>(tensors: readonly T[]): T[] {
  return [...tensors].sort(
    (a, b) =>
      dtypeAlignmentRank(b.dtype) - dtypeAlignmentRank(a.dtype) ||
      Buffer.compare(Buffer.from(a.name, "utf8"), Buffer.from(b.name, "utf8")),
  );
}
