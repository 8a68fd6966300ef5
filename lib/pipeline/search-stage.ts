/**
 * Stage 4 (default selection), search: a multi-objective TPE search (lib/directions/search/) over the edit — a
 * fractional direction index, one direction or each layer its own, the projected variant, and a strength profile per
 * component (embedding, attention, MLP) — co-minimizing the behaviour (the learned signature's probability on the
 * validation positive prompts) and the damage (KL on the validation negative prompts' own completions), with the
 * share of negative completions left identical as a constraint. Trials go through the engine's hooks (no weights
 * written), are appended to the work dir as they finish, and a rerun continues. The single-layer rule's choice is
 * trial 0, so the front is never worse than it. The chosen point (--pick) is written as a direction file plus the α of
 * every writer, for the surgery to apply exactly.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { DirectionCandidates } from "../direction-files/write-direction-candidates.js";
import { writeDirectionFile } from "../direction-files/write-direction-file.js";
import { createEditScorer } from "../directions/edit-scorer.js";
import { isMissingDirection, scoreTrials, type TrialScores } from "../directions/score-trials.js";
import { concreteEdit, editSearchSetup, isNullEdit, singleLayerPoint, type ConcreteEdit, type EditSearchSetup } from "../directions/search-edit.js";
import { pick, type PickPolicy } from "../directions/search/pick-trial.js";
import { paretoFront } from "../directions/search/pareto.js";
import { runSearch } from "../directions/search/run-search.js";
import type { Params } from "../directions/search/search-space.js";
import { sizeTrialCount } from "../directions/search/size-trial-count.js";
import { openTrialStore } from "../directions/search/trial-store.js";
import { formatValue, type Objective, type Trial } from "../directions/search/trial.js";
import { SELECTION_DEFAULTS } from "../directions/select-direction.js";
import type { PipelineEvent } from "./events.js";
import type { PipelineContext } from "./pipeline-context.js";
import type { PromptsArtifact } from "./prompts-stage.js";
import type { SelectionArtifact } from "./selection-stage.js";
import type { SignatureArtifact } from "./signature-stage.js";
import { stageKey } from "./stage-store.js";

export interface SearchOptions {
  /** Total trials (resumed ones included); default sized from the first trial's time and the budget. */
  trials?: number;
  /** Wall-clock budget of this run, ms (default 60 min for sizing; a stated budget also stops the search). */
  timeBudgetMs?: number;
  pick?: PickPolicy;
  seed?: number;
  /**
   * Trials suggested together and scored in one wave (run-search.ts). Default: the scorer's wave size, 1 where the
   * model's passes run resident (a wave would save no reading), more where they stream the layers from storage.
   */
  wave?: number;
}

export interface SearchArtifact {
  key: string;
  trials: Trial<TrialScores>[];
  /** Trial numbers on the Pareto front (feasible, non-dominated). */
  pareto: number[];
  chosen: { number: number; note: string; satisfied: boolean; policy: PickPolicy };
  /** Trial 0: the single-layer rule's edit, for comparison. */
  singleLayerTrial?: number;
  timing: { firstTrialSeconds: number; totalSeconds: number; plannedTrials: number; stopped: string; /** Trials a wave suggested and scored together. */ wave: number };
  objectives: Objective[];
  /** The chosen edit, ready for the surgery. */
  edit: { file: string; perLayer: boolean; alphas: { embed: number; attn: number[]; mlp: number[] }; params: Params };
}

const ARTIFACT = "search.json";
const EDIT_FILE = "search-direction.safetensors";
export const DEFAULT_SEARCH_BUDGET_MS = 60 * 60 * 1000;
/** Below this many trials TPE is still sampling at random (its startup); a sized count never goes under it. */
const MIN_SIZED_TRIALS = 40;

export function objectivesFor(ctx: PipelineContext, klTokens: number): Objective[] {
  return [
    { name: "behaviour", definition: `mean probability of the learned signature on the validation ${ctx.labels.positive} prompts, teacher-forced` },
    { name: "damage", definition: `mean per-token KL(unedited ‖ edited) over the first ${klTokens} tokens of the validation ${ctx.labels.negative} prompts' own completions` },
  ];
}

/** Writes the point's direction(s) for the surgery: `direction` [d], or `directions` [L+1, d] with --per-layer. */
export async function writeEditFile(path: string, concrete: ConcreteEdit, dimension: number, params: Params): Promise<boolean> {
  const perLayer = concrete.streamDirections !== undefined;
  await writeDirectionFile({
    path,
    tensor: perLayer ? "directions" : "direction",
    rows: perLayer ? concrete.streamDirections! : [concrete.direction!],
    dimension,
    metadata: { format: "abliterate-search-edit", params: JSON.stringify(params) },
  });
  return perLayer;
}

/**
 * The seconds of the passes a trial skipped that a feasible one runs: the behaviour pass of a trial its damage ruled
 * out, both passes of one with no edit to score (a missing direction, a null edit); each priced at the unedited
 * model's pass of that set.
 */
