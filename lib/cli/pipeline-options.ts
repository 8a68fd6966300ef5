/** Flags of the direction pipeline, shared by `abliterate direction`, the one command and `demo`. */
import type { Argv } from "yargs";
import { parseMemorySize } from "../engine/memory-budget.js";
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { ForwardSettings } from "../directions/mean-difference.js";
import type { PickPolicy } from "../directions/search/pick-trial.js";
import type { DirectionStageOptions } from "../pipeline/pipeline-context.js";
import type { ModelSource } from "../provenance/provenance.js";
import { withNumberOptions } from "./number-option.js";
import { threadsFrom, withThreadsOption, type ThreadsArgs } from "./threads-option.js";

export interface PromptArgs extends ThreadsArgs {
  harmful?: string;
  harmless?: string;
  positive?: string;
  negative?: string;
  column?: string;
  system?: string;
  "chat-template"?: boolean;
  seed?: number;
  positions?: number;
  "max-memory"?: string;
  compute?: string;
}

export interface SelectionArgs {
  "candidate-layers"?: string;
  "work-dir"?: string;
  "max-new-tokens"?: number;
  "behaviour-markers"?: string;
  "signature-tokens"?: number;
  "max-kl"?: number;
  "min-unchanged"?: number;
  rank?: string;
  search?: string;
  trials?: number;
  "search-wave"?: number;
  "time-budget"?: string;
  pick?: string;
}

export function withPromptOptions<T>(yargs: Argv<T>) {
  return withNumberOptions(withThreadsOption(yargs), {
    seed: { integer: true, min: 0, max: 2 ** 31 - 1, describe: "seed of the train/validation/test split (default 0)" },
    positions: { integer: true, min: 1, max: 4096, describe: "trailing tokens per prompt averaged into the directions (default 1: the last)" },
  })
    .option("harmful", { type: "string", describe: "prompts to refuse: .txt, .json/.jsonl/.csv (with --column), .parquet, or a Hub dataset org/name[:split[start:end]] (default: mlabonne/harmful_behaviors:train[:400], offline: built-in)" })
    .option("harmless", { type: "string", describe: "ordinary prompts, same forms (default: mlabonne/harmless_alpaca:train[:400], offline: built-in)" })
    .option("positive", { type: "string", describe: "generic contrast: prompts showing the concept (alias of --harmful)" })
    .option("negative", { type: "string", describe: "generic contrast: prompts without it (alias of --harmless)" })
    .option("column", { type: "string", describe: "column / field holding the prompt in .json/.jsonl/.csv/.parquet and datasets" })
    .option("system", { type: "string", describe: "system prompt added to every prompt through the chat template" })
    .option("chat-template", { type: "boolean", describe: "wrap prompts with the tokenizer's chat template (default; --no-chat-template uses raw text)" })
    .option("max-memory", { type: "string", describe: "memory budget for forward passes, e.g. 8GB (default: 80% of available memory)" })
    .option("compute", {
      type: "string",
      choices: ["auto", "fp32", "bf16"],
      describe: "arithmetic of the forward passes: auto (default: directions in fp32; signature, scoring, search and evaluation in bf16 where the weights are BF16 and the CPU has AVX512_BF16), fp32 or bf16 for every pass",
    });
}

export function withSelectionOptions<T>(yargs: Argv<T>) {
  return withNumberOptions(yargs, {
    "max-new-tokens": { integer: true, min: 1, max: 4096, describe: "greedy tokens per prompt in the evaluation (default 32)" },
    "signature-tokens": { integer: true, min: 1, max: 4096, describe: "greedy tokens per train prompt the behaviour signature is learned from (default 24)" },
    "max-kl": { min: 0, describe: "selection wall: largest mean KL on the negative prompts' own completions (default 0.1)" },
    "min-unchanged": { min: 0, max: 1, describe: "selection wall: share of negative completions an edit must leave identical (default 0.9)" },
    trials: { integer: true, min: 1, max: 100_000, describe: "search trials in all, saved ones included (default: sized from the first trial's time and the time budget, at most 200)" },
    "search-wave": {
      integer: true,
      min: 1,
      max: 64,
      describe: "search trials suggested together and scored in one pass over the layers (default: 1 where the model fits --max-memory, up to 16 where its layers stream from storage; state it to make such a search repeat under another budget)",
    },
  })
    .option("candidate-layers", { type: "string", describe: "half-open range a:b of layer indices to score (default: every index 0..L)" })
    .option("work-dir", { type: "string", describe: "where each stage saves its results; a rerun resumes from them (default: OUT.work)" })
    .option("behaviour-markers", {
      alias: "refusal-markers",
      type: "string",
      describe: "comma list of phrases that mark a completion as showing the behaviour; overrides the signature learned from the two sets (default: learned from the model's completions)",
    })
    .option("search", { type: "string", choices: ["optimize", "single-layer"], describe: "how the edit is chosen: optimize (default) searches direction and per-layer strengths; single-layer takes the best single direction at full strength" })
    .option("time-budget", { type: "string", describe: "stop the search after this long, keeping the best so far, e.g. 30m, 2h, 90s (default: 60m for sizing)" })
    .option("pick", { type: "string", describe: "which point of the front: min-damage[:X] (default, X 0.05: the lowest KL with behaviour ≤ X), min-behaviour[:Y], knee, or a trial number" })
    .option("rank", {
      type: "string",
      describe: "directions to remove together: 1 (default), k, or auto (until one more no longer lowers the behaviour measurably); each further one is found with the earlier ones removed",
    });
}

