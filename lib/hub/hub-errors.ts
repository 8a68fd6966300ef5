/**
 * Turns whatever a Hub call threw into one AbliterateError that says what failed and what to do, with the HTTP
 * status and, for failures that outlived the retries, the URL path and the number of attempts. The token is
 * scrubbed from every message, and URLs lose their query and userinfo (signed links carry credentials there);
 * the library's error objects (which hold URLs and server replies) never travel on as a cause.
 */
import { HubApiError } from "@huggingface/hub";
import { AbliterateError, ErrorCodes, isAbliterateError, type ErrorCode } from "../errors.js";
import { HubNetworkError, type HubHttp } from "./hub-http.js";
import { redactSecrets } from "./redact-secrets.js";

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

/** Where a failed response came from, and how often it was tried: " (at /api/…, 6 attempts)". */
function whereAndHowOften(error: HubApiError, context: HubErrorContext): string {
  let path: string | undefined;
  try {
    path = error.url ? new URL(error.url).pathname : undefined;
  } catch {
    path = undefined;
  }
  const attempts = context.http?.attemptsFor(error.url);
  const parts = [path ? `at ${path}` : undefined, attempts && attempts > 1 ? `${attempts} attempts` : undefined].filter(Boolean);
  return parts.length > 0 ? ` (${parts.join(", ")})` : "";
}

/** The server's own words, when it gave some: its JSON `error`, else the library's message without the URL trailer. */
function serverDetail(error: HubApiError): string {
  if (error.data && typeof error.data.error === "string") return ` (${error.data.error})`;
  const message = error.message.replace(/\. URL: .*$/s, "");
  return message && !/^Api error with status \d+$/.test(message) ? ` (${message})` : "";
}

function describe(error: HubApiError, context: HubErrorContext): { code: ErrorCode; message: string } {
  const { repo, revision, path, endpoint, token, action } = context;
  const status = error.statusCode;
  const hubCode = context.http?.errorCodeFor(error.url);
  const detail = serverDetail(error);
  const at = `${repo}${revision ? `@${revision}` : ""}`;
  const where = whereAndHowOften(error, context);

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
  const retried = (context.http?.attemptsFor(error.url) ?? 1) > 1 ? " after several retries" : "";
  if (status === 429) return { code: ErrorCodes.HUB, message: `the Hub kept rate-limiting requests for ${at} (429)${retried}${where}; try again later` };
  if (status >= 500) return { code: ErrorCodes.HUB, message: `the Hub failed with status ${status} for ${at}${path ? ` (${path})` : ""}${retried}${where}${detail}` };
  return { code: ErrorCodes.HUB, message: `Hub request for ${at}${path ? ` (${path})` : ""} failed with status ${status}${where}${detail}` };
}

/** Every URL in a message loses its query and userinfo; then the token goes (the project's one redactor). */
export function redactHubText(text: string, token: string | undefined): string {
  return redactSecrets(text, [token]);
}

export function toHubError(error: unknown, context: HubErrorContext): AbliterateError {
  const scrub = (text: string) => redactHubText(text, context.token);
  if (error instanceof HubNetworkError) {
    const offlineHint = context.action === "download" ? "; if the model is already in the cache, set HF_HUB_OFFLINE=1 to use it without the network" : "";
    return new AbliterateError(ErrorCodes.HUB, scrub(`cannot reach the Hub at ${context.endpoint}: ${error.message}${offlineHint}`));
  }
  if (isAbliterateError(error)) {
    const clean = scrub(error.message);
    return clean === error.message ? error : new AbliterateError(error.code, clean, { file: error.file, status: error.status });
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
  // The cause keeps the kind of error for debugging, but only a scrubbed message: no URL, header or server reply.
  const safeCause = new Error(scrub(text));
  safeCause.name = error instanceof Error ? error.name : "Error";
  return new AbliterateError(ErrorCodes.HUB, scrub(`Hub ${context.action} of ${context.repo} failed: ${text}`), { cause: safeCause });
}
