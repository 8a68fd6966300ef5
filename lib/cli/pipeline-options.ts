/** Flags of the direction pipeline, shared by `abliterate direction`, the one command and `demo`. */
import type { Argv } from "yargs";
import { parseMemorySize } from "../engine/memory-budget.js";
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { ForwardSettings } from "../directions/mean-difference.js";
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
}

export function withPromptOptions<T>(yargs: Argv<T>) {
  return withThreadsOption(yargs)
    .option("harmful", { type: "string", describe: "prompts to refuse: .txt, .json/.jsonl/.csv (with --column), .parquet, or a Hub dataset org/name[:split[start:end]] (default: mlabonne/harmful_behaviors:train[:400], offline: built-in)" })
    .option("harmless", { type: "string", describe: "ordinary prompts, same forms (default: mlabonne/harmless_alpaca:train[:400], offline: built-in)" })
    .option("positive", { type: "string", describe: "generic contrast: prompts showing the concept (alias of --harmful)" })
    .option("negative", { type: "string", describe: "generic contrast: prompts without it (alias of --harmless)" })
    .option("column", { type: "string", describe: "column / field holding the prompt in .json/.jsonl/.csv/.parquet and datasets" })
    .option("system", { type: "string", describe: "system prompt added to every prompt through the chat template" })
    .option("chat-template", { type: "boolean", describe: "wrap prompts with the tokenizer's chat template (default; --no-chat-template uses raw text)" })
    .option("seed", { type: "number", describe: "seed of the train/validation/test split (default 0)" })
    .option("positions", { type: "number", describe: "trailing tokens per prompt averaged into the directions (default 1: the last)" })
    .option("max-memory", { type: "string", describe: "memory budget for forward passes, e.g. 8GB (default: 80% of available memory)" });
}

export function withSelectionOptions<T>(yargs: Argv<T>) {
  return yargs
    .option("candidate-layers", { type: "string", describe: "half-open range a:b of layer indices to score (default: every index 0..L)" })
    .option("work-dir", { type: "string", describe: "where each stage saves its results; a rerun resumes from them (default: OUT.work)" })
    .option("max-new-tokens", { type: "number", describe: "greedy tokens per prompt in the evaluation (default 32)" })
    .option("signature-tokens", { type: "number", describe: "greedy tokens per train prompt the behaviour signature is learned from (default 24)" })
    .option("behaviour-markers", {
      alias: "refusal-markers",
      type: "string",
      describe: "comma list of phrases that mark a completion as showing the behaviour; overrides the signature learned from the two sets (default: learned from the model's completions)",
    })
    .option("max-kl", { type: "number", describe: "selection wall: largest mean KL on the negative prompts' own completions (default 0.1)" })
    .option("min-unchanged", { type: "number", describe: "selection wall: share of negative completions an edit must leave identical (default 0.9)" })
    .option("rank", {
      type: "string",
      describe: "directions to remove together: 1 (default), k, or auto (until one more no longer lowers the behaviour measurably); each further one is found with the earlier ones removed",
    });
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
  return { maxMemoryBytes: args["max-memory"] !== undefined ? parseMemorySize(args["max-memory"]) : undefined, threads: threadsFrom(args) };
}

export function behaviourMarkers(args: SelectionArgs): string[] | undefined {
  if (args["behaviour-markers"] === undefined) return undefined;
  const markers = args["behaviour-markers"].split(",").map((m) => m.trim()).filter(Boolean);
  if (markers.length === 0) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "--behaviour-markers is empty");
  return markers;
}

/** The selection and evaluation settings of the direction stages, checked. */
export function selectionSettings(args: SelectionArgs): { maxKl?: number; minUnchanged?: number; signatureTokens?: number; maxNewTokens?: number; behaviourMarkers?: string[]; rank?: number | "auto" } {
  const fraction = (name: "max-kl" | "min-unchanged", max: number) => {
    const value = args[name];
    if (value !== undefined && !(Number.isFinite(value) && value >= 0 && value <= max)) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--${name} must be a number from 0 to ${max}; got ${value}`);
    return value;
  };
  const count = (name: "signature-tokens" | "max-new-tokens", min: number) => {
    const value = args[name];
    if (value !== undefined && !(Number.isInteger(value) && value >= min && value <= 4096)) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--${name} must be a whole number from ${min} to 4096; got ${value}`);
    return value;
  };
  return {
    maxKl: fraction("max-kl", Number.MAX_VALUE),
    minUnchanged: fraction("min-unchanged", 1),
    signatureTokens: count("signature-tokens", 1),
    maxNewTokens: count("max-new-tokens", 1),
    behaviourMarkers: behaviourMarkers(args),
    rank: rankFrom(args),
  };
}
