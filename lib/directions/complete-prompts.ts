/**
 * Greedy completions of many prompts through the native engine, in batches (one token per prompt per step with the
 * KV cache), so memory stays bounded whatever the prompt count. Where the weights do not fit the memory budget the
 * generation streams them, reading every layer once per new token for a batch of prompts; where not even that fits,
 * each completion is the single most likely next token from a streamed prompt pass, and the result says so.
 */
import type { ForwardAblation, ForwardAddition } from "../engine/run-forward.js";
import type { ForwardModel } from "../engine/load-forward-model.js";
import { chooseMode, defaultMemoryBudget, mlpChunkTokensFor, type ForwardMode } from "../engine/memory-budget.js";
import { runForward } from "../engine/run-forward.js";
import { forwardSettingsOf, type ForwardSettings } from "./mean-difference.js";

export interface CompletionsParams extends ForwardSettings {
  model: ForwardModel;
  prompts: number[][];
  maxNewTokens: number;
  ablation?: ForwardAblation;
  addition?: ForwardAddition;
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface Completions {
  /** Per prompt, the generated ids (an EOS id, when met, is the last one). */
  ids: number[][];
  /** "generation", or "first-token" when the model did not fit the budget for generation. */
  method: "generation" | "first-token";
  /** Last-position logits of each prompt's prompt pass, [prompts, vocab]. */
  firstLogits: Float32Array;
}

/**
 * How greedy generation of these prompts fits the budget: "resident", or where the weights do not fit, "streamed"
 * (each new token reads every layer again, one at a time, beside every layer's keys and values); undefined where
 * neither fits.
 */
export function generationMode(model: ForwardModel, prompts: number[][], maxNewTokens: number, budgetBytes: number): ForwardMode | undefined {
  const rows = prompts.reduce((sum, ids) => sum + ids.length, 0);
  const choice = chooseMode({
    model,
    shape: {
      rows,
      capturedRows: 0,
      logitsRows: prompts.length,
      maxNewTokens,
      prompts: prompts.length,
      longestPrompt: Math.max(...prompts.map((ids) => ids.length)),
      mlpChunkTokens: mlpChunkTokensFor(model, budgetBytes),
    },
    budgetBytes,
    needsHead: true,
  });
  return choice.estimatedBytes <= budgetBytes ? choice.mode : undefined;
}

export async function completePrompts(params: CompletionsParams): Promise<Completions> {
  const { model, prompts } = params;
  const vocab = model.spec.vocabSize;
  const budget = params.maxMemoryBytes ?? defaultMemoryBudget();
  let batchSize = params.batchSize ?? 64;
  const mode = params.maxNewTokens > 0 ? generationMode(model, prompts.slice(0, batchSize), params.maxNewTokens, budget) : undefined;
  const generate = mode !== undefined;
  // Streamed, a batch reads the whole model once per new token: as many prompts a batch as the budget holds.
  if (mode === "streamed" && params.batchSize === undefined) {
    while (batchSize < prompts.length && generationMode(model, prompts.slice(0, 2 * batchSize), params.maxNewTokens, budget) !== undefined) batchSize *= 2;
  }
  const ids: number[][] = [];
  const firstLogits = new Float32Array(prompts.length * vocab);
  for (let start = 0; start < prompts.length; start += batchSize) {
    const batch = prompts.slice(start, start + batchSize);
    const output = await runForward({
      model,
      prompts: batch,
      positions: "none",
      logits: "last",
      maxNewTokens: generate ? params.maxNewTokens : 0,
      ...forwardSettingsOf(params),
      mode: params.mode,
      maxMemoryBytes: budget,
      ablation: params.ablation,
      addition: params.addition,
    });
    firstLogits.set(output.logits!, start * vocab);
    if (generate) ids.push(...output.generated!);
    else {
      for (let row = 0; row < batch.length; row += 1) {
        let best = 0;
        for (let v = 1; v < vocab; v += 1) if (output.logits![row * vocab + v] > output.logits![row * vocab + best]) best = v;
        ids.push([best]);
      }
    }
    params.onProgress?.(Math.min(start + batchSize, prompts.length), prompts.length);
  }
  return { ids, method: generate ? "generation" : "first-token", firstLogits };
}
