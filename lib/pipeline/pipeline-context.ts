/**
 * What every stage of one run shares: the options, the work dir's stage store, the tokenizer and the unedited
 * forward model (loaded once), the prompt encoder and the input model's identity.
 */
import { join } from "node:path";
import type { OutputInput } from "../fs/refuse-output-overlap.js";
import type { ForwardSettings } from "../directions/mean-difference.js";
import { promptEncoder, type PromptEncoding } from "../directions/encode-prompts.js";
import type { SplitOptions } from "../directions/split-prompts.js";
import { loadForwardModel, type ForwardModel } from "../engine/load-forward-model.js";
import { forwardArithmeticFor } from "../engine/forward-arithmetic.js";
import type { ModelSource } from "../provenance/provenance.js";
import { loadPromptTokenizer, type PromptTokenizer } from "../tokenize/load-prompt-tokenizer.js";
import { modelIdentity, type ModelIdentity } from "./model-identity.js";
import { StageStore } from "./stage-store.js";

export interface DirectionStageOptions extends PromptEncoding, SplitOptions {
  modelDir: string;
  /** How the user named the model (a path or a Hub id), for the report. */
  modelSource: string;
  /** Where a Hub model came from (repo, revision, commit); part of the model's identity. */
  source?: ModelSource;
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
  /** Directions to remove: 1 (default), k, or "auto" (until one more no longer lowers the behaviour measurably). */
  rank?: number | "auto";
  maxKl?: number;
  /** Selection wall: the share of validation negative completions an edit must leave identical (default 0.9). */
  minUnchanged?: number;
  maxNewTokens?: number;
  /** Greedy tokens per train prompt the signature is learned from (default 24). */
  signatureTokens?: number;
  /** Phrases that decide which completions show the behaviour, overriding the learned split by prompt set. */
  behaviourMarkers?: string[];
  token?: string;
  offline?: boolean;
  /**
   * Memory, threads and arithmetic of the forward passes. `compute` absent or "auto": directions in fp32 (the
   * direction golden's cos ≥ 0.9999 holds there, not in bf16), and the passes that learn the signature, score,
   * search and evaluate edits in bf16 where the weights are BF16 and the CPU has AVX512_BF16. "fp32" or "bf16": every
   * pass in that arithmetic.
   */
  forward?: ForwardSettings;
}

/** What a run reads, which its outputs may never equal, contain or lie inside (lib/fs/refuse-output-overlap.ts). */
export function pipelineInputs(options: DirectionStageOptions): OutputInput[] {
  const inputs: OutputInput[] = [{ path: options.modelDir, label: "the model" }, { path: options.workDir, label: "the work dir" }];
  if (options.positive !== undefined) inputs.push({ path: options.positive, label: `the ${options.labels?.positive ?? "harmful"} prompts` });
  if (options.negative !== undefined) inputs.push({ path: options.negative, label: `the ${options.labels?.negative ?? "harmless"} prompts` });
  return inputs;
}

export class PipelineContext {
  readonly options: DirectionStageOptions;
  readonly labels: { positive: string; negative: string };
  readonly store: StageStore;
  private tokenizerCache?: PromptTokenizer;
  private modelCache?: Promise<ForwardModel>;
  private identityCache?: Promise<ModelIdentity>;

  /**
   * Whether the contrast is refusal (the default harmful/harmless labels): the refusal phrase lists then serve as a
   * prior for the signature and as the evaluation's second opinion. Any other concept gets neither.
   */
  get refusalContrast(): boolean {
    return this.labels.positive === "harmful";
  }

  constructor(options: DirectionStageOptions) {
    this.options = options;
    this.labels = options.labels ?? { positive: "harmful", negative: "harmless" };
    this.store = new StageStore(options.workDir);
  }

  get tokenizer(): PromptTokenizer {
    return (this.tokenizerCache ??= loadPromptTokenizer({ dir: this.options.modelDir }));
  }

  model(): Promise<ForwardModel> {
    return (this.modelCache ??= loadForwardModel(this.options.modelDir));
  }

  /** The input model's identity (file digests, Hub revision), computed once per run. */
  identity(): Promise<ModelIdentity> {
    return (this.identityCache ??= modelIdentity({ modelDir: this.options.modelDir, source: this.options.source, cacheFile: join(this.options.workDir, "model-digests.json") }));
  }

  encoder(): (prompt: string) => number[] {
    return promptEncoder(this.tokenizer, { chatTemplate: this.options.chatTemplate, system: this.options.system });
  }

  /**
   * The forward settings of the direction pass: fp32 unless every pass was asked to run in bf16. Like every pass of
   * the pipeline, it keeps the layers it reads for the next pass (runForward's keepWeights; runPipeline frees them).
   */
  directionSettings(): ForwardSettings {
    return { keepWeights: true, ...this.options.forward, compute: this.options.forward?.compute === "bf16" ? "bf16" : "fp32" };
  }

  /** The forward settings of the passes that learn the signature, score, search and evaluate: "auto" by default. */
  scoringSettings(): ForwardSettings {
    return { keepWeights: true, ...this.options.forward, compute: this.options.forward?.compute ?? "auto" };
  }

  /**
   * The arithmetic these settings perform on this model on this machine ("avx512+bf16", "avx512", ...), for the
   * keys of the directions and signature stages: a work dir filled in another arithmetic (other --compute, a CPU
   * without AVX512_BF16, another ABLITERATE_KERNELS) is computed again, not reused; one filled in the same
   * arithmetic under another name (auto and fp32 on a model without BF16 matrices) is reused. Every later stage
   * that runs the model scores in the signature's arithmetic and keys on the signature's key (the subspace on the
   * directions' too).
   */
  async computeKey(settings: ForwardSettings): Promise<string> {
    return forwardArithmeticFor(settings.compute, await this.model());
  }

  /** Everything about how prompts become token ids, for the keys of the stages that run the model. */
  encodingKey(): unknown {
    return { template: this.options.chatTemplate !== false, system: this.options.system ?? null, positions: this.options.positions ?? 1 };
  }
}
