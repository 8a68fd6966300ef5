/**
 * The one command's direction stages, shared by `abliterate MODEL` (no --direction) and `abliterate demo`:
 * prompts → directions → selection → apply + verify → evaluate → report, with progress on stderr and every stage
 * resumable from the work dir. Push stays with the caller.
 */
import { createHash } from "node:crypto";
import { copyFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { DirectionPipeline, type DirectionPipelineOptions, type StageName } from "../pipeline/direction-pipeline.js";
import type { Evaluation } from "../directions/evaluate-model.js";
import { applyModel, type ApplyModelParams } from "../surgery/apply-model.js";
import { PROVENANCE_FILE, readProvenance, type Provenance } from "../provenance/provenance.js";
import type { ProgressDisplay, ProgressTask } from "./progress.js";
import { renderSurgery } from "./render-surgery.js";

const STAGE_LABELS: Record<StageName, string> = {
  prompts: "prompts",
  directions: "directions",
  selection: "selection",
  evaluation: "evaluation",
  report: "report",
};

export interface PipelineRunResult {
  outDir: string;
  layer: number;
  evaluation: Evaluation;
  reportHtml: string;
  reportJson: string;
  provenance: Provenance;
}

/** Wraps a stage's failure so the user sees which stage failed and where its artifacts are. */
async function stage<T>(name: string, workDir: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof AbliterateError) {
      throw new AbliterateError(error.code, `${name} stage failed: ${error.message}\n(artifacts of the finished stages are in ${workDir}; rerun the same command to resume)`, {
        file: error.file,
        status: error.status,
        cause: error,
      });
    }
    throw error;
  }
}

function percent(value: number): string {
  return `${(100 * value).toFixed(0)}%`;
}

