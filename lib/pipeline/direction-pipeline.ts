/**
 * The stages that turn prompts into a selected, evaluated direction, each saving its artifact in a work dir so a
 * rerun resumes where the last one stopped (a stage is redone when its inputs, or an earlier stage, changed):
 *   prompts.json → directions.safetensors → selection.json → (surgery, done by the caller) → evaluation.json →
 *   report.json + report.html
 * Each stage reports progress through a callback; nothing here prints.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { loadForwardModel, type ForwardModel } from "../engine/load-forward-model.js";
import { loadPromptTokenizer, type PromptTokenizer } from "../tokenize/load-prompt-tokenizer.js";
import { BUILTIN_HARMFUL_PROMPTS, BUILTIN_HARMLESS_PROMPTS } from "../directions/builtin-prompts.js";
import { promptEncoder, type PromptEncoding } from "../directions/encode-prompts.js";
import { evaluateModel, type Evaluation } from "../directions/evaluate-model.js";
import { contrastMeans, type ForwardSettings } from "../directions/mean-difference.js";
import { readPromptSetOrDefault, type PromptSet } from "./prompt-sources.js";
import { refusalTokenIds, type RefusalTokens } from "../directions/refusal-tokens.js";
import { renderReportHtml } from "../directions/report-html.js";
import { layerGeometry, newReport, writeReportJson, type PipelineReport } from "../directions/report-json.js";
import { scoreCandidates, type CandidateScores } from "../directions/score-candidates.js";
import { candidateLayers, selectDirection, type Selection } from "../directions/select-direction.js";
import { splitContrastSets, type ContrastSplits, type SplitOptions } from "../directions/split-prompts.js";
import { readDirectionCandidates, writeDirectionCandidates, type DirectionCandidates } from "../direction-files/write-direction-candidates.js";

/**
 * heretic's defaults, the first 400 training rows of each (harmless_alpaca's train split holds some 25k): used when
 * no prompts are given and the Hub can be reached.
 */
export const DEFAULT_HARMFUL_DATASET = "mlabonne/harmful_behaviors:train[:400]";
export const DEFAULT_HARMLESS_DATASET = "mlabonne/harmless_alpaca:train[:400]";

export type StageName = "prompts" | "directions" | "selection" | "evaluation" | "report";

export interface DirectionPipelineOptions extends PromptEncoding, SplitOptions {
  modelDir: string;
  /** How the user named the model (a path or a Hub id), for the report. */
  modelSource: string;
  modelRevision?: string;
  workDir: string;
  /** Prompt sources (file or Hub dataset id); the defaults when absent. */
  positive?: string;
  negative?: string;
  /** Use the built-in sets when no source is given, without trying the Hub. */
  builtinPrompts?: boolean;
  labels?: { positive: string; negative: string };
  column?: string;
  /** Trailing tokens per prompt averaged into the candidates (default 1). */
  positions?: number;
  candidateLayers?: string;
  directionLayer?: number;
  maxKl?: number;
  maxNewTokens?: number;
  refusalMarkers?: string[];
  token?: string;
  offline?: boolean;
  forward?: ForwardSettings;
  onStage?: (stage: StageName, status: "start" | "resumed" | "done", detail?: string) => void;
  onProgress?: (stage: StageName, done: number, total: number) => void;
  onNote?: (message: string) => void;
}

export interface PromptsArtifact {
  key: string;
  labels: { positive: string; negative: string };
  origins: { positive: string; negative: string };
  seed: number;
  splits: ContrastSplits;
  notes: string[];
}

export interface SelectionArtifact {
  key: string;
  refusalTokens: RefusalTokens;
  scores?: CandidateScores;
  selection: Selection;
  how: "automatic" | "--direction-layer";
}

export interface EvaluationArtifact {
  key: string;
  evaluation: Evaluation;
}

function sha(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 32);
}

export class DirectionPipeline {
  readonly options: DirectionPipelineOptions;
  readonly labels: { positive: string; negative: string };
  private tokenizerCache?: PromptTokenizer;
  private modelCache?: ForwardModel;
  private stateCache?: Record<string, string>;

  constructor(options: DirectionPipelineOptions) {
    this.options = options;
    this.labels = options.labels ?? { positive: "harmful", negative: "harmless" };
    mkdirSync(options.workDir, { recursive: true });
  }

  path(name: string): string {
    return join(this.options.workDir, name);
  }

  get tokenizer(): PromptTokenizer {
    return (this.tokenizerCache ??= loadPromptTokenizer({ dir: this.options.modelDir }));
  }

  async model(): Promise<ForwardModel> {
    return (this.modelCache ??= await loadForwardModel(this.options.modelDir));
  }

