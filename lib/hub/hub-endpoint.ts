/** Where the Hub is and whether we may talk to it, read from the environment the way huggingface_hub does. */
import { AbliterateError, ErrorCodes } from "../errors.js";

export const DEFAULT_HUB_URL = "https://huggingface.co";

/** `HF_ENDPOINT` without a trailing slash, else https://huggingface.co. */
export function hubEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  const value = env.HF_ENDPOINT?.trim();
  const endpoint = (value ? value : DEFAULT_HUB_URL).replace(/\/+$/, "");
  // Credentials in the URL would be printed with every URL of every message, and fetch refuses such URLs anyway.
  let parsed: URL | undefined;
  try {
    parsed = new URL(endpoint);
  } catch {
    parsed = undefined;
  }
  if (parsed && (parsed.username || parsed.password)) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `HF_ENDPOINT carries credentials (user:password@ before ${parsed.host}); set it to ${parsed.origin}${parsed.pathname === "/" ? "" : parsed.pathname} and give the token in HF_TOKEN`);
  }
  return endpoint;
}

/** huggingface_hub's truthiness for boolean environment variables. */
export function isTrueEnv(value: string | undefined): boolean {
  return value !== undefined && ["1", "ON", "YES", "TRUE"].includes(value.trim().toUpperCase());
}

/** `HF_HUB_OFFLINE=1`: use the cache only, never the network. */
export function isHubOffline(env: NodeJS.ProcessEnv = process.env): boolean {
  return isTrueEnv(env.HF_HUB_OFFLINE);
}
