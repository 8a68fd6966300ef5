/**
 * Defence in depth for token hygiene: whatever path a token takes into an error message (a URL, a header echoed
 * by a server), it never reaches the terminal. Hugging Face user tokens start with "hf_".
 */
const TOKEN_PATTERN = /\bhf_[A-Za-z0-9_-]{4,}/g;

export function redactSecrets(text: string, extraSecrets: readonly string[] = []): string {
  let result = text.replace(TOKEN_PATTERN, "hf_***");
  const secrets = [process.env.HF_TOKEN, ...extraSecrets].filter((secret): secret is string => typeof secret === "string" && secret.length >= 4);
  for (const secret of secrets) result = result.split(secret).join("***");
  return result;
}
