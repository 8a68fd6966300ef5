/**
 * apply: stream every shard through the native projection into `DIR.partial/`, copy every other file byte for
 * byte, verify the result against the fp64 reference (each shard as soon as it is written, while the next one is
 * projected), make it durable, record provenance, then rename to DIR.
 */
import { cp, readdir } from "node:fs/promises";
import { basename, join, relative, resolve } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { EventChannel } from "../event-channel.js";
import { fsyncPath, fsyncTree } from "../fs/fsync-tree.js";
import type { Orientation } from "../arch/families.js";
import { applyShard, type ApplyShardResult, type ShardProgress } from "../native/addon.js";
import type { SurgeryEvent } from "./events.js";
import { withProgress } from "./native-progress.js";
import { fromFileSystemError } from "../fs/file-system-error.js";
import { prepareOutputFolder, type OutputFolder } from "./output-folder.js";
import { checkOutputPath } from "../fs/check-output-path.js";
import { refuseOutputOverlap, type OutputInput } from "../fs/refuse-output-overlap.js";
import { ownOutputPaths, SKIPPED_TOP_LEVEL } from "./model-folder-files.js";
import { prepareSurgery, type SurgeryParams } from "./prepare-surgery.js";
import { writeProvenance, type ModelSource, type Provenance } from "../provenance/provenance.js";
import { buildProvenance } from "./build-provenance.js";
import { openResumeRecord, shardKey } from "./resume-record.js";
import { checkShard, summarizeVerification, type ShardCheck, type VerificationSummary } from "./verify-shards.js";

export type { SurgeryEvent } from "./events.js";
export type { SurgeryParams } from "./prepare-surgery.js";

export interface ApplyModelParams<E = never> extends SurgeryParams {
  modelDir: string;
  outDir: string;
  /** Replace an existing output folder. */
  force?: boolean;
  threads?: number;
  chunkBytes?: number;
  /** Where the model came from, recorded in abliteration.json. */
  source?: ModelSource;
  /**
   * Runs once the new checkpoint is written and verified in the partial folder, before abliteration.json is written
   * and the folder is renamed: the pipeline evaluates the edited model there and adds its reports, so they are part
   * of the output from the moment it exists. Returns the record to write; its events are passed through.
   */
  beforeCommit?: (output: { dir: string; provenance: Provenance }) => AsyncGenerator<E, Provenance>;
  /**
   * Inputs besides the model folder and the direction file that OUT must not overlap (the one command's prompt
   * files and work dir); the model and the direction are always checked.
   */
  otherInputs?: readonly OutputInput[];
}

export interface ApplyReport {
  outDir: string;
  verified: boolean;
  tensorsChanged: number;
  bytesRewritten: number;
  bytesCopied: number;
  /** Shards finished by an earlier, killed run with identical inputs and jobs, reused (and verified) as they were. */
  reusedShards: number;
  seconds: number;
  /** Seconds from the start at which the last shard was written, the last one verified, and the output was on disk. */
  timeline: { surgeryDone: number; verified: number; durable: number };
  verification: VerificationSummary;
  provenance: Provenance;
}

async function copyOtherFiles(modelDir: string, output: OutputFolder, shardFiles: Set<string>): Promise<void> {
  const outDir = output.partialDir;
  const isOwnOutput = ownOutputPaths(output.finalDir);
  for (const entry of await readdir(modelDir, { withFileTypes: true })) {
    if (SKIPPED_TOP_LEVEL.has(entry.name) || shardFiles.has(entry.name) || isOwnOutput(resolve(modelDir, entry.name))) continue;
    // dereference: Hub cache snapshots are symlinks into blobs/, the output must hold real files.
    await cp(join(modelDir, entry.name), join(outDir, entry.name), { recursive: true, dereference: true, force: true });
  }
}