/** `--time-budget`: a number with s, m or h (default minutes), in ms. */
export function parseDuration(text: string, option = "--time-budget"): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(s|m|h|min)?\s*$/i.exec(text);
  const value = match ? Number(match[1]) * ({ s: 1000, m: 60_000, min: 60_000, h: 3_600_000 } as Record<string, number>)[(match[2] ?? "m").toLowerCase()] : NaN;
  if (!(value > 0 && Number.isFinite(value))) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `${option} must be a duration such as 90s, 30m or 2h; got "${text}"`);
  return value;
}

/** `--pick`: min-damage[:X], min-behaviour[:Y], knee, or a trial number. */
export function parsePick(text: string): PickPolicy {
  const value = text.trim();
  if (/^\d+$/.test(value)) return { kind: "trial", number: Number(value) };
  const match = /^(min-damage|min-behaviour|min-behavior|knee|trial)(?::(\d+(?:\.\d+)?))?$/.exec(value);
  if (match) {
    const bound = match[2] === undefined ? undefined : Number(match[2]);
    if (match[1] === "knee" && bound === undefined) return { kind: "knee" };
    if (match[1] === "trial" && bound !== undefined && Number.isInteger(bound)) return { kind: "trial", number: bound };
    if (match[1] === "min-damage") return bound === undefined ? { kind: "min-damage" } : { kind: "min-damage", maxBehaviour: bound };
    if (match[1] !== "knee" && match[1] !== "trial") return bound === undefined ? { kind: "min-behaviour" } : { kind: "min-behaviour", maxDamage: bound };
  }
  throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--pick must be min-damage[:X], min-behaviour[:Y], knee or a trial number; got "${text}"`);
}

/** The search options of the one command. */
export function searchSettings(args: SelectionArgs): { selectionMethod?: "optimize" | "single-layer"; search: { trials?: number; timeBudgetMs?: number; pick?: PickPolicy; wave?: number } } {
  return {
    selectionMethod: args.search as "optimize" | "single-layer" | undefined,
    search: {
      trials: args.trials,
      timeBudgetMs: args["time-budget"] === undefined ? undefined : parseDuration(args["time-budget"]),
      pick: args.pick === undefined ? undefined : parsePick(args.pick),
      wave: args["search-wave"],
    },
  };
}

/** `--rank`: a whole number from 1 to 16, or "auto". */
export function rankFrom(args: { rank?: string }): number | "auto" | undefined {
  if (args.rank === undefined) return undefined;
  const text = args.rank.trim();
  if (text === "auto") return "auto";
  if (/^\d+$/.test(text) && Number(text) >= 1 && Number(text) <= 16) return Number(text);
  throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--rank must be a whole number from 1 to 16, or auto; got "${args.rank}"`);
}

export function contrastSources(args: PromptArgs): { positive?: string; negative?: string; labels: { positive: string; negative: string } } {
  if (args.harmful !== undefined && args.positive !== undefined) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "--harmful and --positive are the same option; give one");
  if (args.harmless !== undefined && args.negative !== undefined) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "--harmless and --negative are the same option; give one");
  const generic = args.positive !== undefined || args.negative !== undefined;
  return {
    positive: args.harmful ?? args.positive,
    negative: args.harmless ?? args.negative,
    labels: generic ? { positive: "positive", negative: "negative" } : { positive: "harmful", negative: "harmless" },
  };
}

export function forwardSettings(args: PromptArgs): ForwardSettings {
  return {
    maxMemoryBytes: args["max-memory"] !== undefined ? parseMemorySize(args["max-memory"]) : undefined,
    threads: threadsFrom(args),
    compute: args.compute as ForwardSettings["compute"],
  };
}

export function behaviourMarkers(args: SelectionArgs): string[] | undefined {
  if (args["behaviour-markers"] === undefined) return undefined;
  const markers = args["behaviour-markers"].split(",").map((m) => m.trim()).filter(Boolean);
  if (markers.length === 0) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "--behaviour-markers is empty");
  return markers;
}

/** The selection and evaluation settings of the direction stages (numbers are checked where they are declared). */
export function selectionSettings(args: SelectionArgs): { maxKl?: number; minUnchanged?: number; signatureTokens?: number; maxNewTokens?: number; behaviourMarkers?: string[]; rank?: number | "auto" } {
  return {
    maxKl: args["max-kl"],
    minUnchanged: args["min-unchanged"],
    signatureTokens: args["signature-tokens"],
    maxNewTokens: args["max-new-tokens"],
    behaviourMarkers: behaviourMarkers(args),
    rank: rankFrom(args),
  };
}

/** The direction stages' options every pipeline command passes the same way, from its flags and the resolved model. */
export function directionStageOptions(args: PromptArgs & SelectionArgs, model: { dir: string; source?: ModelSource }, modelName: string, token: string | undefined, workDir: string): DirectionStageOptions {
  const sources = contrastSources(args);
  return {
    modelDir: model.dir,
    modelSource: modelName,
    source: model.source,
    workDir,
    positive: sources.positive,
    negative: sources.negative,
    labels: sources.labels,
    column: args.column,
    system: args.system,
    chatTemplate: args["chat-template"],
    seed: args.seed,
    positions: args.positions,
    candidateLayers: args["candidate-layers"],
    token,
    forward: forwardSettings(args),
    ...selectionSettings(args),
  };
}
