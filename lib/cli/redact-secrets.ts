/**
 * Defence in depth for token hygiene: whatever path a token takes into a message (a URL, a header echoed by a
 * server, an error object's text), it never reaches the terminal. Hugging Face user tokens start with "hf_" and
 * are caught by shape; the tokens this run could know (HF_TOKEN, the legacy variable, --token, the token file)
 * are also removed verbatim, whatever characters they hold.
 */
import { readFileSync } from "node:fs";
import { hubTokenPath } from "../hub/cache-paths.js";

const TOKEN_PATTERN = /\bhf_[A-Za-z0-9_-]{4,}/g;
// user:password@ in a URL.
const URL_USERINFO = /\b(https?:\/\/)[^/\s@]+@/g;

/** `--token X` and `--token=X` in an argument list. */
function tokenArguments(argv: readonly string[]): string[] {
  const found: string[] = [];
  argv.forEach((arg, index) => {
    if (arg === "--token" && index + 1 < argv.length) found.push(argv[index + 1]);
    else if (arg.startsWith("--token=")) found.push(arg.slice("--token=".length));
  });
  return found;
}

function tokenFile(env: NodeJS.ProcessEnv): string | undefined {
  try {
    return readFileSync(hubTokenPath(env), "utf8").trim();
  } catch {
    return undefined;
  }
}

/** Every token this process could have been given. */
export function knownSecrets(env: NodeJS.ProcessEnv = process.env, argv: readonly string[] = process.argv): string[] {
  const candidates = [env.HF_TOKEN, env.HUGGING_FACE_HUB_TOKEN, ...tokenArguments(argv), tokenFile(env)];
  return candidates.map((value) => value?.trim()).filter((value): value is string => typeof value === "string" && value.length >= 4);
}

export function redactSecrets(text: string, extraSecrets: readonly string[] = []): string {
  // Longest first, so a token that contains another is removed whole.
  const secrets = [...new Set([...knownSecrets(), ...extraSecrets.filter((secret) => secret.length >= 4)])].sort((a, b) => b.length - a.length);
  let result = text;
  for (const secret of secrets) result = result.split(secret).join("***");
  return result.replace(TOKEN_PATTERN, "hf_***").replace(URL_USERINFO, "$1***@");
}
