/**
 * The one command as a library: prompts → signature → directions → selection → surgery (apply + verify) →
 * evaluation → report,
 * as an async generator of typed stage events (lib/pipeline/events.ts) that returns the result. Every stage is
 * resumable from the work dir and keyed on every input that changes its output; results travel with the checkpoint
 * (abliteration.json, report.html, report.json), written into OUT.partial before its rename, or replaced atomically
 * in OUT when only they changed. Push stays with the caller.
 */
import { readFile } from "node:fs/promises";
import { resolve, sep } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { canonicalPath, refuseOutputOverlap } from "../fs/refuse-output-overlap.js";
import { damageWarning, describeEvaluation } from "../directions/describe-evaluation.js";
import type { Evaluation } from "../directions/evaluate-model.js";
import { releaseKeptWeights } from "../engine/release-kept-weights.js";
import type { Provenance } from "../provenance/provenance.js";
import { directionsStage } from "./directions-stage.js";
import { evaluationStage } from "./evaluation-stage.js";
import type { PipelineEvent } from "./events.js";
import { pipelineInputs, PipelineContext, type DirectionStageOptions } from "./pipeline-context.js";
import { promptsStage } from "./prompts-stage.js";
import { reportStage } from "./report-stage.js";
import { selectionStage } from "./selection-stage.js";
import { signatureStage } from "./signature-stage.js";
import { searchStage, type SearchArtifact, type SearchOptions } from "./search-stage.js";
import { subspaceStage, type SubspaceArtifact } from "./subspace-stage.js";
import { surgeryStage, writeResultsInto, type PipelineSurgeryOptions } from "./surgery-stage.js";

export interface RunPipelineParams extends DirectionStageOptions {
  outDir: string;
  /**
   * How the edit is chosen: "optimize" (default) searches direction and per-layer strengths for the best behaviour
   * vs damage trade-off; "single-layer" takes the best single candidate direction at full strength (Arditi et al.).
   * --direction-layer and --rank ≠ 1 imply "single-layer".
   */
  selectionMethod?: "optimize" | "single-layer";
  search?: SearchOptions;
  surgery?: PipelineSurgeryOptions;
  /** Replace an existing OUT made from other inputs. */
  force?: boolean;
  threads?: number;
}

export interface PipelineResult {
  outDir: string;
  layer: number;
  how: "automatic" | "--direction-layer";
  evaluation: Evaluation;
  /** Inside OUT. */
  reportHtml: string;
  reportJson: string;
  provenance: Provenance;
  /** The surgery output was an earlier run's, with identical inputs, verified again. */
  reusedSurgery: boolean;
  /** With --rank ≠ 1: the directions removed together, each with the behaviour left once it and the earlier ones are. */
  subspace?: SubspaceArtifact["subspace"];
  /** The search, when the edit was optimized: every trial, the Pareto front and the chosen point. */
  search?: Omit<SearchArtifact, "key">;
}

export async function* runPipeline(params: RunPipelineParams): AsyncGenerator<PipelineEvent, PipelineResult> {
  // The passes keep the model's layers between runs (PipelineContext's forward settings); whatever way the run ends,
  // the process does not go on holding them.
  try {
    return yield* pipelineStages(params);
  } finally {
    releaseKeptWeights();
  }
}

