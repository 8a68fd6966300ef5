/**
 * The planted chat model the search's end-to-end tests run on (some candidates break the model at layer 2), with the
 * built-in prompt sets written beside it, and the one command's arguments for it.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUILTIN_HARMFUL_PROMPTS, BUILTIN_HARMLESS_PROMPTS } from "../../lib/directions/builtin-prompts.js";
import { PLANTED_COMMON_WORDS, PLANTED_TRIGGER_WORDS } from "../../lib/directions/planted-refusal-model.js";
import { writePlantedChatModel } from "./planted-chat-model.js";

export async function writePlantedSearchCase(root: string) {
  const planted = await writePlantedChatModel({
    dir: join(root, "model"),
    behaviour: ["sorry", "i", "will", "not", "."],
    normal: ["sure", "here", "is", "the", "answer"],
    breakingLayer: 2,
    triggers: PLANTED_TRIGGER_WORDS,
    words: PLANTED_COMMON_WORDS,
  });
  writeFileSync(join(root, "h.txt"), BUILTIN_HARMFUL_PROMPTS.join("\n"));
  writeFileSync(join(root, "n.txt"), BUILTIN_HARMLESS_PROMPTS.join("\n"));
  /** Model, prompt files and a short evaluation: what every run of these tests passes first. */
  const common = [planted.dir, "--harmful", join(root, "h.txt"), "--harmless", join(root, "n.txt"), "--max-new-tokens", "8"];
  return { planted, common };
}
