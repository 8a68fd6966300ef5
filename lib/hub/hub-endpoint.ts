/** Where the Hub is and whether we may talk to it, read from the environment the way huggingface_hub does. */

export const DEFAULT_HUB_URL = "https://huggingface.co";

/** `HF_ENDPOINT` without a trailing slash, else https://huggingface.co. */
export function hubEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  const value = env.HF_ENDPOINT?.trim();
  return (value ? value : DEFAULT_HUB_URL).replace(/\/+$/, "");
}

/** huggingface_hub's truthiness for boolean environment variables. */
export function isTrueEnv(value: string | undefined): boolean {
  return value !== undefined && ["1", "ON", "YES", "TRUE"].includes(value.trim().toUpperCase());
}

/** `HF_HUB_OFFLINE=1`: use the cache only, never the network. */
export function isHubOffline(env: NodeJS.ProcessEnv = process.env): boolean {
  return isTrueEnv(env.HF_HUB_OFFLINE);
}
