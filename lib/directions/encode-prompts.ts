/**
 * Prompts → token ids the way the model sees them in chat: the tokenizer's chat template with the prompt as the
 * user turn (and `system` as a system turn), generation prompt appended. A model without a template is an error
 * unless the caller asked for raw prompts (`--no-chat-template`).
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { PromptTokenizer } from "../tokenize/load-prompt-tokenizer.js";

export interface PromptEncoding {
  /** false: raw prompts; true or undefined: the chat template, which must exist. */
  chatTemplate?: boolean;
  system?: string;
}

export function promptEncoder(tokenizer: PromptTokenizer, encoding: PromptEncoding): (prompt: string) => number[] {
  if (encoding.chatTemplate === false) {
    if (encoding.system !== undefined) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "--system needs the chat template; drop --no-chat-template or --system");
    return (prompt) => tokenizer.encodePlain(prompt);
  }
  if (!tokenizer.chatTemplate) {
    throw new AbliterateError(
      ErrorCodes.CONFIG_INVALID,
      "the model has no chat template (neither chat_template.jinja nor a chat_template in tokenizer_config.json); pass --no-chat-template to use the prompts as raw text",
      { file: tokenizer.dir },
    );
  }
  if (encoding.system === undefined) return (prompt) => tokenizer.encodeChat(prompt);
  const system = encoding.system;
  return (prompt) =>
    tokenizer.encodePlain(
      tokenizer.renderChat(
        [
          { role: "system", content: system },
          { role: "user", content: prompt },
        ],
        { addGenerationPrompt: true },
      ),
      { addSpecialTokens: false },
    );
}