async function* pipelineStages(params: RunPipelineParams): AsyncGenerator<PipelineEvent, PipelineResult> {
  // OUT may not overlap anything the run reads: the model, the prompt files, the work dir (whose stage files would
  // land inside the model, or be deleted with it by --force). Checked before any forward pass.
  await refuseOutputOverlap({ output: params.outDir, inputs: pipelineInputs(params) });
  // The work dir may not exist yet, which the overlap check skips; it must never be inside OUT or hold it.
  const [work, out] = [await canonicalPath(params.workDir), await canonicalPath(params.outDir)];
  if (work === out || work.startsWith(out + sep) || out.startsWith(work + sep)) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--work-dir ${params.workDir} and --out ${params.outDir} overlap: stage files would be written into the model folder, or deleted with it; give them separate places`);
  }
  const ctx = new PipelineContext(params);
  const prompts = yield* promptsStage(ctx);
  const signature = yield* signatureStage(ctx, prompts);
  const candidates = yield* directionsStage(ctx, prompts);
  const selection = yield* selectionStage(ctx, prompts, signature, candidates);
  const layer = selection.selection.layer;
  const labels = prompts.labels;
  const wantsSearch = (params.selectionMethod ?? "optimize") === "optimize" && (params.rank ?? 1) === 1;
  if (selection.failed) {
    // The single-layer rule found nothing it may apply; only the search, free to edit part of the model, can go on.
    if (!wantsSearch) throw new AbliterateError(ErrorCodes.DIRECTION_DEGENERATE, selection.failed);
    yield { type: "note", message: "no single candidate direction passed the damage filters at full strength; the search looks for a partial edit that does" };
  } else if (selection.how === "automatic") {
    const chosen = selection.scores!.candidates.find((c) => c.layer === layer)!;
    const baseline = selection.scores!.baseline;
    yield {
      type: "finding",
      stage: "selection",
      message:
        `selected layer ${layer}: ${labels.positive} behaviour ${chosen.behaviour!.toFixed(3)} (unedited ${baseline.positiveBehaviour.toFixed(3)}), ` +
        `${labels.negative} completions unchanged ${(100 * chosen.unchanged!).toFixed(0)}%, KL ${chosen.kl!.toFixed(4)}`,
    };
    for (const message of selection.selection.notes) yield { type: "note", message };
  }

  const rank = params.rank ?? 1;
  const subspace = rank === 1 ? undefined : yield* subspaceStage(ctx, { prompts, signature, candidates, selection, rank });
  const optimize = wantsSearch && selection.how === "automatic";
  if ((params.selectionMethod ?? "optimize") === "optimize" && !optimize) {
    yield { type: "note", message: `no search: ${selection.how !== "automatic" ? "--direction-layer fixes the direction" : "--rank ≠ 1 removes a subspace at full strength"}; the single-layer rule applies` };
  }
  const searched = optimize ? yield* searchStage(ctx, { prompts, signature, candidates, selection, search: params.search ?? {} }) : undefined;
  let evaluation: Evaluation | undefined;
  // Surgery streams the shards with flat memory: the layers the scoring passes kept go first.
  releaseKeptWeights();
  const outcome = yield* surgeryStage(
    ctx,
    {
      directionFile: searched ? searched.edit.file : subspace ? subspace.file : ctx.store.path("directions.safetensors"),
      layer: searched || subspace ? undefined : layer,
      options: searched ? { ...params.surgery, alphas: searched.edit.alphas, perLayer: searched.edit.perLayer } : (params.surgery ?? {}),
      outDir: params.outDir,
      force: params.force,
      threads: params.threads,
      source: params.source,
      otherInputs: pipelineInputs(params).slice(1),
    },
    async function* (dir, record, surgeryKey) {
      const evaluated = yield* evaluationStage(ctx, { prompts, selection, signature, editedDir: dir, surgeryKey });
      evaluation = evaluated.evaluation;
      const summary = describeEvaluation(evaluation, labels, ctx.refusalContrast);
      yield {
        type: "finding",
        stage: "evaluation",
        message: `evaluation (${evaluation.positivePrompts} + ${evaluation.negativePrompts} held-out prompts, ${evaluation.method === "generation" ? `greedy ${evaluation.maxNewTokens} tokens` : "first token only"}): ${summary}`,
      };
      const warning = damageWarning(evaluation, labels);
      if (warning) yield { type: "note", message: warning };
      const reports = yield* reportStage(ctx, {
        prompts,
        candidates,
        signature,
        selection,
        subspace,
        search: searched,
        evaluation: evaluated,
        surgery: {
          out: params.outDir,
          tensorsChanged: record.tensors_changed.length,
          scale: record.scale,
          layers: record.layers,
          verified: record.verification.passed,
          maxUlpError: record.verification.max_ulp_error,
        },
      });
      const how = selection.how === "automatic" ? "selected automatically" : "given with --direction-layer";
      const what = searched
        ? `An edit chosen by a search of ${searched.trials.length} trials (trial #${searched.chosen.number}: ${searched.chosen.note}; α per writer in abliteration.json)`
        : subspace
        ? `A subspace of ${subspace.subspace.steps.length} orthogonal directions (layer indices ${subspace.subspace.steps.map((st) => st.layer).join(", ")}; the first ${how}, the others discovered with the earlier ones removed)`
        : `Direction at layer index ${layer} (${how})`;
      const note =
        `${what} from ${prompts.origins.positive} vs ${prompts.origins.negative}. ` +
        `Held-out evaluation (${evaluation.method === "generation" ? `greedy ${evaluation.maxNewTokens}-token completions` : "first tokens only"}, ` +
        `behaviour judged by the model's own learned openings): ${summary}.${warning ? ` ${warning}.` : ""} See report.html.`;
      const updated: Provenance = {
        ...record,
        notes: [...record.notes.filter((n) => !/^(Direction selected automatically|Direction at layer index|A subspace of|An edit chosen by a search)/.test(n)), note],
        selection: {
          layer,
          how: selection.how,
          scores: selection.scores?.candidates.find((c) => c.layer === layer) ?? null,
          ...(subspace ? { subspace: subspace.subspace.steps.map((st) => ({ layer: st.layer, behaviour: st.behaviour, unchanged: st.unchanged, kl: st.kl, induced: st.induced })) } : {}),
          ...(searched ? { search: { trials: searched.trials.length, chosen: searched.chosen, params: searched.edit.params, singleLayerTrial: searched.singleLayerTrial ?? null } } : {}),
        },
        evaluation: { ...evaluation, samples: undefined },
        pipeline: { ...record.pipeline!, evaluation_key: evaluated.key, report_key: ctx.store.keyOf("report") },
      };
      // In OUT.partial these are plain new files that apply fsyncs before the rename; in a finished OUT each one is
      // an atomic replacement, and only when its bytes changed.
      await writeResultsInto(dir, [
        { name: "report.json", data: await readFile(reports.json, "utf8") },
        { name: "report.html", data: await readFile(reports.html, "utf8") },
      ], updated);
      return updated;
    },
  );
  return {
    outDir: params.outDir,
    layer,
    how: selection.how,
    evaluation: evaluation!,
    reportHtml: resolve(params.outDir, "report.html"),
    reportJson: resolve(params.outDir, "report.json"),
    provenance: outcome.provenance,
    reusedSurgery: outcome.reused,
    ...(subspace ? { subspace: subspace.subspace } : {}),
    ...(searched ? { search: searched } : {}),
  };
}
