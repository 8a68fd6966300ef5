/**
 * transformers does not run a Llama-family tokenizer.json as written. Its LlamaTokenizer (v5; LlamaTokenizerFast is
 * an alias) keeps only vocab, merges, added tokens and the post-processor from the file and rebuilds the rest:
 *   normalizer    = None
 *   pre_tokenizer = Metaspace(replacement "▁", split=False,
 *                             prepend_scheme = "never"  if add_prefix_space is false,
 *                                              "first"  if legacy is false (the default when the key is absent),
 *                                              "always" otherwise)
 * The serialized normalizer (Prepend "▁" + Replace " " → "▁") behaves like "always": it puts a "▁" in front of every
 * piece of text, including the text right after a special token. With "first" only the text at offset 0 of the input
 * gets one, which is why transformers yields `How` (5328) after `<|user|>` where the file as written yields `▁How`
 * (1128), and `\n` (13) after `</s>` instead of `▁`, `\n` (29871, 13).
 *
 * @huggingface/tokenizers implements Metaspace's "first" scheme (section index 0 = the text before the first added
 * token), so rewriting the JSON the same way transformers does gives the same ids.
 */

/** The tokenizer classes transformers rebuilds with a Metaspace pre-tokenizer as described above. */
const METASPACE_REBUILT_CLASSES = new Set(["LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer", "CodeLlamaTokenizerFast"]);

export interface TokenizerJson {
  normalizer: unknown;
  pre_tokenizer: unknown;
  model: { type?: string; [key: string]: unknown };
  [key: string]: unknown;
}

export type TokenizerConfig = Record<string, unknown>;

export type PrependScheme = "first" | "always" | "never";

/** The prepend scheme transformers derives from tokenizer_config.json, or undefined when the file is used as written. */
export function transformersPrependScheme(config: TokenizerConfig, tokenizerJson: TokenizerJson): PrependScheme | undefined {
  const tokenizerClass = typeof config.tokenizer_class === "string" ? config.tokenizer_class : "";
  if (!METASPACE_REBUILT_CLASSES.has(tokenizerClass)) return undefined;
  // The rebuild keeps the BPE model; a Unigram tokenizer.json under a Llama class is not what this describes.
  if (tokenizerJson.model?.type !== "BPE") return undefined;
  if (config.add_prefix_space === false) return "never";
  return config.legacy === true ? "always" : "first";
}

/**
 * Returns a copy of `tokenizerJson` with the normalizer and pre-tokenizer transformers would use for it
 * (unchanged when transformers uses the file as written).
 */
export function applyTransformersPreTokenization(tokenizerJson: TokenizerJson, config: TokenizerConfig): TokenizerJson {
  const scheme = transformersPrependScheme(config, tokenizerJson);
  if (scheme === undefined) return tokenizerJson;
  return {
    ...tokenizerJson,
    normalizer: null,
    pre_tokenizer: { type: "Metaspace", replacement: "\u2581", prepend_scheme: scheme, split: false },
  };
}
