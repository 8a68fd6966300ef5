/**
 * Stage 7, report: report.json (everything the run decided and measured) and report.html rendered from it, saved in
 * the work dir. The pipeline then places both in the output folder: inside OUT.partial before its rename, or by an
 * atomic replacement when only they changed.
 */
import { renderReportHtml } from "../directions/report-html.js";
import { layerGeometry, newReport, serializeReport, type PipelineReport } from "../directions/report-json.js";
import type { ContrastSplits } from "../directions/split-prompts.js";
import type { Evaluation } from "../directions/evaluate-model.js";
import type { DirectionCandidates } from "../direction-files/write-direction-candidates.js";
import { replaceFileAtomically } from "../fs/replace-file-atomically.js";
import type { PipelineEvent } from "./events.js";
import type { PipelineContext } from "./pipeline-context.js";
import type { PromptsArtifact } from "./prompts-stage.js";
import type { SelectionArtifact } from "./selection-stage.js";
import type { SignatureArtifact } from "./signature-stage.js";
import type { SearchArtifact } from "./search-stage.js";
import type { SubspaceArtifact } from "./subspace-stage.js";
import { stageKey } from "./stage-store.js";

export interface ReportArtifact {
  report: PipelineReport;
  /** The two files in the work dir. */
  json: string;
  html: string;
}

export async function* reportStage(
  ctx: PipelineContext,
  params: {
    prompts: PromptsArtifact;
    candidates: DirectionCandidates;
    signature: SignatureArtifact;
    selection: SelectionArtifact;
    subspace?: SubspaceArtifact;
    search?: SearchArtifact;
    evaluation?: { key: string; evaluation: Evaluation };
    surgery?: PipelineReport["surgery"];
    notes?: string[];
  },
): AsyncGenerator<PipelineEvent, ReportArtifact> {
  const { options, store } = ctx;
  const json = store.path("report.json");
  const html = store.path("report.html");
  const key = stageKey({
    stage: "report",
    prompts: params.prompts.key,
    directions: store.keyOf("directions") ?? null,
    signature: params.signature.key,
    selection: params.selection.key,
    subspace: params.subspace?.key ?? null,
    search: params.search?.key ?? null,
    evaluation: params.evaluation?.key ?? null,
    surgery: params.surgery ?? null,
    notes: params.notes ?? [],
    source: options.modelSource,
  });
  if (store.reusable("report", key, "report.json") && store.reusable("report", key, "report.html")) {
    yield { type: "stage", stage: "report", status: "reused" };
    return { report: store.readJson<PipelineReport>("report.json"), json, html };
  }
  yield { type: "stage", stage: "report", status: "start" };
  const model = await ctx.model();
  const { prompts, selection } = params;
  const count = (split: ContrastSplits["positive"]) => ({ train: split.train.length, validation: split.validation.length, test: split.test.length });
  const report = newReport({
    model: {
      source: options.modelSource,
      dir: options.modelDir,
      ...(options.source?.commit ? { revision: options.source.commit } : {}),
      modelType: model.modelType,
      numLayers: model.spec.numLayers,
      hiddenSize: model.spec.hiddenSize,
    },
    prompts: {
      positiveLabel: prompts.labels.positive,
      negativeLabel: prompts.labels.negative,
      positiveOrigin: prompts.origins.positive,
      negativeOrigin: prompts.origins.negative,
      positive: count(prompts.splits.positive),
      negative: count(prompts.splits.negative),
      seed: prompts.seed,
      chatTemplate: options.chatTemplate !== false,
      ...(options.system !== undefined ? { systemPrompt: options.system } : {}),
    },
    signature: { ...params.signature.signature, method: params.signature.method, tokens: params.signature.tokens },
    refusal: ctx.refusalContrast,
    arithmetic: { directions: await ctx.computeKey(ctx.directionSettings()), scoring: await ctx.computeKey(ctx.scoringSettings()) },
    geometry: layerGeometry(params.candidates),
    ...(selection.scores ? { scores: selection.scores, verdicts: selection.selection.verdicts } : {}),
    selection: { layer: selection.selection.layer, how: selection.how, notes: selection.selection.notes },
    ...(params.subspace ? { subspace: { ...params.subspace.subspace, steps: params.subspace.subspace.steps.map(({ direction: _d, candidates: _c, verdicts: _v, ...step }) => step) } } : {}),
    ...(params.search
      ? {
          search: {
            objectives: params.search.objectives,
            trials: params.search.trials.map((t) => ({ number: t.number, params: t.params, values: t.values, feasible: t.feasible, seconds: t.seconds, unchanged: t.payload?.unchanged ?? null })),
            pareto: params.search.pareto,
            chosen: params.search.chosen,
            singleLayerTrial: params.search.singleLayerTrial ?? null,
            timing: params.search.timing,
            alphas: params.search.edit.alphas,
          },
        }
      : {}),
    ...(params.surgery ? { surgery: params.surgery } : {}),
    ...(params.evaluation ? { evaluation: params.evaluation.evaluation } : {}),
    notes: [...prompts.notes, ...(params.notes ?? [])],
  });
  await store.invalidate("report");
  await replaceFileAtomically(json, serializeReport(report));
  await replaceFileAtomically(html, renderReportHtml(report));
  await store.markDone("report", key);
  yield { type: "stage", stage: "report", status: "done", detail: html };
  return { report, json, html };
}
