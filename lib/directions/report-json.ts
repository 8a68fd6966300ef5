/**
 * `report.json`: everything the run decided and measured, in one document (report.html is rendered from it).
 */
import { writeFile } from "node:fs/promises";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { TOOL_VERSION } from "../version.js";
import type { BehaviourSignature } from "./behaviour-signature.js";
import type { Evaluation } from "./evaluate-model.js";
import type { CandidateScores } from "./score-candidates.js";
import type { CandidateVerdict } from "./select-direction.js";

export interface LayerGeometry {
  /** cosine[i][j] between the directions of layer indices i and j (0 where a direction is zero). */
  cosine: number[][];
  norms: number[];
  /** Projection of the positive / negative mean on each layer's unit direction. */
  positiveProjection: number[];
  negativeProjection: number[];
}

export interface PipelineReport {
  tool: { name: "abliterate"; version: string };
  created: string;
  model: { source: string; dir: string; revision?: string; modelType: string; numLayers: number; hiddenSize: number };
  prompts: {
    positiveLabel: string;
    negativeLabel: string;
    positiveOrigin: string;
    negativeOrigin: string;
    positive: { train: number; validation: number; test: number };
    negative: { train: number; validation: number; test: number };
    seed: number;
    chatTemplate: boolean;
    systemPrompt?: string;
  };
  /** The learned behaviour signature (its openings, how well they separate the sets, sample completions). */
  signature: BehaviourSignature & { method: string; tokens: number };
  /** Whether the contrast is refusal (wording) — any other concept is "the behaviour". */
  refusal: boolean;
  /**
   * The forward table each group of passes ran ("avx512+bf16", "avx512", ...): the direction pass, and the signature,
   * scoring, search and evaluation passes (docs/precision.md, --compute).
   */
  arithmetic: { directions: string; scoring: string };
  geometry: LayerGeometry;
  scores?: CandidateScores;
  verdicts?: CandidateVerdict[];
  selection: { layer: number; how: "automatic" | "--direction-layer"; notes: string[] };
  /** When the edit was searched: every trial (parameters, both objectives), the Pareto front, the chosen point. */
  search?: {
    objectives: { name: string; definition?: string }[];
    trials: { number: number; params: Readonly<Record<string, number | string | boolean>>; values: (number | null)[]; feasible: boolean; seconds: number; unchanged: number | null }[];
    pareto: number[];
    chosen: { number: number; note: string; satisfied: boolean; policy: unknown };
    singleLayerTrial: number | null;
    timing: { firstTrialSeconds: number; totalSeconds: number; plannedTrials: number; stopped: string };
    alphas: { embed: number; attn: number[]; mlp: number[] };
  };
  /** With --rank ≠ 1: each direction's layer, the behaviour and damage left with it and the earlier ones removed, what it induces alone. */
  subspace?: {
    requested: number | "auto";
    stopped: string;
    baseline: { positiveBehaviour: number; negativeBehaviour: number };
    cosines: number[][];
    steps: { layer: number; norm: number; behaviour: number; unchanged: number; kl: number; induced: number }[];
  };
  surgery?: { out: string; tensorsChanged: number; scale: number; layers: string; verified: boolean; maxUlpError: number };
  evaluation?: Evaluation;
  notes: string[];
}

function unit(row: Float64Array): Float64Array | undefined {
  const norm = Math.hypot(...row);
  return norm > 0 ? row.map((v) => v / norm) : undefined;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < a.length; i += 1) sum += a[i] * b[i];
  return sum;
}

export function layerGeometry(params: { directions: Float64Array[]; positiveMean: Float64Array[]; negativeMean: Float64Array[] }): LayerGeometry {
  const units = params.directions.map(unit);
  return {
    cosine: units.map((a) => units.map((b) => (a && b ? dot(a, b) : 0))),
    norms: params.directions.map((row) => Math.hypot(...row)),
    positiveProjection: units.map((u, i) => (u ? dot(u, params.positiveMean[i]) : 0)),
    negativeProjection: units.map((u, i) => (u ? dot(u, params.negativeMean[i]) : 0)),
  };
}

export function newReport(fields: Omit<PipelineReport, "tool" | "created">): PipelineReport {
  return { tool: { name: "abliterate", version: TOOL_VERSION }, created: new Date().toISOString(), ...fields };
}

/** report.json's text: non-finite numbers (an unscored candidate) become null, as JSON has no NaN. */
export function serializeReport(report: PipelineReport): string {
  return `${JSON.stringify(report, (_, value) => (typeof value === "number" && !Number.isFinite(value) ? null : value), 2)}\n`;
}

export async function writeReportJson(path: string, report: PipelineReport): Promise<void> {
  try {
    await writeFile(path, serializeReport(report));
  } catch (error) {
    throw new AbliterateError(ErrorCodes.IO, `cannot write the report (${(error as NodeJS.ErrnoException).code ?? String(error)})`, { file: path, cause: error });
  }
}
