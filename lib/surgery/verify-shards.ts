/**
 * Runs the native verifier over every shard of a planned surgery and folds the per-shard results into one
 * summary: every target within 1 ulp of the fp64 reference, every other byte identical.
 */
import { basename, join } from "node:path";
import { stat } from "node:fs/promises";
import { verifyShard, type VerifiedTensor } from "../native/addon.js";
import type { SurgeryEvent } from "./events.js";
import { withProgress } from "./native-progress.js";
import type { SurgeryPlan } from "./plan-surgery.js";
import type { Checkpoint } from "../safetensors/read-checkpoint.js";

export interface TensorVerification {
  name: string;
  shard: string;
  elements: number;
  mismatches: number;
  maxUlpError: number;
  /** max |rᵀW′| / max |rᵀW|: ≈ 0 for α = 1 (up to rounding to the dtype), |1 − α| in general. */
  ablationResidual: number;
  firstMismatch?: { index: number; expected: number; actual: number };
  /** Elements that are NaN or ±Inf in the original or the result (each a mismatch), and of them in the original. */
  nonFinite: number;
  nonFiniteOriginal: number;
  /** First such element (across experts: of the first expert that has one), row-major within its expert. */
  firstNonFinite?: number;
  firstNonFiniteOriginal?: number;
}

export interface ShardVerification {
  shard: string;
  untouchedIdentical: boolean;
  firstUntouchedDifference: number;
}

export interface VerificationSummary {
  passed: boolean;
  tensorsChecked: number;
  elementsChecked: number;
  mismatches: number;
  maxUlpError: number;
  maxAblationResidual: number;
  untouchedIdentical: boolean;
  failures: string[];
  tensors: TensorVerification[];
  shards: ShardVerification[];
}

export interface VerifyShardsParams {
  checkpoint: Checkpoint;
  plan: SurgeryPlan;
  modifiedDir: string;
  threads?: number;
  chunkBytes?: number;
}

function foldExperts(results: VerifiedTensor[], shard: string): TensorVerification[] {
  // Fused-expert tensors are verified per expert (name[e]); report them as one tensor.
  const byName = new Map<string, TensorVerification & { before: number; after: number }>();
  for (const result of results) {
    const name = result.name.replace(/\[\d+\]$/, "");
    const entry = byName.get(name) ?? { name, shard, elements: 0, mismatches: 0, maxUlpError: 0, ablationResidual: 0, nonFinite: 0, nonFiniteOriginal: 0, before: 0, after: 0 };
    entry.elements += result.elements;
    entry.mismatches += result.mismatches;
    entry.nonFinite += result.nonFinite;
    entry.nonFiniteOriginal += result.nonFiniteOriginal;
    if (entry.firstNonFinite === undefined && result.firstNonFinite >= 0) entry.firstNonFinite = result.firstNonFinite;
    if (entry.firstNonFiniteOriginal === undefined && result.firstNonFiniteOriginal >= 0) entry.firstNonFiniteOriginal = result.firstNonFiniteOriginal;
    entry.maxUlpError = Math.max(entry.maxUlpError, result.maxUlpError);
    entry.before = Math.max(entry.before, result.projectionBefore);
    entry.after = Math.max(entry.after, result.projectionAfter);
    if (!entry.firstMismatch && result.mismatches > 0) {
      entry.firstMismatch = { index: result.firstMismatchIndex, expected: result.firstMismatchExpected, actual: result.firstMismatchActual };
    }
    byName.set(name, entry);
  }
  return [...byName.values()].map(({ before, after, ...rest }) => ({ ...rest, ablationResidual: before === 0 ? 0 : after / before }));
}

/** One shard's verification, folded: what `summarizeVerification` combines. */
export interface ShardCheck {
  tensors: TensorVerification[];
  shard: ShardVerification;
  failures: string[];
}

/**
 * Verifies one shard of the plan against its counterpart in `modifiedDir`. `onBytes` gets the bytes of this shard
 * checked so far. A size mismatch or a missing file is a failure of the shard, not an exception.
 */