export async function runPipelineStages(params: {
  pipeline: Omit<DirectionPipelineOptions, "onStage" | "onProgress" | "onNote">;
  surgery: Omit<ApplyModelParams, "direction" | "directionLayer" | "modelDir" | "outDir">;
  outDir: string;
  display: ProgressDisplay;
}): Promise<PipelineRunResult> {
  const { display } = params;
  const tasks = new Map<StageName, ProgressTask>();
  const pipeline = new DirectionPipeline({
    ...params.pipeline,
    onStage: (name, status, detail) => {
      if (status === "resumed") display.log(`${STAGE_LABELS[name]}: reused from ${params.pipeline.workDir}`);
      if (status === "done") {
        const task = tasks.get(name);
        if (task) task.finish();
        else display.log(`${STAGE_LABELS[name]}: done${detail ? ` (${detail})` : ""}`);
        if (task && detail) display.log(`${STAGE_LABELS[name]}: ${detail}`);
        display.stop();
      }
    },
    onProgress: (name, done, total) => {
      let task = tasks.get(name);
      if (!task) {
        task = display.start(STAGE_LABELS[name], total, "items");
        tasks.set(name, task);
      }
      task.setTotal(total);
      task.update(done);
    },
    onNote: (message) => display.log(`note: ${message}`),
  });
  const workDir = params.pipeline.workDir;
  const prompts = await stage("prompts", workDir, () => pipeline.prompts());
  const candidates = await stage("directions", workDir, () => pipeline.directions(prompts));
  const selection = await stage("selection", workDir, () => pipeline.select(prompts, candidates));
  const directionPath = pipeline.path("directions.safetensors");
  const layer = selection.selection.layer;
  if (selection.how === "automatic") {
    const chosen = selection.scores?.candidates.find((c) => c.layer === layer);
    display.log(`selected layer ${layer}: refusal score ${chosen?.refusalScore?.toFixed(2)} (unedited ${selection.scores?.baseline.harmfulRefusal.toFixed(2)}), KL ${chosen?.kl?.toFixed(4)}`);
  }

  // The surgery output is reused when it was made from this very direction row and verified.
  const existing = await readProvenance(params.outDir).catch(() => undefined);
  const directionSha = createHash("sha256").update(await readFile(directionPath)).digest("hex");
  let provenance: Provenance;
  if (existing && existing.direction?.sha256 === directionSha && existing.direction.direction_layer === layer && existing.verification?.passed && !params.surgery.force) {
    display.log(`surgery: reused ${params.outDir} (same direction, verified)`);
    provenance = existing;
  } else {
    const report = await stage("surgery", workDir, () =>
      renderSurgery(applyModel({ ...params.surgery, direction: directionPath, directionLayer: layer, modelDir: params.pipeline.modelDir, outDir: params.outDir }), display),
    );
    if (!report.verified) throw new AbliterateError(ErrorCodes.VERIFY_FAILED, `verification of ${params.outDir} failed`, { file: params.outDir });
    const v = report.verification;
    display.log(`verified: ${v.tensorsChecked} tensor(s) within 1 ulp of the fp64 reference (max ${v.maxUlpError.toFixed(3)} ulp), untouched bytes identical`);
    provenance = report.provenance;
  }
  const surgeryKey = `${provenance.direction.sha256}:${layer}:${provenance.scale}:${provenance.layers}:${provenance.targets.join(",")}`;
  const evaluated = await stage("evaluation", workDir, () => pipeline.evaluate(prompts, selection, params.outDir, surgeryKey));
  const evaluation = evaluated.evaluation;
  const labels = prompts.labels;
  display.log(
    `evaluation (${evaluation.harmfulPrompts} held-out ${labels.positive}, ${evaluation.harmlessPrompts} ${labels.negative} prompts, ` +
      `${evaluation.method === "generation" ? `greedy ${evaluation.maxNewTokens} tokens` : "first-token scores"}): ` +
      `${labels.positive} refused ${percent(evaluation.before.harmfulRefusalRate)} → ${percent(evaluation.after.harmfulRefusalRate)}, ` +
      `mean KL on ${labels.negative} ${evaluation.harmlessKl.toFixed(4)}`,
  );
  const reports = await stage("report", workDir, () =>
    pipeline.report({
      prompts,
      candidates,
      selection,
      evaluation,
      surgery: {
        out: params.outDir,
        tensorsChanged: provenance.tensors_changed.length,
        scale: provenance.scale,
        layers: provenance.layers,
        verified: provenance.verification.passed,
        maxUlpError: provenance.verification.max_ulp_error,
      },
    }),
  );

  // The results travel with the model: abliteration.json (whose notes the model card lists) and the report files.
  const note =
    `Direction selected automatically at layer index ${layer} from ${prompts.origins.positive} vs ${prompts.origins.negative}. ` +
    `Held-out evaluation (${evaluation.method === "generation" ? `greedy ${evaluation.maxNewTokens}-token completions` : "first-token refusal scores"}): ` +
    `${labels.positive} prompts refused ${percent(evaluation.before.harmfulRefusalRate)} before, ${percent(evaluation.after.harmfulRefusalRate)} after; ` +
    `mean KL on ${labels.negative} prompts ${evaluation.harmlessKl.toFixed(4)}. See report.html.`;
  const updated = {
    ...provenance,
    notes: [...provenance.notes.filter((n) => !n.startsWith("Direction selected automatically")), note],
    selection: { layer, how: selection.how, scores: selection.scores?.candidates.find((c) => c.layer === layer) ?? null },
    evaluation: { ...evaluation, samples: undefined },
  };
  await writeFile(join(params.outDir, PROVENANCE_FILE), `${JSON.stringify(updated, null, 2)}\n`);
  await copyFile(reports.html, join(params.outDir, "report.html"));
  await copyFile(reports.json, join(params.outDir, "report.json"));
  return { outDir: params.outDir, layer, evaluation, reportHtml: join(params.outDir, "report.html"), reportJson: join(params.outDir, "report.json"), provenance: updated };
}