  private state(): Record<string, string> {
    if (!this.stateCache) {
      const file = this.path("pipeline-state.json");
      try {
        this.stateCache = existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as Record<string, string>) : {};
      } catch {
        this.stateCache = {};
      }
    }
    return this.stateCache;
  }

  private markDone(stage: StageName, key: string): void {
    this.state()[stage] = key;
    writeFileSync(this.path("pipeline-state.json"), `${JSON.stringify(this.state(), null, 2)}\n`);
  }

  private reusable(stage: StageName, key: string, artifact: string): boolean {
    return this.state()[stage] === key && existsSync(this.path(artifact));
  }

  private readJson<T>(name: string): T {
    const file = this.path(name);
    try {
      return JSON.parse(readFileSync(file, "utf8")) as T;
    } catch (error) {
      throw new AbliterateError(ErrorCodes.IO, `cannot read the saved stage result: ${(error as Error).message}`, { file, cause: error });
    }
  }

  private async promptSet(source: string | undefined, dataset: string, builtin: readonly string[], label: string, notes: string[]): Promise<PromptSet> {
    const { options } = this;
    const set = await readPromptSetOrDefault({ source, defaultDataset: dataset, builtin, label, builtinOnly: options.builtinPrompts, column: options.column, token: options.token, offline: options.offline });
    if (set.note) notes.push(set.note);
    return { prompts: set.prompts, origin: set.origin };
  }

  async prompts(): Promise<PromptsArtifact> {
    const { options } = this;
    // The sets are read again on every run (files, or Hub datasets from the cache) and the key covers their text, so
    // an edited prompt file, or the Hub's datasets where an earlier offline run fell back to the built-in sets, is
    // never answered with the saved prompts of another run.
    options.onStage?.("prompts", "start");
    const notes: string[] = [];
    const positive = await this.promptSet(options.positive, DEFAULT_HARMFUL_DATASET, BUILTIN_HARMFUL_PROMPTS, this.labels.positive, notes);
    const negative = await this.promptSet(options.negative, DEFAULT_HARMLESS_DATASET, BUILTIN_HARMLESS_PROMPTS, this.labels.negative, notes);
    const key = sha({
      stage: "prompts",
      positive: positive.prompts,
      negative: negative.prompts,
      origins: [positive.origin, negative.origin],
      labels: this.labels,
      seed: options.seed ?? 0,
      split: [options.validationFraction, options.testFraction, options.maxTrain, options.maxValidation, options.maxTest],
    });
    if (this.reusable("prompts", key, "prompts.json")) {
      options.onStage?.("prompts", "resumed");
      return this.readJson<PromptsArtifact>("prompts.json");
    }
    const splits = splitContrastSets({ positive: positive.prompts, negative: negative.prompts, labels: this.labels, options: { ...options, seed: options.seed ?? 0 } });
    const artifact: PromptsArtifact = { key, labels: this.labels, origins: { positive: positive.origin, negative: negative.origin }, seed: options.seed ?? 0, splits, notes };
    writeFileSync(this.path("prompts.json"), `${JSON.stringify(artifact, null, 2)}\n`);
    this.markDone("prompts", key);
    for (const note of notes) options.onNote?.(note);
    options.onStage?.("prompts", "done", `${splits.positive.train.length + splits.positive.validation.length + splits.positive.test.length} ${this.labels.positive} and ${splits.negative.train.length + splits.negative.validation.length + splits.negative.test.length} ${this.labels.negative} prompts`);
    return artifact;
  }

  encoder(): (prompt: string) => number[] {
    return promptEncoder(this.tokenizer, { chatTemplate: this.options.chatTemplate, system: this.options.system });
  }

  private encodingKey(): unknown {
    return { template: this.options.chatTemplate !== false, system: this.options.system, positions: this.options.positions ?? 1 };
  }

  async directions(prompts: PromptsArtifact): Promise<DirectionCandidates> {
    const { options } = this;
    const key = sha({ stage: "directions", prompts: prompts.key, encoding: this.encodingKey(), model: options.modelDir, revision: options.modelRevision });
    if (this.reusable("directions", key, "directions.safetensors")) {
      options.onStage?.("directions", "resumed");
      return readDirectionCandidates(this.path("directions.safetensors"));
    }
    options.onStage?.("directions", "start");
    const encode = this.encoder();
    const positive = prompts.splits.positive.train.map(encode);
    const negative = prompts.splits.negative.train.map(encode);
    const means = await contrastMeans({
      model: await this.model(),
      positive,
      negative,
      positions: options.positions,
      ...options.forward,
      onProgress: (done, total) => options.onProgress?.("directions", done, total),
    });
    await writeDirectionCandidates({
      path: this.path("directions.safetensors"),
      means,
      metadata: {
        model: options.modelSource,
        modelRevision: options.modelRevision,
        positivePrompts: prompts.splits.positive.train,
        negativePrompts: prompts.splits.negative.train,
        positiveLabel: this.labels.positive,
        negativeLabel: this.labels.negative,
        positiveOrigin: prompts.origins.positive,
        negativeOrigin: prompts.origins.negative,
        positions: options.positions ?? 1,
        chatTemplate: options.chatTemplate !== false,
        systemPrompt: options.system,
      },
    });
    this.markDone("directions", key);
    options.onStage?.("directions", "done", `${means.directions.length} candidate directions`);
    return readDirectionCandidates(this.path("directions.safetensors"));
  }

  async select(prompts: PromptsArtifact, candidates: DirectionCandidates): Promise<SelectionArtifact> {
    const { options } = this;
    const key = sha({ stage: "selection", directions: this.state().directions, range: options.candidateLayers, layer: options.directionLayer, maxKl: options.maxKl });
    if (this.reusable("selection", key, "selection.json")) {
      options.onStage?.("selection", "resumed");
      return this.readJson<SelectionArtifact>("selection.json");
    }
    options.onStage?.("selection", "start");
    const model = await this.model();
    const refusalTokens = refusalTokenIds(this.tokenizer);
    let artifact: SelectionArtifact;
    if (options.directionLayer !== undefined) {
      const layer = options.directionLayer;
      if (!Number.isInteger(layer) || layer < 0 || layer >= candidates.directions.length) {
        throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--direction-layer ${layer} is outside the layer indices 0..${candidates.directions.length - 1}`);
      }
      artifact = { key, refusalTokens, selection: { layer, verdicts: [], notes: [] }, how: "--direction-layer" };
    } else {
      const encode = this.encoder();
      const scores = await scoreCandidates({
        model,
        directions: candidates.directions,
        layers: candidateLayers({ numLayers: model.spec.numLayers, range: options.candidateLayers }),
        harmful: prompts.splits.positive.validation.map(encode),
        harmless: prompts.splits.negative.validation.map(encode),
        refusalTokenIds: refusalTokens.ids,
        ...options.forward,
        onProgress: (done, total) => options.onProgress?.("selection", done, total),
      });
      writeFileSync(this.path("candidate-scores.json"), `${JSON.stringify(scores, null, 2)}\n`);
      const selection = selectDirection({ candidates: scores.candidates, maxKl: options.maxKl });
      artifact = { key, refusalTokens, scores, selection, how: "automatic" };
    }
    writeFileSync(this.path("selection.json"), `${JSON.stringify(artifact, null, 2)}\n`);
    this.markDone("selection", key);
    options.onStage?.("selection", "done", `layer ${artifact.selection.layer}`);
    return artifact;
  }

  /** `editedDir`: the surgery's output, loaded as it was written. */
  async evaluate(prompts: PromptsArtifact, selection: SelectionArtifact, editedDir: string, surgeryKey: string): Promise<EvaluationArtifact> {
    const { options } = this;
    const key = sha({ stage: "evaluation", selection: selection.key, surgeryKey, n: options.maxNewTokens, markers: options.refusalMarkers });
    if (this.reusable("evaluation", key, "evaluation.json")) {
      options.onStage?.("evaluation", "resumed");
      return this.readJson<EvaluationArtifact>("evaluation.json");
    }
    options.onStage?.("evaluation", "start");
    const encode = this.encoder();
    const evaluation = await evaluateModel({
      before: await this.model(),
      after: await loadForwardModel(editedDir),
      tokenizer: this.tokenizer,
      harmful: { prompts: prompts.splits.positive.test, ids: prompts.splits.positive.test.map(encode) },
      harmless: { prompts: prompts.splits.negative.test, ids: prompts.splits.negative.test.map(encode) },
      refusalTokenIds: selection.refusalTokens.ids,
      maxNewTokens: options.maxNewTokens,
      markers: options.refusalMarkers,
      ...options.forward,
      onProgress: (done, total) => options.onProgress?.("evaluation", done, total),
    });
    const artifact = { key, evaluation };
    writeFileSync(this.path("evaluation.json"), `${JSON.stringify(artifact, null, 2)}\n`);
    this.markDone("evaluation", key);
    if (evaluation.note) options.onNote?.(evaluation.note);
    options.onStage?.("evaluation", "done");
    return artifact;
  }

  async report(params: {
    prompts: PromptsArtifact;
    candidates: DirectionCandidates;
    selection: SelectionArtifact;
    evaluation?: Evaluation;
    surgery?: PipelineReport["surgery"];
    notes?: string[];
  }): Promise<{ report: PipelineReport; json: string; html: string }> {
    this.options.onStage?.("report", "start");
    const model = await this.model();
    const { prompts, selection } = params;
    const count = (split: ContrastSplits["positive"]) => ({ train: split.train.length, validation: split.validation.length, test: split.test.length });
    const report = newReport({
      model: {
        source: this.options.modelSource,
        dir: this.options.modelDir,
        ...(this.options.modelRevision ? { revision: this.options.modelRevision } : {}),
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
        chatTemplate: this.options.chatTemplate !== false,
        ...(this.options.system !== undefined ? { systemPrompt: this.options.system } : {}),
      },
      refusalTokens: selection.refusalTokens.tokens,
      geometry: layerGeometry(params.candidates),
      ...(selection.scores ? { scores: selection.scores, verdicts: selection.selection.verdicts } : {}),
      selection: { layer: selection.selection.layer, how: selection.how, notes: selection.selection.notes },
      ...(params.surgery ? { surgery: params.surgery } : {}),
      ...(params.evaluation ? { evaluation: params.evaluation } : {}),
      notes: [...prompts.notes, ...(params.notes ?? [])],
    });
    const json = this.path("report.json");
    const html = this.path("report.html");
    await writeReportJson(json, report);
    writeFileSync(html, renderReportHtml(report));
    this.options.onStage?.("report", "done", html);
    return { report, json, html };
  }
}
