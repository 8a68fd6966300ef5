/**
 * The project's one token redactor: whatever path a secret takes into a message (a URL, a header a server
 * echoed, an error's text), it never reaches the terminal or a JSON result.
 * - Tokens this process could know (HF_TOKEN, the legacy HUGGING_FACE_HUB_TOKEN, --token, the token file) and any
 *   the caller names are removed verbatim, whatever characters they hold; Hub tokens are also caught by shape.
 * - URLs lose their userinfo (user:password@) and their query and fragment, where signed links carry credentials.
 * The Hub's errors (hub-errors.ts), its token helpers and the CLI's last word (main.ts) all go through it.
 */
import { readFileSync } from "node:fs";
import { hubTokenPath } from "./cache-paths.js";

const TOKEN_PATTERN = /\bhf_[A-Za-z0-9_-]{4,}/g;
const URL_PATTERN = /\bhttps?:\/\/[^\s"'<>]+/g;

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

/** A URL as it may be shown: no userinfo, no query, no fragment. */
function cleanUrl(url: string): string {
  return url.replace(/^(https?:\/\/)[^/@]*@/, "$1").replace(/[?#][^),;\]]*/, "");
}

export function redactSecrets(text: string, extraSecrets: readonly (string | undefined)[] = []): string {
  // Longest first, so a token that contains another is removed whole.
  const extra = extraSecrets.filter((secret): secret is string => typeof secret === "string" && secret.length >= 4);
  const secrets = [...new Set([...knownSecrets(), ...extra])].sort((a, b) => b.length - a.length);
  let result = text.replace(URL_PATTERN, cleanUrl);
  for (const secret of secrets) result = result.split(secret).join(secret.startsWith("hf_") ? "hf_***" : "***");
  return result.replace(TOKEN_PATTERN, "hf_***");
}
