/**
 * Which token to send. An explicit `--token` wins (as an explicit argument does in huggingface_hub), then
 * `HF_TOKEN` (and the legacy `HUGGING_FACE_HUB_TOKEN`), then the token file `huggingface-cli login` writes
 * (`HF_TOKEN_PATH`, else `$HF_HOME/token`, else `~/.cache/huggingface/token`).
 * The token itself never appears in a message: callers report `source`, never the value.
 */
import { readFileSync } from "node:fs";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { hubTokenPath } from "./cache-paths.js";
import { redactSecrets } from "./redact-secrets.js";

export type HubTokenSource = "--token" | "HF_TOKEN" | "HUGGING_FACE_HUB_TOKEN" | "token file" | "none";

export interface HubToken {
  token?: string;
  source: HubTokenSource;
  /** The token file, when the token came from one. */
  file?: string;
}

export function resolveHubToken(params: { explicit?: string; env?: NodeJS.ProcessEnv } = {}): HubToken {
  const env = params.env ?? process.env;
  const candidates: [string | undefined, HubTokenSource][] = [
    [params.explicit, "--token"],
    [env.HF_TOKEN, "HF_TOKEN"],
    [env.HUGGING_FACE_HUB_TOKEN, "HUGGING_FACE_HUB_TOKEN"],
  ];
  for (const [value, source] of candidates) {
    const token = value?.trim();
    if (token) return checked({ token, source });
  }
  const file = hubTokenPath(env);
  let text: string | undefined;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    text = undefined;
  }
  const token = text?.trim();
  return token ? checked({ token, source: "token file", file }) : { source: "none" };
}

function checked(found: HubToken): HubToken {
  if (!found.token!.startsWith("hf_")) {
    const where = found.file ? `the token file ${found.file}` : found.source;
    throw new AbliterateError(ErrorCodes.HUB_UNAUTHORIZED, `the Hugging Face token from ${where} is malformed: Hub tokens start with "hf_"`);
  }
  return found;
}

/** Replaces every occurrence of the token (and of any other secret, see redact-secrets.ts) in a message. */
export function redactToken(text: string, token: string | undefined): string {
  return redactSecrets(text, [token]);
}
