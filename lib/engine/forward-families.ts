/**
 * model_type → the forward engine's description of the family (family-description.ts says what a description
 * holds; describe-llama-like.ts and describe-gpt.ts build them).
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import { describeGpt2, describeGptNeox } from "./describe-gpt.js";
import { describeGemma, describeMoe, describePhi3, everyLayer, llamaLike, qwenWindows } from "./describe-llama-like.js";
import { eosIds, type Config, type FamilyDescription } from "./family-description.js";

export type { FamilyDescription, LayerRole, SparseLayout } from "./family-description.js";
export { eosIds };

export const FORWARD_FAMILIES = ["llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "gemma3", "phi3", "gpt2", "gpt_neox", "mixtral", "qwen2_moe", "qwen3_moe"] as const;

/** The forward-engine description of a (text) config, or UNSUPPORTED_FAMILY. */
export function describeFamily(modelType: string, config: Config, file: string): FamilyDescription {
  switch (modelType) {
    case "llama":
      return llamaLike(modelType, config, file, { tieDefault: false });
    case "mistral": {
      const base = llamaLike(modelType, config, file, { tieDefault: false });
      base.slidingWindow = everyLayer(config);
      return base;
    }
    case "qwen2":
    case "qwen3": {
      const base = llamaLike(modelType, config, file, { tieDefault: false });
      base.slidingWindow = qwenWindows(config, base.spec.numLayers);
      return base;
    }
    case "gemma":
    case "gemma2":
    case "gemma3_text":
      return describeGemma(modelType, config, file);
    case "gemma3":
      // The multimodal checkpoint: its text_config is a gemma3_text config (lib/arch/model-config reads it).
      return describeGemma("gemma3_text", config, file);
    case "phi3":
      return describePhi3(config, file);
    case "gpt2":
      return describeGpt2(config, file);
    case "gpt_neox":
      return describeGptNeox(config, file);
    case "mixtral":
    case "qwen2_moe":
    case "qwen3_moe":
      return describeMoe(modelType, config, file);
    default:
      throw new AbliterateError(
        ErrorCodes.UNSUPPORTED_FAMILY,
        `the forward engine does not support model_type "${modelType}" (supported: ${FORWARD_FAMILIES.join(", ")})`,
        { file },
      );
  }
}
