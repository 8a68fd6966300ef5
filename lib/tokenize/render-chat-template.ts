/**
 * Renders a Hugging Face chat template the way transformers' `apply_chat_template` does: Jinja with trim_blocks and
 * lstrip_blocks (@huggingface/jinja sets both), `raise_exception` and `strftime_now` available, and the named special
 * tokens (bos_token, eos_token, ...) passed as strings next to `messages` and `add_generation_prompt`.
 */
import { Template } from "@huggingface/jinja";
import { AbliterateError, ErrorCodes } from "../errors.js";

export interface ChatMessage {
  role: string;
  content: string;
}

export interface RenderChatTemplateParams {
  template: string;
  messages: ChatMessage[];
  addGenerationPrompt: boolean;
  /** Named special tokens as strings (bos_token, eos_token, unk_token, pad_token, ...). */
  specialTokens: Record<string, string>;
  /** Where the template came from, for error messages. */
  source?: string;
}

const compiled = new Map<string, Template>();

export function renderChatTemplate(params: RenderChatTemplateParams): string {
  const { template, messages, addGenerationPrompt, specialTokens, source } = params;
  let parsed = compiled.get(template);
  try {
    if (!parsed) {
      parsed = new Template(template);
      compiled.set(template, parsed);
    }
    return parsed.render({ ...specialTokens, messages, add_generation_prompt: addGenerationPrompt });
  } catch (error) {
    throw new AbliterateError(
      ErrorCodes.CONFIG_INVALID,
      `chat template could not be rendered: ${(error as Error)?.message ?? String(error)}`,
      { file: source, cause: error },
    );
  }
}