export async function checkShard(
  params: VerifyShardsParams,
  shard: Checkpoint["shards"][number],
  onBytes: (bytesDone: number) => void = () => undefined,
): Promise<ShardCheck> {
  const file = basename(shard.path);
  const modifiedPath = join(params.modifiedDir, file);
  const modifiedSize = await stat(modifiedPath).then((info) => info.size, () => -1);
  if (modifiedSize !== shard.fileSize) {
    return {
      tensors: [],
      shard: { shard: file, untouchedIdentical: false, firstUntouchedDifference: 0 },
      failures: [modifiedSize < 0 ? `${file}: missing from the modified model` : `${file}: size ${modifiedSize} differs from the original's ${shard.fileSize}`],
    };
  }
  const jobs = params.plan.jobsByShard.get(shard.path) ?? [];
  const result = await verifyShard(
    { originalPath: shard.path, modifiedPath, tensors: jobs, threads: params.threads, chunkBytes: params.chunkBytes },
    (progress) => onBytes(progress.bytesDone),
  );
  const tensors = foldExperts(result.tensors, file);
  const failures: string[] = [];
  for (const tensor of tensors) {
    const planned = params.plan.tensors.find((candidate) => candidate.name === tensor.name && candidate.shardPath === shard.path);
    if (tensor.nonFiniteOriginal > 0) {
      // The non-finite rule (docs/reliability.md § Non-finite values): a vector holding NaN or Inf has no defined
      // projection, and a checkpoint with them in a residual writer is broken already.
      failures.push(
        `${file}: tensor "${tensor.name}" holds ${tensor.nonFiniteOriginal} NaN or infinite value(s) in the original (first at element ${tensor.firstNonFiniteOriginal}); ` +
          "abliterate does not edit tensors with non-finite weights: repair the checkpoint, or leave the tensor out with --exclude",
      );
    } else if (tensor.nonFinite > 0) {
      failures.push(
        `${file}: tensor "${tensor.name}" holds ${tensor.nonFinite} NaN or infinite value(s) in the edited result (first at element ${tensor.firstNonFinite}) although the original is finite: ` +
          `at α = ${params.plan.scale} the projection overflows ${planned?.dtype ?? "the dtype"} (a smaller |α| fits), or the file was changed after it was written; abliterate never writes non-finite weights`,
      );
    } else if (tensor.mismatches > 0) {
      const first = tensor.firstMismatch!;
      failures.push(
        `${file}: tensor "${tensor.name}" has ${tensor.mismatches} element(s) outside 1 ulp of the fp64 reference ` +
          `(first at element ${first.index}: expected ${first.expected}, found ${first.actual})`,
      );
    }
  }
  if (!result.untouchedIdentical) {
    const owner = shard.tensors.find((tensor) => result.firstUntouchedDifference >= tensor.byteOffset && result.firstUntouchedDifference < tensor.byteOffset + tensor.byteLength);
    failures.push(
      `${file}: bytes outside the edited tensors differ, first at offset ${result.firstUntouchedDifference}` +
        (owner ? ` (inside tensor "${owner.name}", which must be byte-identical)` : " (in the header)"),
    );
  }
  return { tensors, shard: { shard: file, untouchedIdentical: result.untouchedIdentical, firstUntouchedDifference: result.firstUntouchedDifference }, failures };
}

/** Folds per-shard checks (in shard order) into the summary that verify, apply and abliteration.json report. */
export function summarizeVerification(checks: ShardCheck[]): VerificationSummary {
  const tensors = checks.flatMap((check) => check.tensors);
  const shards = checks.map((check) => check.shard);
  const failures = checks.flatMap((check) => check.failures);
  return {
    passed: failures.length === 0,
    tensorsChecked: tensors.length,
    elementsChecked: tensors.reduce((sum, tensor) => sum + tensor.elements, 0),
    mismatches: tensors.reduce((sum, tensor) => sum + tensor.mismatches, 0),
    maxUlpError: tensors.reduce((max, tensor) => Math.max(max, tensor.maxUlpError), 0),
    maxAblationResidual: tensors.reduce((max, tensor) => Math.max(max, tensor.ablationResidual), 0),
    untouchedIdentical: shards.every((shard) => shard.untouchedIdentical),
    failures,
    tensors,
    shards,
  };
}

export async function* verifyShards(params: VerifyShardsParams): AsyncGenerator<SurgeryEvent, VerificationSummary> {
  const bytesTotal = params.checkpoint.shards.reduce((sum, shard) => sum + shard.fileSize, 0);
  let bytesBefore = 0;
  const checks: ShardCheck[] = [];
  for (const shard of params.checkpoint.shards) {
    const run = withProgress<number, ShardCheck>((onBytes) => checkShard(params, shard, onBytes));
    let step = await run.next();
    while (!step.done) {
      yield { type: "progress", phase: "verify", bytesDone: bytesBefore + step.value, bytesTotal };
      step = await run.next();
    }
    checks.push(step.value);
    bytesBefore += shard.fileSize;
  }
  yield { type: "phase-done", phase: "verify" };
  return summarizeVerification(checks);
}
