/**
 * The emulator's state: repos, commits, refs, and a content-addressed object store on disk.
 * Hashes follow git and git-lfs exactly (blob sha1 over "blob <size>\0" + bytes, LFS pointer files), so the
 * ETags, oids and cache blob names a client sees are the ones the real Hub would give for the same bytes.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface StoredFile {
  path: string;
  size: number;
  /** sha256 of the content; also the object-store key. */
  sha256: string;
  /** git blob sha1: of the content for regular files, of the LFS pointer for LFS files. */
  gitOid: string;
  lfs: boolean;
  /** Commit that last changed this path. */
  lastCommit: string;
}

export interface Commit {
  oid: string;
  parents: string[];
  title: string;
  message: string;
  date: Date;
  files: Map<string, StoredFile>;
}

/** The repo types the emulator hosts; each has its own namespace of ids, as on the Hub. */
export type RepoType = "model" | "dataset";

export interface Repo {
  /** `namespace/name`, as the Hub's API answers it. */
  id: string;
  type: RepoType;
  /** How tests and routes name the repo: `org/name` for a model, `datasets/org/name` for a dataset. */
  key: string;
  private: boolean;
  gated: false | "auto" | "manual";
  /** Users (beyond the repo's namespace) allowed to read a private or gated repo. */
  readers: Set<string>;
  branches: Map<string, string>;
  tags: Map<string, string>;
  /** refs/pr/N → commit. */
  pullRequests: Map<number, string>;
  commits: Map<string, Commit>;
  /** LFS objects uploaded to this repo (the batch API answers "already stored" for these). */
  lfsObjects: Set<string>;
  internalId: string;
  createdAt: Date;
}

export const LFS_POINTER_VERSION = "version https://git-lfs.github.com/spec/v1";

export function lfsPointer(sha256: string, size: number): string {
  return `${LFS_POINTER_VERSION}\noid sha256:${sha256}\nsize ${size}\n`;
}

export function gitBlobSha1(content: Buffer | string): string {
  const bytes = typeof content === "string" ? Buffer.from(content) : content;
  return createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");
}

export function sha256Hex(content: Buffer): string {
  return createHash("sha256").update(content).digest("hex");
}

const MODEL_LFS_PATTERNS = [
  "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*", "*.mlmodel",
  "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle", "*.pkl", "*.pt",
  "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*", "*.tar", "*.tflite", "*.tgz", "*.wasm",
  "*.xz", "*.zip", "*.zst", "*tfevents*", "*.gguf",
];

/** Datasets get the model patterns plus compressed shards, audio, images and video. */
const DATASET_LFS_PATTERNS = [
  ...MODEL_LFS_PATTERNS, "*.lz4", "*.mds", "*.pcm", "*.sam", "*.raw", "*.aac", "*.flac", "*.mp3", "*.ogg", "*.wav",
  "*.bmp", "*.gif", "*.png", "*.tiff", "*.jpg", "*.jpeg", "*.webp", "*.mp4", "*.webm",
];

const asGitattributes = (patterns: string[]) => patterns.map((pattern) => `${pattern} filter=lfs diff=lfs merge=lfs -text`).join("\n") + "\n";

/** The `.gitattributes` the Hub writes into every new model repo (abridged to the patterns that matter here). */
export const DEFAULT_GITATTRIBUTES = asGitattributes(MODEL_LFS_PATTERNS);
/** The one it writes into a new dataset repo. */
export const DEFAULT_DATASET_GITATTRIBUTES = asGitattributes(DATASET_LFS_PATTERNS);

export function defaultGitattributes(type: RepoType): string {
  return type === "dataset" ? DEFAULT_DATASET_GITATTRIBUTES : DEFAULT_GITATTRIBUTES;
}

/** The key of a repo: huggingface.js's designation, a bare id for a model and `datasets/` before a dataset's. */
export function repoKey(type: RepoType, id: string): string {
  return type === "dataset" ? `datasets/${id}` : id;
}

export function parseRepoKey(key: string): { type: RepoType; id: string } {
  return key.startsWith("datasets/") ? { type: "dataset", id: key.slice("datasets/".length) } : { type: "model", id: key };
}

/** The plural the Hub puts in API paths: `/api/models/…`, `/api/datasets/…`. */
export function typePlural(type: RepoType): "models" | "datasets" {
  return type === "dataset" ? "datasets" : "models";
}

/** `models` → model, `datasets` → dataset; undefined for any other path segment. */
export function typeOfPlural(segment: string | undefined): RepoType | undefined {
  return segment === "models" ? "model" : segment === "datasets" ? "dataset" : undefined;
}

/** Where a repo lives on the website (and in resolve URLs): `/org/name` or `/datasets/org/name`. */
export function repoWebPath(repo: Pick<Repo, "type" | "id">): string {
  return repo.type === "dataset" ? `/datasets/${repo.id}` : `/${repo.id}`;
}

