/**
 * Stage 5, surgery, with evaluation and report folded into it: the selected direction is applied by the streaming
 * surgery into OUT.partial, verified, evaluated there, its reports written there, and only then renamed to OUT.
 *
 * An existing OUT is reused only when the surgery key recorded in its abliteration.json equals this run's (every
 * surgery input: the direction's sha256, its row, α, layers, targets, variants, and the input model's identity) AND
 * a fresh verification of its bytes, as they are now, passes. A stale or damaged OUT is never answered from.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { OutputInput } from "../fs/refuse-output-overlap.js";
import { replaceFileAtomically } from "../fs/replace-file-atomically.js";
import { PROVENANCE_FILE, readProvenance, type ModelSource, type Provenance } from "../provenance/provenance.js";
import { applyModel } from "../surgery/apply-model.js";
import type { SurgeryParams } from "../surgery/prepare-surgery.js";
import { verifiedSummary } from "../surgery/verified-summary.js";
import { verifyModel } from "../surgery/verify-model.js";
import type { PipelineEvent } from "./events.js";
import type { PipelineContext } from "./pipeline-context.js";
import { stageKey } from "./stage-store.js";

/** Surgery options of the one command: everything SurgeryParams has but the direction, which the pipeline selects. */
export type PipelineSurgeryOptions = Omit<SurgeryParams, "direction" | "directionLayer">;

export interface SurgeryInputs {
  /** The candidates file in the work dir, and the row the selection chose. */
  directionFile: string;
  /** The row of a `directions` file; absent for a `subspace` file (applied whole, rank k). */
  layer?: number;
  options: PipelineSurgeryOptions;
  outDir: string;
  force?: boolean;
  threads?: number;
  source?: ModelSource;
  /** Inputs besides the model and the direction file that OUT may not overlap (prompt files, the work dir). */
  otherInputs?: readonly OutputInput[];
}

export async function surgeryKey(ctx: PipelineContext, inputs: SurgeryInputs): Promise<string> {
  const o = inputs.options;
  const directionSha = createHash("sha256").update(await readFile(inputs.directionFile)).digest("hex");
  return stageKey({
    stage: "surgery",
    direction: directionSha,
    layer: inputs.layer ?? null,
    scale: o.scale ?? 1,
    layers: o.layers ?? null,
    targets: o.targets ?? null,
    include: o.include ?? [],
    exclude: o.exclude ?? [],
    orientation: o.orientation ?? null,
    normPreserving: o.normPreserving ?? false,
    perLayer: o.perLayer ?? false,
    projection: o.projection ?? null,
    alphas: o.alphas ?? null,
    model: (await ctx.identity()).key,
  });
}

function describeRecord(record: Provenance): string {
  return `α ${record.scale}, layers ${record.layers}, targets ${record.targets.join(",")}, direction row ${record.direction.direction_layer ?? "-"} (sha256 ${record.direction.sha256.slice(0, 12)}…)`;
}

/** Wraps the pipeline's own events so they pass through the surgery library's generator unmistaken for its own. */
export type Forwarded = { type: "pipeline"; event: PipelineEvent };

/**
 * After the surgery (new or reused): `finish` evaluates the edited folder and writes the results into it, returning
 * the fields it adds to abliteration.json. For a new output it runs inside OUT.partial before the rename.
 */
export type FinishOutput = (dir: string, record: Provenance, surgeryKey: string) => AsyncGenerator<PipelineEvent, Provenance>;

export interface SurgeryOutcome {
  provenance: Provenance;
  reused: boolean;
  surgeryKey: string;
}

export async function* surgeryStage(ctx: PipelineContext, inputs: SurgeryInputs, finish: FinishOutput): AsyncGenerator<PipelineEvent, SurgeryOutcome> {
  const key = await surgeryKey(ctx, inputs);
  const surgeryParams: SurgeryParams = { ...inputs.options, direction: inputs.directionFile, directionLayer: inputs.layer };
  const existing = await readProvenance(inputs.outDir).catch(() => undefined);
  let force = inputs.force;
  if (existing && !force) {
    if (existing.pipeline?.surgery_key !== key) {
      throw new AbliterateError(
        ErrorCodes.OUTPUT_EXISTS,
        `already holds a checkpoint made from other inputs (${describeRecord(existing)}${existing.pipeline ? "" : ", not made by this pipeline"}); ` +
          "this run's surgery differs, so it is not reused: pass --force to replace it, or choose another --out",
        { file: inputs.outDir },
      );
    }
    // Same inputs: reuse rests on the bytes as they are now, not on the record.
    yield { type: "stage", stage: "surgery", status: "start", detail: `checking ${inputs.outDir}` };
    const check = verifyModel({ ...surgeryParams, originalDir: ctx.options.modelDir, modifiedDir: inputs.outDir, threads: inputs.threads });
    let step = await check.next().catch((error: unknown) => ({ done: true as const, value: undefined, error }));
    while (!step.done) {
      yield { type: "surgery", event: step.value };
      step = await check.next().catch((error: unknown) => ({ done: true as const, value: undefined, error }));
    }
    const report = step.value;
    if (report?.passed) {
      yield { type: "stage", stage: "surgery", status: "reused", detail: `${inputs.outDir} (same inputs; verified again just now)` };
      const provenance = yield* finish(inputs.outDir, existing, key);
      return { provenance, reused: true, surgeryKey: key };
    }
    const why = report ? report.failures.slice(0, 3).join("; ") : String((step as { error?: unknown }).error);
    yield { type: "note", message: `${inputs.outDir} was made from these inputs but no longer verifies (${why}); rebuilding it` };
    force = true;
  }
  yield { type: "stage", stage: "surgery", status: "start" };
  const applied = applyModel<Forwarded>({
    ...surgeryParams,
    modelDir: ctx.options.modelDir,
    outDir: inputs.outDir,
    force,
    threads: inputs.threads,
    source: inputs.source,
    otherInputs: inputs.otherInputs,
    beforeCommit: async function* (output) {
      const v = output.provenance.verification;
      yield { type: "pipeline", event: { type: "finding", stage: "surgery", message: verifiedSummary({ tensorsChecked: v.tensors_checked, elementsChecked: v.elements_checked, maxUlpError: v.max_ulp_error, maxAblationResidual: v.max_ablation_residual }) } };
      const record = { ...output.provenance, pipeline: { surgery_key: key, model_identity: (await ctx.identity()).key } };
      const events = finish(output.dir, record, key);
      let step = await events.next();
      while (!step.done) {
        yield { type: "pipeline", event: step.value };
        step = await events.next();
      }
      return step.value;
    },
  });
  let step = await applied.next();
  while (!step.done) {
    const event = step.value;
    if (event.type === "pipeline") yield event.event;
    else yield { type: "surgery", event };
    step = await applied.next();
  }
  yield { type: "stage", stage: "surgery", status: "done", detail: `wrote ${inputs.outDir}` };
  return { provenance: step.value.provenance, reused: false, surgeryKey: key };
}

/**
 * Places results in an output folder: each file by an atomic, fsynced replacement, abliteration.json last, so the
 * record never describes results that are not there yet. Files whose bytes are already those are left alone.
 */
export async function writeResultsInto(dir: string, files: { name: string; data: string }[], record: Provenance): Promise<void> {
  for (const file of [...files, { name: PROVENANCE_FILE, data: `${JSON.stringify(record, null, 2)}\n` }]) {
    const path = join(dir, file.name);
    const current = await readFile(path, "utf8").catch(() => undefined);
    if (current !== file.data) await replaceFileAtomically(path, file.data);
  }
}
