/**
 * A model from the cache alone (HF_HUB_OFFLINE=1, or the Hub unreachable): revision → refs/<revision> → commit
 * → snapshots/<commit>/, accepted only when its weights are all there (every shard an index names, or at least
 * one .safetensors file), so an offline run never starts on half a checkpoint.
 */
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { repoCachePaths, toHubRepo, type HubRepo } from "./cache-paths.js";
import { shardsOfIndex } from "./select-model-files.js";

export interface CachedSnapshot {
  dir: string;
  commit: string;
}

const COMMIT = /^[0-9a-f]{40}$/;

/** revision → commit → snapshots/<commit>/ of any repo, before anything is checked inside it. */
export function findSnapshotFolder(params: { repo: string | HubRepo; revision: string; cacheDir?: string }): CachedSnapshot | { missing: string } {
  const repo = toHubRepo(params.repo);
  const label = repo.type === "dataset" ? `dataset ${repo.name}` : repo.name;
  const paths = repoCachePaths({ repo, cacheDir: params.cacheDir });
  let commit: string;
  if (COMMIT.test(params.revision)) {
    commit = params.revision;
  } else {
    const refFile = paths.ref(params.revision);
    if (!existsSync(refFile)) {
      return { missing: existsSync(paths.repoDir) ? `the cache has ${label} but no record of revision "${params.revision}" (${refFile})` : `${label} is not in the cache ${paths.root}` };
    }
    commit = readFileSync(refFile, "utf8").trim();
    // The ref becomes a folder name: anything but a commit hash is not ours to follow.
    if (!COMMIT.test(commit)) return { missing: `${refFile} does not hold a commit hash` };
  }
  const dir = paths.snapshot(commit);
  if (!existsSync(dir)) return { missing: `snapshot ${commit} of ${label} is not in the cache` };
  return { dir, commit };
}

/** The model snapshot for repo@revision, accepted only with all its weights; or a reason it cannot be used. */
export function findCachedSnapshot(params: { repo: string; revision: string; cacheDir?: string }): CachedSnapshot | { missing: string } {
  const found = findSnapshotFolder(params);
  if ("missing" in found) return found;
  const { dir, commit } = found;
  // existsSync follows symlinks: a pointer whose blob is gone counts as missing.
  const names = readdirSync(dir).filter((name) => existsSync(join(dir, name)));
  const indexes = names.filter((name) => name.endsWith(".safetensors.index.json"));
  for (const index of indexes) {
    const shards = shardsOfIndex(readFileSync(join(dir, index), "utf8"), join(dir, index));
    const absent = shards.filter((shard) => !names.includes(shard));
    if (absent.length > 0) return { missing: `the cached snapshot ${commit} of ${params.repo} lacks ${absent.join(", ")}` };
  }
  if (!names.some((name) => name.endsWith(".safetensors"))) {
    return { missing: `the cached snapshot ${commit} of ${params.repo} has no safetensors weights` };
  }
  return { dir, commit };
}

export function requireCachedSnapshot(params: { repo: string; revision: string; cacheDir?: string }): CachedSnapshot {
  const found = findCachedSnapshot(params);
  if ("missing" in found) {
    throw new AbliterateError(ErrorCodes.HUB_OFFLINE, `HF_HUB_OFFLINE is set and ${found.missing}; run once with network access to download it`);
  }
  return found;
}
