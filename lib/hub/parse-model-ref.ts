/**
 * MODEL on the command line: a local folder, `org/name[@revision]`, or a Hub URL
 * (`https://host/org/name`, `…/tree/<rev>`, `…/resolve/<rev>/…`, `…/blob/<rev>/…`).
 * Something that exists on disk is always the local folder, so a folder named like a repo id still works.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";

export type ModelRef =
  | { kind: "local"; dir: string }
  | { kind: "hub"; repo: string; revision?: string };

// The Hub's rule: letters, digits, "-", "_", "."; no "--" or ".." ; no leading/trailing "-" or ".".
const NAME_PART = /^(?!.*(--|\.\.))[A-Za-z0-9][A-Za-z0-9._-]*$/;

export function isValidRepoId(repo: string): boolean {
  return repoIdProblem(repo) === undefined;
}

/** What is wrong with a repo id, by huggingface_hub's rules (validate_repo_id), or undefined when it is fine. */
export function repoIdProblem(repo: string): string | undefined {
  const parts = repo.split("/");
  if (parts.length > 2) return "it has more than one slash";
  if (repo.endsWith(".git")) return 'a repo id cannot end in ".git"';
  for (const part of parts) {
    if (part.length === 0) return "a part of it is empty";
    if (part.length > 96) return "a part of it is longer than 96 characters";
    if (!NAME_PART.test(part) || /[.-]$/.test(part)) return 'only letters, digits, "-", "_" and "." are allowed, without "--" or "..", and not at either end';
  }
  return undefined;
}

/** A branch to push to, by git's ref-name rules, refused with a clear message before anything is sent. */
export function checkBranchName(branch: string): void {
  const problem =
    branch.trim() === "" ? "it is empty"
    : /[\u0000-\u0020\u007f~^:?*[\\]/.test(branch) ? "it contains a space, a control character or one of ~ ^ : ? * [ \\"
    : /(^|\/)\.|\.\.|\/\/|^\/|\/$|\.lock$|@\{|\.$/.test(branch) ? 'it breaks git\'s ref-name rules (no "..", "//", "@{", no leading "." or "/", no trailing "/", "." or ".lock")'
    : branch.length > 255 ? "it is longer than 255 characters"
    : undefined;
  if (problem) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--branch ${JSON.stringify(branch.length > 80 ? `${branch.slice(0, 80)}…` : branch)} cannot be used: ${problem}`);
}

function fromUrl(input: string): ModelRef {
  const url = new URL(input);
  const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "datasets" || parts[0] === "spaces") {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `${input} is a ${parts[0].slice(0, -1)}, not a model repo`);
  }
  if (parts[0] === "models") parts.shift();
  if (parts.length < 2 || !isValidRepoId(`${parts[0]}/${parts[1]}`)) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `${input} does not name a model repo (expected ${url.origin}/org/name)`);
  }
  const repo = `${parts[0]}/${parts[1]}`;
  const [, , kind, ...rest] = parts;
  if (kind === undefined) return { kind: "hub", repo };
  if ((kind === "tree" || kind === "blob" || kind === "resolve") && rest.length > 0) {
    // A revision with slashes (refs/pr/1) arrives URL-encoded as one segment.
    return { kind: "hub", repo, revision: rest[0] };
  }
  throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `${input}: cannot read a revision from this URL (expected …/${repo}/tree/<revision>)`);
}

export function parseModelRef(input: string, options: { exists?: (path: string) => boolean } = {}): ModelRef {
  const exists = options.exists ?? existsSync;
  const text = input.trim();
  if (text === "") throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "MODEL is empty: give a folder or a Hub repo id (org/name[@revision])");
  if (exists(text)) return { kind: "local", dir: resolve(text) };
  if (/^https?:\/\//i.test(text)) return fromUrl(text);
  if (/^(\.{1,2}|~)?[/\\]/.test(text) || text.startsWith("~") || text.includes("\\")) {
    throw new AbliterateError(ErrorCodes.IO, `model folder not found: ${resolve(text)}`, { file: resolve(text) });
  }
  const at = text.indexOf("@");
  const repo = at === -1 ? text : text.slice(0, at);
  const revision = at === -1 ? undefined : text.slice(at + 1);
  if (!isValidRepoId(repo) || revision === "") {
    throw new AbliterateError(
      ErrorCodes.INVALID_ARGUMENT,
      `"${input}" is neither an existing folder nor a Hub repo id (org/name or org/name@revision)`,
    );
  }
  return { kind: "hub", repo, ...(revision ? { revision } : {}) };
}
