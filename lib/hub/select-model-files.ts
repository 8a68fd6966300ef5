/**
 * Which files of a repo a surgery output needs: the safetensors weights (only the shards the index names when
 * there is an index; never a `consolidated.safetensors` duplicate when regular shards exist), config,
 * generation config, tokenizer and chat-template files, custom modeling code, README and license files, and
 * abliteration.json when the repo is itself an abliterated model.
 * Pickles, GGUF, ONNX, TF/Flax weights and subfolders are left on the Hub.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import { describePath, unsafePathReason } from "./safe-repo-path.js";

const INDEX_SUFFIX = ".safetensors.index.json";

const NEEDED = [
  /^config\.json$/,
  /^generation_config\.json$/,
  /^tokenizer[^/]*$/, // tokenizer.json, tokenizer_config.json, tokenizer.model
  /^special_tokens_map\.json$/,
  /^added_tokens\.json$/,
  /^chat_template\.(jinja|json)$/,
  /^vocab[^/]*$/, // vocab.json, vocab.txt
  /^merges\.txt$/,
  /^[^/]+\.(txt|model|tiktoken)$/, // sentencepiece models, tiktoken ranks, LICENSE.txt
  /^[^/]+\.py$/, // trust_remote_code modeling / configuration / tokenization code
  /^(README|LICENSE|NOTICE|USE_POLICY)(\.[^/]*)?$/i,
  /^(preprocessor|processor|image_processor)_config\.json$/,
  /^abliteration\.json$/, // an abliterated repo's record, which verify reads back
];

export interface FileSelection {
  /** Top-level *.safetensors.index.json files (read to learn which shards to fetch). */
  indexes: string[];
  /** Everything to download except the shards an index will name. */
  files: string[];
}

/** Picks the files to download from a repo listing; throws NO_SAFETENSORS naming what the repo has instead. */
export function selectModelFiles(paths: string[], where: string): FileSelection {
  const top = paths.filter((path) => !path.includes("/"));
  const indexes = top.filter((path) => path.endsWith(INDEX_SUFFIX));
  let weights = top.filter((path) => path.endsWith(".safetensors"));
  if (weights.length === 0) {
    const present = paths.filter((path) => /\.(bin|pt|pth|ckpt|gguf|onnx|h5|msgpack|pkl|safetensors)$/.test(path));
    const shown = present.slice(0, 6).join(", ") + (present.length > 6 ? `, … (${present.length} in all)` : "");
    throw new AbliterateError(
      ErrorCodes.NO_SAFETENSORS,
      `${where} has no safetensors weights at its top level${present.length > 0 ? ` (it has ${shown})` : ""}; ` +
        "abliterate edits safetensors checkpoints only. Convert it first (transformers: save_pretrained(..., safe_serialization=True)), " +
        "or pick a revision that has safetensors (the Hub's conversion bot often opens one as refs/pr/N)",
    );
  }
  if (weights.some((path) => !path.startsWith("consolidated"))) weights = weights.filter((path) => !path.startsWith("consolidated"));
  const others = top.filter((path) => !path.endsWith(".safetensors") && !path.endsWith(INDEX_SUFFIX) && NEEDED.some((pattern) => pattern.test(path)));
  return { indexes, files: [...(indexes.length > 0 ? [] : weights), ...others] };
}

/** The shard files a safetensors index maps tensors to. */
export function shardsOfIndex(indexText: string, indexPath: string): string[] {
  let index: unknown;
  try {
    index = JSON.parse(indexText);
  } catch (error) {
    throw new AbliterateError(ErrorCodes.INDEX_INVALID, "not valid JSON", { file: indexPath, cause: error });
  }
  const weightMap = (index as { weight_map?: unknown })?.weight_map;
  if (typeof weightMap !== "object" || weightMap === null) {
    throw new AbliterateError(ErrorCodes.INDEX_INVALID, "has no weight_map object", { file: indexPath });
  }
  const shards = new Set<string>();
  for (const value of Object.values(weightMap)) {
    const unsafe = unsafePathReason(value);
    if (unsafe) throw new AbliterateError(ErrorCodes.INDEX_INVALID, `weight_map names the shard ${describePath(value)}, which is unsafe: ${unsafe}`, { file: indexPath });
    if (typeof value !== "string" || value.includes("/") || !value.endsWith(".safetensors")) {
      throw new AbliterateError(ErrorCodes.INDEX_INVALID, `weight_map names an invalid shard ${describePath(value)} (shards are .safetensors files next to the index)`, { file: indexPath });
    }
    shards.add(value);
  }
  return [...shards].sort();
}
