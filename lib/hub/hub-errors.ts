/**
 * Turns whatever a Hub call threw into one AbliterateError that says what failed and what to do, with the HTTP
 * status, and with the token scrubbed from every message (the token is never echoed, whatever the source).
 */
import { HubApiError } from "@huggingface/hub";
import { AbliterateError, ErrorCodes, isAbliterateError, type ErrorCode } from "../errors.js";
import type { HubHttp } from "./hub-http.js";
import { redactToken } from "./hub-token.js";

export interface HubErrorContext {
  repo: string;
  revision?: string;
  /** A file inside the repo, when the call was about one. */
  path?: string;
  endpoint: string;
  token?: string;
  /** What we were doing, for the message: "download", "push". */
  action: "download" | "push";
  http?: HubHttp;
}

const TOKEN_HINT = "set HF_TOKEN (or run `huggingface-cli login`, or pass --token) with a token that can read it";

function describe(error: HubApiError, context: HubErrorContext): { code: ErrorCode; message: string } {
  const { repo, revision, path, endpoint, token, action } = context;
  const status = error.statusCode;
  const hubCode = context.http?.errorCodeFor(error.url);
  const detail = error.data && typeof error.data.error === "string" ? ` (${error.data.error})` : "";
  const at = `${repo}${revision ? `@${revision}` : ""}`;

  if (status === 401) {
    if (hubCode === "GatedRepo") return { code: ErrorCodes.HUB_UNAUTHORIZED, message: `${repo} is gated: accept its conditions on ${endpoint}/${repo}, then ${TOKEN_HINT}` };
    if (token) {
      return {
        code: ErrorCodes.HUB_UNAUTHORIZED,
        message: action === "push" ? `the Hub rejected the token while pushing to ${repo} (401): it is invalid or expired; create a write token at ${endpoint}/settings/tokens` : `the Hub rejected the token for ${repo} (401): it is invalid or expired, or the repo is private and the token cannot read it`,
      };
    }
    return {
      code: ErrorCodes.HUB_UNAUTHORIZED,
      message: action === "push" ? `pushing to ${repo} needs a token with write access: set HF_TOKEN or pass --token` : `${repo} was not found or is private or gated (401, no token sent): ${TOKEN_HINT}`,
    };
  }
  if (status === 403) {
    if (hubCode === "GatedRepo") return { code: ErrorCodes.HUB_UNAUTHORIZED, message: `access to ${repo} is gated and this token's account has not been granted it (403): request access on ${endpoint}/${repo}` };
    return {
      code: ErrorCodes.HUB_UNAUTHORIZED,
      message: action === "push" ? `the token cannot write to ${repo} (403): it needs write access to that namespace${detail}` : `the token is not allowed to read ${repo} (403)${detail}`,
    };
  }
  if (status === 404) {
    if (hubCode === "RevisionNotFound") return { code: ErrorCodes.HUB_NOT_FOUND, message: `revision "${revision ?? "main"}" not found in ${repo} (404)` };
    if (hubCode === "EntryNotFound") return { code: ErrorCodes.HUB_NOT_FOUND, message: `file ${path ?? "?"} not found in ${at} (404)` };
    return { code: ErrorCodes.HUB_NOT_FOUND, message: `repository ${repo} not found on ${endpoint} (404)` };
  }
  if (status === 429) return { code: ErrorCodes.HUB, message: `the Hub kept rate-limiting requests for ${at} (429) after several retries; try again later` };
  if (status >= 500) return { code: ErrorCodes.HUB, message: `the Hub failed with status ${status} for ${at}${path ? ` (${path})` : ""} after several retries${detail}` };
  return { code: ErrorCodes.HUB, message: `Hub request for ${at}${path ? ` (${path})` : ""} failed with status ${status}${detail}` };
}

export function toHubError(error: unknown, context: HubErrorContext): AbliterateError {
  const scrub = (text: string) => redactToken(text, context.token);
  if (isAbliterateError(error)) {
    return error.message.includes(context.token ?? "\u0000") ? new AbliterateError(error.code, scrub(error.message), { file: error.file, status: error.status }) : error;
  }
  if (error instanceof HubApiError) {
    const { code, message } = describe(error, context);
    return new AbliterateError(code, scrub(message), { status: error.statusCode });
  }
  const text = error instanceof Error ? error.message : String(error);
  if (/must start with 'hf_'/.test(text)) {
    return new AbliterateError(ErrorCodes.HUB_UNAUTHORIZED, `the Hugging Face token is malformed: Hub tokens start with "hf_"`);
  }
  const cause = (error as { cause?: { code?: string } }).cause;
  const networkCode = (error as { code?: string }).code ?? cause?.code;
  if (error instanceof TypeError || networkCode) {
    const offlineHint = context.action === "download" ? "; if the model is already in the cache, set HF_HUB_OFFLINE=1 to use it without the network" : "";
    return new AbliterateError(ErrorCodes.HUB, scrub(`cannot reach the Hub at ${context.endpoint} (${networkCode ?? text})${offlineHint}`));
  }
  return new AbliterateError(ErrorCodes.HUB, scrub(`Hub ${context.action} of ${context.repo} failed: ${text}`), { cause: error });
}