export function skippedPassSeconds(trial: Pick<Trial<TrialScores>, "payload">, passSeconds: { positive: number; negative: number }): number {
  if (!trial.payload) return passSeconds.positive + passSeconds.negative;
  return trial.payload.behaviour === null ? passSeconds.positive : 0;
}

export async function* searchStage(
  ctx: PipelineContext,
  params: { prompts: PromptsArtifact; signature: SignatureArtifact; candidates: DirectionCandidates; selection: SelectionArtifact; search: SearchOptions },
): AsyncGenerator<PipelineEvent, SearchArtifact> {
  const { options, store } = ctx;
  const { prompts, signature, candidates, selection, search } = params;
  const minUnchanged = options.minUnchanged ?? SELECTION_DEFAULTS.minUnchanged;
  const seed = search.seed ?? options.seed ?? 0;
  const policy: PickPolicy = search.pick ?? { kind: "min-damage" };
  const inputKey = stageKey({ stage: "search", signature: signature.key, directions: store.keyOf("directions") ?? null, prompts: prompts.key, minUnchanged });
  const key = stageKey({ inputKey, trials: search.trials ?? null, budget: search.timeBudgetMs ?? null, policy, seed, singleLayer: selection.key, nullEdits: "excluded", wave: search.wave ?? null });
  if (store.reusable("search", key, ARTIFACT) && store.reusable("search", key, EDIT_FILE)) {
    yield { type: "stage", stage: "search", status: "reused" };
    return store.readJson<SearchArtifact>(ARTIFACT);
  }
  yield { type: "stage", stage: "search", status: "start" };
  const model = await ctx.model();
  const encode = ctx.encoder();
  const setup: EditSearchSetup = editSearchSetup({ candidates, numLayers: model.spec.numLayers });
  const scorer = await createEditScorer({
    model,
    positive: prompts.splits.positive.validation.map(encode),
    negative: prompts.splits.negative.validation.map(encode),
    signature: signature.signature,
    negativeCompletions: signature.negativeValidation,
    // Trials score only these two sets (never the induced one).
    cacheStreams: ["positive", "negative"],
    ...ctx.scoringSettings(),
  });
  const objectives = objectivesFor(ctx, scorer.settings.klTokens);
  const opened = await openTrialStore<TrialScores>({ dir: store.dir, space: setup.space, objectives, inputKey, seed });
  let trialStore;
  if (opened.ok) trialStore = opened.store;
  else {
    yield { type: "note", message: `the saved search trials were made from other inputs (${opened.differs.join(", ")}); starting a new search` };
    const fresh = await openTrialStore<TrialScores>({ dir: store.dir, space: setup.space, objectives, inputKey, seed, fresh: true });
    if (!fresh.ok) throw new AbliterateError(ErrorCodes.IO, fresh.message, { file: fresh.path });
    trialStore = fresh.store;
  }
  try {
    const trialScoring = { scorer, setup, candidates, minUnchanged };
    const evaluateWave = (points: Params[]) => scoreTrials(trialScoring, points);
    const evaluate = async (point: Params) => (await evaluateWave([point]))[0];
    const wave = search.wave ?? scorer.waveSize;
    const started = performance.now();
    let singleLayerTrial: number | undefined;
    // Trial 0 is the single-layer rule's edit (or, when that rule found none, the lowest-behaviour candidate's):
    // measured here (its time sizes the search) and stored like any trial.
    if (trialStore.trials.length === 0) {
      const point = singleLayerPoint(setup, selection.selection.layer);
      const began = performance.now();
      const evaluation = await evaluate(point);
      const trial: Trial<TrialScores> = { number: 0, params: point, values: [...evaluation.values], violation: evaluation.violation ?? 0, feasible: !((evaluation.violation ?? 0) > 0), seconds: (performance.now() - began) / 1000, ...(evaluation.payload ? { payload: evaluation.payload } : {}) };
      await trialStore.append(trial);
      if (!selection.failed) singleLayerTrial = 0;
    } else {
      const first = trialStore.trials[0];
      if (!selection.failed && first && JSON.stringify(first.params) === JSON.stringify(singleLayerPoint(setup, selection.selection.layer))) singleLayerTrial = 0;
      yield { type: "note", message: `search: continuing from ${trialStore.trials.length} saved trial(s)` };
    }
    const firstTrialSeconds = trialStore.trials[0].seconds;
    if (wave > 1) yield { type: "note", message: `search: trials go in waves of ${wave}, each suggested from the trials before its wave${search.wave === undefined ? " (the model's layers stream from storage: a wave reads them once for all its trials)" : ""}` };
    let best = "";
    let stopped = "trials";
    let total = search.trials;
    const searchTo = async function* (trials: number, timeBudgetMs: number | undefined): AsyncGenerator<PipelineEvent, void> {
      for await (const event of runSearch<TrialScores>({ space: setup.space, objectives, evaluate, evaluateWave, waveSize: wave, seed, trials, timeBudgetMs, store: trialStore, pickPolicy: policy })) {
        if (event.type === "trial-finished") {
          yield { type: "progress", stage: "search", done: event.trial.number + 1, total: total ?? trials };
          const chosen = event.best.trial;
          const line = chosen ? `#${chosen.number}: behaviour ${formatValue(chosen.values[0], 3)}, KL ${formatValue(chosen.values[1], 4)}` : "none feasible yet";
          if (line !== best) {
            best = line;
            // Before the sizing (the rest of trial 0's wave) the count is not known yet: "trial 2/4" would read as the plan.
            const of = total === undefined ? " (first wave, before the sizing)" : `/${total}`;
            yield { type: "finding", stage: "search", message: `search: trial ${event.trial.number + 1}${of}, best so far ${line}` };
          }
        } else if (event.type === "stopped") stopped = event.reason;
      }
    };
    const searchStarted = performance.now();
    // What is left of a stated budget; undefined: none stated, 0: spent.
    const budgetLeft = () => (search.timeBudgetMs === undefined ? undefined : Math.max(0, search.timeBudgetMs - (performance.now() - searchStarted)));
    if (total === undefined) {
      // Trial 0 ran alone. In waves, the rest of its wave (one pass for all of them) prices the trials after it:
      // trial 0's time would plan several times fewer than fit.
      if (wave > 1 && trialStore.trials.length < wave) yield* searchTo(wave, search.timeBudgetMs);
      const firstWave = wave > 1 && trialStore.trials.length >= wave ? trialStore.trials.slice(1, wave) : undefined;
      const sizing = sizeTrialCount({
        firstTrialMs: Math.max(1, firstTrialSeconds * 1000),
        skippedPassesMs: 1000 * skippedPassSeconds(trialStore.trials[0], scorer.passSeconds),
        ...(firstWave ? { firstWave: { trials: firstWave.length, waveMs: Math.max(1, 1000 * firstWave.reduce((sum, t) => sum + t.seconds, 0)), skippedPassesMs: 1000 * Math.min(...firstWave.map((t) => skippedPassSeconds(t, scorer.passSeconds))) } } : {}),
        timeBudgetMs: search.timeBudgetMs ?? DEFAULT_SEARCH_BUDGET_MS,
        minTrials: MIN_SIZED_TRIALS,
      });
      total = Math.max(sizing.trials, trialStore.trials.length);
      yield { type: "note", message: `search: ${sizing.note}` };
    }
    const planned = total;
    const left = budgetLeft();
    if (stopped === "trials" && left !== 0) yield* searchTo(planned, left);
    else if (left === 0) stopped = "time-budget";
    const trials = [...trialStore.trials];
    // Trials saved before null edits were marked infeasible are passed over too.
    const isNullPoint = (point: Params) => {
      try {
        return isNullEdit(concreteEdit({ point, setup, candidates }).alphas);
      } catch (error) {
        // A missing direction: infeasible already, as evaluate() scored it.
        if (isMissingDirection(error)) return false;
        throw error;
      }
    };
    const picked = pick(trials.filter((t) => !isNullPoint(t.params)), policy);
    if (!picked.trial) {
      throw new AbliterateError(
        ErrorCodes.DIRECTION_DEGENERATE,
        `no search trial left at least ${(100 * minUnchanged).toFixed(0)}% of the negative completions unchanged (${trials.length} trials); try more trials, a looser --min-unchanged, or --search single-layer`,
      );
    }
    const concrete = concreteEdit({ point: picked.trial.params, setup, candidates });
    const perLayer = await writeEditFile(store.path(EDIT_FILE), concrete, model.spec.hiddenSize, picked.trial.params);
    const artifact: SearchArtifact = {
      key,
      trials,
      pareto: paretoFront(trials).map((t) => t.number),
      chosen: { number: picked.trial.number, note: picked.note, satisfied: picked.satisfied, policy },
      ...(singleLayerTrial !== undefined ? { singleLayerTrial } : {}),
      timing: { firstTrialSeconds, totalSeconds: (performance.now() - started) / 1000, plannedTrials: planned, stopped, wave },
      objectives,
      edit: { file: store.path(EDIT_FILE), perLayer, alphas: concrete.alphas, params: picked.trial.params },
    };
    await store.invalidate("search");
    await store.writeJson(ARTIFACT, artifact);
    await store.markDone("search", key);
    const c = picked.trial;
    yield { type: "stage", stage: "search", status: "done", detail: `${trials.length} trials; chosen #${c.number} (${picked.note}): behaviour ${formatValue(c.values[0], 3)}, KL ${formatValue(c.values[1], 4)}, unchanged ${((c.payload?.unchanged ?? 0) * 100).toFixed(0)}%` };
    return artifact;
  } finally {
    await trialStore.close();
  }
}
