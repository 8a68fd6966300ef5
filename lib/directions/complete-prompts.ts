/**
 * Greedy completions of many prompts through the native engine, in batches (one token per prompt per step with the
 * KV cache), so memory stays bounded whatever the prompt count. Generation needs the model resident; where it does
 * not fit the memory budget, each completion is the single most likely next token from a streamed prompt pass, and
 * the result says so.
 */
import type { ForwardAblation, ForwardAddition } from "../engine/run-forward.js";
import type { ForwardModel } from "../engine/load-forward-model.js";
import { activationBytes, defaultMemoryBudget, mlpChunkTokensFor } from "../engine/memory-budget.js";
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

/** Whether greedy generation of this many prompts and tokens fits the budget in resident mode. */
export function generationFits(model: ForwardModel, prompts: number[][], maxNewTokens: number, budgetBytes: number): boolean {
  const rows = prompts.reduce((sum, ids) => sum + ids.length, 0);
  const bytes = activationBytes(model, {
    rows,
    capturedRows: 0,
    logitsRows: prompts.length,
    maxNewTokens,
    prompts: prompts.length,
    longestPrompt: Math.max(...prompts.map((ids) => ids.length)),
    mlpChunkTokens: mlpChunkTokensFor(model, budgetBytes),
  });
  return model.totalBytes + bytes <= budgetBytes;
}

export async function completePrompts(params: CompletionsParams): Promise<Completions> {
  const { model, prompts } = params;
  const vocab = model.spec.vocabSize;
  const budget = params.maxMemoryBytes ?? defaultMemoryBudget();
  const batchSize = params.batchSize ?? 64;
  const generate = params.maxNewTokens > 0 && generationFits(model, prompts.slice(0, batchSize), params.maxNewTokens, budget);
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
      mode: generate ? "resident" : params.mode,
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
