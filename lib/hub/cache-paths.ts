/**
 * The shared Hugging Face cache, laid out exactly as huggingface_hub writes it, so either tool reuses what the
 * other fetched:
 *   <root>/models--org--name/blobs/<etag>                 file contents (etag: sha256 for LFS, git sha1 otherwise)
 *   <root>/models--org--name/snapshots/<commit>/<path>    relative symlinks to ../../blobs/<etag>
 *   <root>/models--org--name/refs/<revision>              the commit a branch or tag pointed to
 * Datasets live beside them as datasets--org--name, with the same inner layout.
 */
import { homedir } from "node:os";
import { join } from "node:path";

function expandHome(path: string): string {
  return path === "~" || path.startsWith("~/") ? join(homedir(), path.slice(1)) : path;
}

/** `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`. */
export function hfHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HOME) return expandHome(env.HF_HOME);
  return join(env.XDG_CACHE_HOME ? expandHome(env.XDG_CACHE_HOME) : join(homedir(), ".cache"), "huggingface");
}

/** `HF_HUB_CACHE`, else the legacy `HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`. */
export function hubCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.HF_HUB_CACHE ?? env.HUGGINGFACE_HUB_CACHE;
  return explicit ? expandHome(explicit) : join(hfHome(env), "hub");
}

/** `HF_TOKEN_PATH`, else `$HF_HOME/token`. */
export function hubTokenPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.HF_TOKEN_PATH ? expandHome(env.HF_TOKEN_PATH) : join(hfHome(env), "token");
}

/** A repo as huggingface.js designates it: `{ type, name }`; a bare string is a model. */
export interface HubRepo {
  type: "model" | "dataset";
  name: string;
}

export function toHubRepo(repo: string | HubRepo): HubRepo {
  return typeof repo === "string" ? { type: "model", name: repo } : repo;
}

/** `models--org--name`, `datasets--org--name`, as huggingface_hub names the folders. */
export function repoFolderName(repo: string | HubRepo): string {
  const { type, name } = toHubRepo(repo);
  return [`${type}s`, ...name.split("/")].join("--");
}

export interface RepoCachePaths {
  root: string;
  repoDir: string;
  blobsDir: string;
  blob(etag: string): string;
  snapshot(commit: string): string;
  pointer(commit: string, path: string): string;
  ref(revision: string): string;
}

export function repoCachePaths(params: { repo: string | HubRepo; cacheDir?: string; env?: NodeJS.ProcessEnv }): RepoCachePaths {
  const root = params.cacheDir ?? hubCacheRoot(params.env);
  const repoDir = join(root, repoFolderName(params.repo));
  const blobsDir = join(repoDir, "blobs");
  return {
    root,
    repoDir,
    blobsDir,
    blob: (etag) => join(blobsDir, etag),
    snapshot: (commit) => join(repoDir, "snapshots", commit),
    pointer: (commit, path) => join(repoDir, "snapshots", commit, ...path.split("/")),
    // Revisions like refs/pr/1 become nested files, as in huggingface_hub.
    ref: (revision) => join(repoDir, "refs", ...revision.split("/")),
  };
}
