/**
 * verify: prove a modified checkpoint is exactly the surgery it claims. Options not given explicitly are taken from
 * the modified folder's abliteration.json, so `verify ORIGINAL MODIFIED --direction FILE` checks what apply did.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { TargetKind } from "../arch/families.js";
import type { SurgeryEvent } from "./events.js";
import { prepareSurgery, type SurgeryParams } from "./prepare-surgery.js";
import { readProvenance } from "../provenance/provenance.js";
import { verifyShards, type VerificationSummary } from "./verify-shards.js";
import { compareModelFolders } from "./compare-model-folders.js";
import { ownOutputPaths } from "./model-folder-files.js";
import { basename } from "node:path";

export interface VerifyModelParams extends SurgeryParams {
  originalDir: string;
  modifiedDir: string;
  threads?: number;
  chunkBytes?: number;
}

export interface VerifyReport extends VerificationSummary {
  /** Files other than the shards compared byte for byte with the original's (compare-model-folders.ts). */
  filesCompared: number;
  /** The options the check used, after filling gaps from abliteration.json. */
  options: { scale: number; layers: string; targets: TargetKind[]; directionLayer?: number; normPreserving: boolean };
  notes: string[];
}

export async function* verifyModel(params: VerifyModelParams): AsyncGenerator<SurgeryEvent, VerifyReport> {
  const recorded = await readProvenance(params.modifiedDir);
  const notes: string[] = [];
  const merged: SurgeryParams = {
    direction: params.direction,
    directionLayer: params.directionLayer ?? recorded?.direction.direction_layer,
    scale: params.scale ?? recorded?.scale,
    layers: params.layers ?? recorded?.layers,
    targets: params.targets ?? recorded?.targets,
    include: params.include ?? recorded?.include,
    exclude: params.exclude ?? recorded?.exclude,
    orientation: params.orientation ?? recorded?.orientation,
    normPreserving: params.normPreserving ?? recorded?.norm_preserving,
    perLayer: params.perLayer ?? recorded?.per_layer,
    projection: params.projection ?? recorded?.projection,
    alphas: params.alphas ?? recorded?.alphas,
  };
  const prepared = await prepareSurgery(params.originalDir, merged, { skipPath: ownOutputPaths(params.modifiedDir) });
  if (recorded && recorded.direction.sha256 !== prepared.directionFile.sha256) {
    throw new AbliterateError(
      ErrorCodes.VERIFY_FAILED,
      `the direction file's sha256 (${prepared.directionFile.sha256.slice(0, 12)}…) differs from the one abliteration.json records (${recorded.direction.sha256.slice(0, 12)}…): this is not the direction the model was edited with`,
      { file: params.direction },
    );
  }
  if (!recorded) notes.push("no abliteration.json in the modified folder: options come from the command line and defaults");
  const summary = yield* verifyShards({
    checkpoint: prepared.checkpoint,
    plan: prepared.plan,
    modifiedDir: params.modifiedDir,
    threads: params.threads,
    chunkBytes: params.chunkBytes,
  });
  // Everything that is not a shard, byte for byte: a changed config.json or index, or an extra file, fails too.
  const folders = await compareModelFolders({
    originalDir: params.originalDir,
    modifiedDir: params.modifiedDir,
    shardFiles: new Set(prepared.checkpoint.shards.map((shard) => basename(shard.path))),
  });
  const failures = [...summary.failures, ...folders.failures];
  return {
    ...summary,
    passed: failures.length === 0,
    failures,
    filesCompared: folders.filesCompared,
    options: {
      scale: prepared.plan.scale,
      layers: `${prepared.plan.layerRange.start}:${prepared.plan.layerRange.end}`,
      targets: prepared.plan.targets,
      directionLayer: prepared.basis.source.directionLayer,
      normPreserving: prepared.plan.normPreserving,
    },
    notes: [...notes, ...prepared.plan.notes],
  };
}
