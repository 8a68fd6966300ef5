/**
 * Applies another point of a finished search without searching again (`abliterate apply-trial MODEL WORKDIR N`): the
 * trial's parameters from WORKDIR's search.json, made concrete with the same candidates (WORKDIR's
 * directions.safetensors), written as a direction file beside them, and applied by the streaming surgery with every
 * writer's own α, then verified like any apply.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { readDirectionCandidates } from "../direction-files/write-direction-candidates.js";
import { concreteEdit, editSearchSetup } from "../directions/search-edit.js";
import { loadForwardModel } from "../engine/load-forward-model.js";
import type { ModelSource } from "../provenance/provenance.js";
import { applyModel, type ApplyReport } from "../surgery/apply-model.js";
import type { SurgeryEvent } from "../surgery/events.js";
import type { SurgeryParams } from "../surgery/prepare-surgery.js";
import { writeEditFile, type SearchArtifact } from "./search-stage.js";

export interface ApplyTrialParams {
  modelDir: string;
  workDir: string;
  trial: number;
  outDir: string;
  force?: boolean;
  threads?: number;
  source?: ModelSource;
  /** Further surgery options (--targets, --layers, --scale multiply or narrow the trial's profile). */
  surgery?: Omit<SurgeryParams, "direction" | "directionLayer" | "alphas" | "perLayer">;
}

export async function* applyTrial(params: ApplyTrialParams): AsyncGenerator<SurgeryEvent, ApplyReport & { trial: SearchArtifact["trials"][number] }> {
  const searchFile = join(params.workDir, "search.json");
  if (!existsSync(searchFile)) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "has no search.json: run the one command with the default search and --work-dir first", { file: params.workDir });
  const search = JSON.parse(readFileSync(searchFile, "utf8")) as SearchArtifact;
  const trial = search.trials.find((t) => t.number === params.trial);
  if (!trial) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `the search has no trial ${params.trial} (trials 0..${search.trials.length - 1})`, { file: searchFile });
  if (!trial.feasible) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `trial ${params.trial} is infeasible (it changed too many negative completions); pick one from the front: ${search.pareto.join(", ")}`, { file: searchFile });
  const candidates = await readDirectionCandidates(join(params.workDir, "directions.safetensors"));
  const model = await loadForwardModel(params.modelDir);
  if (candidates.directions.length !== model.spec.numLayers + 1 || candidates.directions[0].length !== model.spec.hiddenSize) {
    throw new AbliterateError(ErrorCodes.DIRECTION_DIMENSION, `the work dir's candidates are [${candidates.directions.length}, ${candidates.directions[0].length}], this model needs [${model.spec.numLayers + 1}, ${model.spec.hiddenSize}]: it was made for another model`, { file: params.workDir });
  }
  const setup = editSearchSetup({ candidates, numLayers: model.spec.numLayers });
  const concrete = concreteEdit({ point: trial.params, setup, candidates });
  const file = join(params.workDir, `trial-${trial.number}-direction.safetensors`);
  const perLayer = await writeEditFile(file, concrete, model.spec.hiddenSize, trial.params);
  const report = yield* applyModel({
    ...params.surgery,
    direction: file,
    perLayer,
    alphas: concrete.alphas,
    modelDir: params.modelDir,
    outDir: params.outDir,
    force: params.force,
    threads: params.threads,
    source: params.source,
  });
  return { ...report, trial };
}
