/**
 * Loads a model folder's tokenizer (tokenizer.json + tokenizer_config.json, optionally chat_template.jinja and
 * special_tokens_map.json) into something that turns prompts into the ids transformers would give:
 * - `encodeChat(prompt)` = `apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)`
 *   (rendered, then tokenized with add_special_tokens=False, exactly as transformers does);
 * - `encodePlain(text)` = `tokenizer(text)["input_ids"]` (special tokens added by the post-processor).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { renderChatTemplate, type ChatMessage } from "./render-chat-template.js";
import {
  applyTransformersPreTokenization,
  transformersPrependScheme,
  type PrependScheme,
  type TokenizerConfig,
  type TokenizerJson,
} from "./transformers-pre-tokenization.js";

const NAMED_SPECIAL_TOKENS = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

export interface PromptTokenizer {
  readonly dir: string;
  /** The chat template in use, or undefined when the folder has none. */
  readonly chatTemplate: string | undefined;
  /** Named special tokens as strings, as the chat template sees them. */
  readonly specialTokens: Readonly<Record<string, string>>;
  /** The Metaspace prepend scheme forced to match transformers, or undefined when tokenizer.json is used as written. */
  readonly prependScheme: PrependScheme | undefined;
  encodePlain(text: string, options?: { addSpecialTokens?: boolean }): number[];
  renderChat(messages: ChatMessage[], options?: { addGenerationPrompt?: boolean }): string;
  encodeChat(prompt: string): number[];
  /** encodeChat when useChatTemplate and a template exists, encodePlain otherwise. */
  encodePrompt(prompt: string, useChatTemplate: boolean): number[];
  decode(ids: number[], options?: { skipSpecialTokens?: boolean }): string;
  tokenToId(token: string): number | undefined;
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new AbliterateError(ErrorCodes.IO, `cannot read: ${(error as Error).message}`, { file: path, cause: error });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new AbliterateError(ErrorCodes.CONFIG_INVALID, `not valid JSON: ${(error as Error).message}`, { file: path, cause: error });
  }
}

/** Special tokens appear either as strings or as serialized AddedToken objects ({"content": ...}). */
function tokenString(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return undefined;
}

/**
 * transformers reads chat_template.jinja first, then the tokenizer_config.json field, which is either a string or a
 * list of {name, template} where "default" is the one apply_chat_template uses.
 */
function findChatTemplate(dir: string, config: TokenizerConfig): { template: string; source: string } | undefined {
  const jinjaPath = join(dir, "chat_template.jinja");
  if (existsSync(jinjaPath)) return { template: readFileSync(jinjaPath, "utf8"), source: jinjaPath };
  const field = config.chat_template;
  const source = join(dir, "tokenizer_config.json");
  if (typeof field === "string") return { template: field, source };
  if (Array.isArray(field)) {
    const named = field.find((entry) => entry && (entry as { name?: unknown }).name === "default") as { template?: unknown } | undefined;
    if (named && typeof named.template === "string") return { template: named.template, source };
  }
  return undefined;
}

export function loadPromptTokenizer(params: { dir: string }): PromptTokenizer {
  const { dir } = params;
  const tokenizerPath = join(dir, "tokenizer.json");
  const configPath = join(dir, "tokenizer_config.json");
  if (!existsSync(tokenizerPath)) {
    throw new AbliterateError(ErrorCodes.CONFIG_INVALID, "no tokenizer.json (only fast tokenizers are supported)", { file: tokenizerPath });
  }
  const tokenizerJson = readJson(tokenizerPath) as TokenizerJson;
  if (!tokenizerJson || typeof tokenizerJson !== "object" || typeof tokenizerJson.model !== "object") {
    throw new AbliterateError(ErrorCodes.CONFIG_INVALID, "tokenizer.json has no model section", { file: tokenizerPath });
  }
  const config = (existsSync(configPath) ? readJson(configPath) : {}) as TokenizerConfig;
  const specialTokensMapPath = join(dir, "special_tokens_map.json");
  const specialTokensMap = (existsSync(specialTokensMapPath) ? readJson(specialTokensMapPath) : {}) as Record<string, unknown>;

  const specialTokens: Record<string, string> = {};
  for (const name of NAMED_SPECIAL_TOKENS) {
    const value = tokenString(config[name]) ?? tokenString(specialTokensMap[name]);
    if (value !== undefined) specialTokens[name] = value;
  }

  let tokenizer: Tokenizer;
  try {
    tokenizer = new Tokenizer(applyTransformersPreTokenization(tokenizerJson, config), config);
  } catch (error) {
    throw new AbliterateError(ErrorCodes.CONFIG_INVALID, `tokenizer could not be built: ${(error as Error).message}`, {
      file: tokenizerPath,
      cause: error,
    });
  }
  const chat = findChatTemplate(dir, config);

  const encodePlain = (text: string, options: { addSpecialTokens?: boolean } = {}): number[] =>
    tokenizer.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids;

  const renderChat = (messages: ChatMessage[], options: { addGenerationPrompt?: boolean } = {}): string => {
    if (!chat) throw new AbliterateError(ErrorCodes.CONFIG_INVALID, "the tokenizer has no chat template", { file: configPath });
    return renderChatTemplate({
      template: chat.template,
      messages,
      addGenerationPrompt: options.addGenerationPrompt ?? true,
      specialTokens,
      source: chat.source,
    });
  };

  const encodeChat = (prompt: string): number[] =>
    encodePlain(renderChat([{ role: "user", content: prompt }], { addGenerationPrompt: true }), { addSpecialTokens: false });

  return {
    dir,
    chatTemplate: chat?.template,
    specialTokens,
    prependScheme: transformersPrependScheme(config, tokenizerJson),
    encodePlain,
    renderChat,
    encodeChat,
    encodePrompt: (prompt, useChatTemplate) => (useChatTemplate && chat ? encodeChat(prompt) : encodePlain(prompt)),
    decode: (ids, options = {}) => (ids.length === 0 ? "" : tokenizer.decode(ids, { skip_special_tokens: options.skipSpecialTokens ?? false })),
    tokenToId: (token) => tokenizer.token_to_id(token),
  };
}
