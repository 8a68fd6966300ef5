/**
 * `abliteration.json`: what was done and what verification found (docs/surgery.md § Provenance).
 * It lives beside the shards, never inside their headers, so shards differ from the input only in edited bytes.
 * `verify` reads it back to recover the options a run used. The record's type lives below hub and surgery so both
 * read it (the model card lists it); surgery builds it (lib/surgery/build-provenance.ts).
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { writeFileNamingErrors } from "../fs/file-system-error.js";
import type { TargetKind, Orientation } from "../arch/families.js";
import type { HarmlessProjection } from "../direction-files/select-basis.js";

export const PROVENANCE_FILE = "abliteration.json";

export interface ModelSource {
  repo?: string;
  revision?: string;
  commit?: string;
}

export interface Provenance {
  tool: { name: "abliterate"; version: string };
  created: string;
  source: ModelSource & { folder?: string };
  model: { family: string; model_type: string; hidden_size: number; num_layers: number };
  direction: { file: string; sha256: string; kind: string; format?: string; direction_layer?: number; rank: number; harmless_row?: number };
  scale: number;
  layers: string;
  targets: TargetKind[];
  include?: string[];
  exclude?: string[];
  orientation?: Orientation;
  norm_preserving: boolean;
  /** --per-layer: writers used the direction of the stream they write into. */
  per_layer?: boolean;
  /** --projected / --biprojected. */
  projection?: HarmlessProjection;
  tied_embeddings: boolean;
  notes: string[];
  /** The layer profile α came from (each edited tensor's own α is in tensors_changed), when there was one. */
  alphas?: { embed: number; attn: number[]; mlp: number[] };
  tensors_changed: { name: string; shard: string; kind: string; layer: number | null; orientation: Orientation; alpha?: number; post_norm?: string; stream?: number }[];
  /** The one command's selection of the direction (absent for `apply`). */
  selection?: { layer: number; how: string; scores?: unknown };
  /** The one command's held-out evaluation, before and after (samples left out). */
  evaluation?: unknown;
  /**
   * The one command's resume keys: the hash of every input of the surgery (direction, layer, α, layers, targets,
   * variants, the input model's identity) and of the results placed beside it, so a rerun reuses this folder only
   * for the very same inputs.
   */
  pipeline?: { surgery_key: string; model_identity: string; evaluation_key?: string; report_key?: string };
  verification: {
    passed: boolean;
    tensors_checked: number;
    elements_checked: number;
    mismatches: number;
    max_ulp_error: number;
    max_ablation_residual: number;
    untouched_identical: boolean;
  };
}

export async function writeProvenance(dir: string, provenance: Provenance): Promise<void> {
  await writeFileNamingErrors(join(dir, PROVENANCE_FILE), `${JSON.stringify(provenance, null, 2)}\n`);
}

/** Reads a previous run's record, or undefined when the folder has none. */
export async function readProvenance(dir: string): Promise<Provenance | undefined> {
  const file = join(dir, PROVENANCE_FILE);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as Provenance;
  } catch (error) {
    throw new AbliterateError(ErrorCodes.CONFIG_INVALID, `${PROVENANCE_FILE} is not valid JSON`, { file, cause: error });
  }
}