export async function* applyModel<E = never>(params: ApplyModelParams<E>): AsyncGenerator<SurgeryEvent | E, ApplyReport> {
  const started = Date.now();
  // The output's path is checked before any work: an empty or odd path, or one overlapping an input, fails at once.
  const inputs: OutputInput[] = [{ path: params.modelDir, label: "the model" }, { path: params.direction, label: "the direction file" }, ...(params.otherInputs ?? [])];
  const outDir = checkOutputPath({ path: params.outDir, kind: "folder" });
  await refuseOutputOverlap({ output: outDir, inputs });
  const prepared = await prepareSurgery(params.modelDir, params);
  const { checkpoint, plan } = prepared;
  const output = await prepareOutputFolder({ finalDir: outDir, force: params.force, keepPartial: true, inputs }).catch((error: unknown) => {
    throw fromFileSystemError(error);
  });
  for (const message of output.notes) yield { type: "note", message };
  let outputSettled = false;
  // Verifications still reading the partial folder; awaited before it is removed.
  let verifyQueue: Promise<void> = Promise.resolve();
  try {
    const resume = await openResumeRecord(output.partialDir);
    const bytesTotal = checkpoint.shards.reduce((sum, shard) => sum + shard.fileSize, 0);
    yield { type: "plan", shards: checkpoint.shards.length, tensors: plan.tensors.length, bytesTotal };
    let bytesBefore = 0;
    let bytesRewritten = 0;
    let bytesCopied = 0;
    let reusedShards = 0;
    const seconds = () => (Date.now() - started) / 1000;

    // Each shard is verified as soon as it is written, one verification at a time, while the next shard is
    // projected. Its fsync starts at the same moment: the kernel would not start writing back a few GB of dirty
    // pages on its own (dirty_background_ratio), so without it the disk would idle until the end. Both overlap
    // the surgery of the later shards (measured by `npm run bench`: faster than verifying and syncing everything
    // after the last shard, and than syncing each shard only once it is verified).
    const verifyParams = { checkpoint, plan, modifiedDir: output.partialDir, threads: params.threads, chunkBytes: params.chunkBytes };
    const verifyEvents = new EventChannel<SurgeryEvent>();
    const checks: Promise<ShardCheck>[] = [];
    const syncedFiles = new Set<string>();
    let syncQueue: Promise<void> = Promise.resolve();
    let verifiedBytes = 0;
    const reportVerified = (shardBytes: number) =>
      verifyEvents.push({ type: "progress", phase: "verify", bytesDone: verifiedBytes + shardBytes, bytesTotal }, (queued) => queued.type === "progress");
    const queueSyncAndCheck = (shard: (typeof checkpoint.shards)[number]) => {
      const path = join(output.partialDir, basename(shard.path));
      syncQueue = syncQueue.then(() => fsyncPath(path)).then(() => void syncedFiles.add(path));
      syncQueue.catch(() => undefined); // surfaces where it is awaited below, or is moot once the run failed
      const check = verifyQueue.then(() => checkShard(verifyParams, shard, reportVerified));
      // The queue itself never rejects, so a failed check is reported once, through `checks`.
      verifyQueue = check.then(
        () => {
          verifiedBytes += shard.fileSize;
          reportVerified(0);
        },
        () => undefined,
      );
      checks.push(check);
    };

    for (const shard of checkpoint.shards) {
      const file = basename(shard.path);
      const jobs = plan.jobsByShard.get(shard.path) ?? [];
      const key = await shardKey(shard.path, jobs);
      if (await resume.isDone(file, key)) {
        reusedShards += 1;
        bytesBefore += shard.fileSize;
        queueSyncAndCheck(shard);
        yield { type: "progress", phase: "apply", bytesDone: bytesBefore, bytesTotal };
        continue;
      }
      const run = withProgress<ShardProgress, ApplyShardResult>((onProgress) =>
        applyShard(
          {
            inputPath: shard.path,
            outputPath: join(output.partialDir, file),
            tensors: jobs,
            threads: params.threads,
            chunkBytes: params.chunkBytes,
            fsync: false,
          },
          onProgress,
        ),
      );
      let step = await run.next();
      while (!step.done) {
        yield { type: "progress", phase: "apply", bytesDone: bytesBefore + step.value.bytesDone, bytesTotal };
        yield* verifyEvents.drain();
        step = await run.next();
      }
      bytesRewritten += step.value.bytesRewritten;
      bytesCopied += step.value.bytesCopied;
      bytesBefore += shard.fileSize;
      // Recorded before it is fsynced: a killed process leaves its written pages in the page cache, and a shard
      // torn by a power loss is caught by the verification, which checks reused shards like any other.
      await resume.markDone(file, key);
      queueSyncAndCheck(shard);
    }
    await copyOtherFiles(params.modelDir, output, new Set(checkpoint.shards.map((shard) => relative(checkpoint.dir, shard.path))));
    const surgeryDone = seconds();
    yield { type: "phase-done", phase: "apply" };

    const verification = summarizeVerification(yield* verifyEvents.until(Promise.all(checks)));
    const verified = seconds();
    yield { type: "phase-done", phase: "verify" };
    if (!verification.passed) {
      throw new AbliterateError(
        ErrorCodes.VERIFY_FAILED,
        `verification of the new checkpoint failed, nothing was written to ${output.finalDir}:\n  ${verification.failures.slice(0, 10).join("\n  ")}`,
        { file: output.finalDir },
      );
    }
    const built = buildProvenance({ prepared, verification, source: params.source, modelDir: params.modelDir, include: params.include, exclude: params.exclude, orientation: params.orientation as Orientation | undefined });
    const provenance = params.beforeCommit ? yield* params.beforeCommit({ dir: output.partialDir, provenance: built }) : built;
    await writeProvenance(output.partialDir, provenance);
    await resume.discard();
    // The output must be on disk before the rename makes it look complete. The shards were synced as they were
    // written; this covers the other files, abliteration.json and the folders. (It walks the folder, so it
    // starts only once nothing is added to it or removed from it any more.)
    await syncQueue;
    await fsyncTree(output.partialDir, { alreadySynced: syncedFiles });
    const timeline = { surgeryDone, verified, durable: seconds() };
    await output.commit();
    outputSettled = true;
    return {
      outDir: output.finalDir,
      verified: true,
      tensorsChanged: plan.tensors.length,
      bytesRewritten,
      bytesCopied,
      reusedShards,
      seconds: seconds(),
      timeline,
      verification,
      provenance,
    };
  } catch (error) {
    // A failed run removes its partial output; a killed one cannot, and the next run reuses what it finished.
    outputSettled = true;
    await verifyQueue;
    await output.abandon();
    throw fromFileSystemError(error);
  } finally {
    // Reached without an error when a consumer stops iterating early: no partial output or lock is left behind.
    if (!outputSettled) {
      await verifyQueue;
      await output.abandon();
    }
  }
}