/** LFS patterns of a .gitattributes file, as basename/path globs. */
export function lfsPatterns(gitattributes: string): RegExp[] {
  const patterns: RegExp[] = [];
  for (const line of gitattributes.split("\n")) {
    const [pattern, ...attrs] = line.trim().split(/\s+/);
    if (!pattern || pattern.startsWith("#") || !attrs.includes("filter=lfs")) continue;
    const source = pattern
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*\*\//g, "\u0000")
      .replace(/\*/g, "[^/]*")
      .replace(/\?/g, "[^/]")
      .replace(/\u0000/g, "(?:.*/)?");
    // A pattern without a slash matches the basename anywhere, as in git.
    patterns.push(new RegExp(pattern.includes("/") ? `^${source}$` : `(?:^|/)${source}$`));
  }
  return patterns;
}

export function newCommitOid(): string {
  return createHash("sha1").update(randomBytes(32)).digest("hex");
}

/** Content-addressed storage on disk, so large LFS objects are never held in memory. */
export class ObjectStore {
  readonly dir: string;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "hub-emulator-"));
  }

  pathOf(sha256: string): string {
    return join(this.dir, sha256);
  }

  has(sha256: string): boolean {
    return existsSync(this.pathOf(sha256));
  }

  put(content: Buffer): string {
    const sha = sha256Hex(content);
    if (!this.has(sha)) writeFileSync(this.pathOf(sha), content);
    return sha;
  }

  /** Moves a fully written and hash-checked temp file into the store. */
  adopt(tempPath: string, sha256: string): void {
    if (this.has(sha256)) rmSync(tempPath, { force: true });
    else renameSync(tempPath, this.pathOf(sha256));
  }

  tempPath(): string {
    return join(this.dir, `tmp-${randomBytes(8).toString("hex")}`);
  }

  destroy(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function createEmptyRepo(id: string, options: { private?: boolean; type?: RepoType }): Repo {
  const type = options.type ?? "model";
  return {
    id,
    type,
    key: repoKey(type, id),
    private: options.private ?? false,
    gated: false,
    readers: new Set(),
    branches: new Map(),
    tags: new Map(),
    pullRequests: new Map(),
    commits: new Map(),
    lfsObjects: new Set(),
    internalId: randomBytes(12).toString("hex"),
    createdAt: new Date(),
  };
}

/** A branch, tag, `refs/pr/N` or full commit oid → commit oid, as the Hub resolves revisions. */
export function resolveRevision(repo: Repo, revision: string): string | undefined {
  if (revision === "HEAD") return repo.branches.get("main");
  const branch = repo.branches.get(revision) ?? repo.branches.get(revision.replace(/^refs\/heads\//, ""));
  if (branch) return branch;
  const tag = repo.tags.get(revision) ?? repo.tags.get(revision.replace(/^refs\/tags\//, ""));
  if (tag) return tag;
  const pr = /^refs\/pr\/(\d+)$/.exec(revision);
  if (pr) return repo.pullRequests.get(Number(pr[1]));
  if (/^[0-9a-f]{40}$/.test(revision) && repo.commits.has(revision)) return revision;
  return undefined;
}

export interface FileChange {
  path: string;
  /** Present for additions; absent for deletions. */
  sha256?: string;
  size?: number;
  lfs?: boolean;
  /** Regular files need their bytes for the git oid. */
  content?: Buffer;
  deleteFolder?: boolean;
}

/** Builds a commit on top of `parent` (undefined for a root commit) and records it; refs are moved by the caller. */
export function makeCommit(repo: Repo, params: { parent?: string; title: string; message?: string; changes: FileChange[] }): Commit {
  const oid = newCommitOid();
  const files = new Map(params.parent ? repo.commits.get(params.parent)!.files : []);
  for (const change of params.changes) {
    if (change.sha256 === undefined) {
      if (change.deleteFolder) {
        const prefix = change.path.replace(/\/?$/, "/");
        for (const path of [...files.keys()]) if (path.startsWith(prefix)) files.delete(path);
      } else {
        files.delete(change.path);
      }
      continue;
    }
    const size = change.size!;
    const gitOid = change.lfs ? gitBlobSha1(lfsPointer(change.sha256, size)) : gitBlobSha1(change.content!);
    files.set(change.path, { path: change.path, size, sha256: change.sha256, gitOid, lfs: Boolean(change.lfs), lastCommit: oid });
  }
  const commit: Commit = {
    oid,
    parents: params.parent ? [params.parent] : [],
    title: params.title,
    message: params.message ?? "",
    date: new Date(),
    files,
  };
  repo.commits.set(oid, commit);
  return commit;
}

/** Directory entries implied by the file paths of a commit. */
export function directoriesOf(files: Iterable<string>): Set<string> {
  const dirs = new Set<string>();
  for (const path of files) {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i += 1) dirs.add(parts.slice(0, i).join("/"));
  }
  return dirs;
}
