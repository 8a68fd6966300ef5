/**
 * Stage 1, prompts: both sets read (files or Hub datasets, the defaults, or the built-in sets offline) and split
 * into seeded train / validation / test. The sets are read again on every run and the key covers their text, so an
 * edited prompt file, or the Hub's datasets where an earlier offline run fell back to the built-in sets, is never
 * answered with the saved prompts of another run.
 */
import { BUILTIN_HARMFUL_PROMPTS, BUILTIN_HARMLESS_PROMPTS } from "../directions/builtin-prompts.js";
import { splitContrastSets, type ContrastSplits } from "../directions/split-prompts.js";
import type { PipelineEvent } from "./events.js";
import type { PipelineContext } from "./pipeline-context.js";
import { readPromptSetOrDefault, type PromptSet } from "./prompt-sources.js";
import { stageKey } from "./stage-store.js";

/**
 * heretic's defaults, the first 400 training rows of each (harmless_alpaca's train split holds some 25k): used when
 * no prompts are given and the Hub can be reached.
 */
export const DEFAULT_HARMFUL_DATASET = "mlabonne/harmful_behaviors:train[:400]";
export const DEFAULT_HARMLESS_DATASET = "mlabonne/harmless_alpaca:train[:400]";

export interface PromptsArtifact {
  key: string;
  labels: { positive: string; negative: string };
  origins: { positive: string; negative: string };
  seed: number;
  splits: ContrastSplits;
  notes: string[];
}

const ARTIFACT = "prompts.json";

async function promptSet(ctx: PipelineContext, source: string | undefined, dataset: string, builtin: readonly string[], label: string, notes: string[]): Promise<PromptSet> {
  const { options } = ctx;
  const set = await readPromptSetOrDefault({ source, defaultDataset: dataset, builtin, label, builtinOnly: options.builtinPrompts, column: options.column, token: options.token, offline: options.offline });
  if (set.note) notes.push(set.note);
  return { prompts: set.prompts, origin: set.origin };
}

/** Both prompt sets as they are now, without splitting them (the direction command uses every prompt). */
export async function readContrastSets(ctx: PipelineContext): Promise<{ positive: PromptSet; negative: PromptSet; notes: string[] }> {
  const notes: string[] = [];
  const positive = await promptSet(ctx, ctx.options.positive, DEFAULT_HARMFUL_DATASET, BUILTIN_HARMFUL_PROMPTS, ctx.labels.positive, notes);
  const negative = await promptSet(ctx, ctx.options.negative, DEFAULT_HARMLESS_DATASET, BUILTIN_HARMLESS_PROMPTS, ctx.labels.negative, notes);
  return { positive, negative, notes };
}

export async function* promptsStage(ctx: PipelineContext): AsyncGenerator<PipelineEvent, PromptsArtifact> {
  const { options, store } = ctx;
  yield { type: "stage", stage: "prompts", status: "start" };
  const { positive, negative, notes } = await readContrastSets(ctx);
  for (const [source, set, label] of [[options.positive, positive, ctx.labels.positive], [options.negative, negative, ctx.labels.negative]] as const) {
    if (source === undefined) yield { type: "finding", stage: "prompts", message: `no --${label} prompts given: ${set.prompts.length} ${label} prompts from ${set.origin}` };
  }
  const seed = options.seed ?? 0;
  const key = stageKey({
    stage: "prompts",
    positive: positive.prompts,
    negative: negative.prompts,
    origins: [positive.origin, negative.origin],
    labels: ctx.labels,
    seed,
    split: [options.validationFraction, options.testFraction, options.maxTrain, options.maxValidation, options.maxTest],
  });
  if (store.reusable("prompts", key, ARTIFACT)) {
    yield { type: "stage", stage: "prompts", status: "reused" };
    return store.readJson<PromptsArtifact>(ARTIFACT);
  }
  const splits = splitContrastSets({ positive: positive.prompts, negative: negative.prompts, labels: ctx.labels, options: { ...options, seed } });
  const artifact: PromptsArtifact = { key, labels: ctx.labels, origins: { positive: positive.origin, negative: negative.origin }, seed, splits, notes };
  await store.invalidate("prompts");
  await store.writeJson(ARTIFACT, artifact);
  await store.markDone("prompts", key);
  for (const message of notes) yield { type: "note", message };
  const count = (s: ContrastSplits["positive"]) => s.train.length + s.validation.length + s.test.length;
  yield { type: "stage", stage: "prompts", status: "done", detail: `${count(splits.positive)} ${ctx.labels.positive} and ${count(splits.negative)} ${ctx.labels.negative} prompts` };
  return artifact;
}
