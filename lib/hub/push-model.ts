/**
 * Pushes a folder to a Hub model repo in one commit: creates the repo when missing (409 means it exists),
 * creates the branch when asked for one, writes the model card, and commits every file through @huggingface/hub
 * (regular upload for small text files, LFS for the rest, streamed from disk as DiskFileBlob).
 */
import { readFile, readdir, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { commitIter, createBranch, createRepo, HubApiError, modelInfo, type CommitOperation } from "@huggingface/hub";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { PROVENANCE_FILE, readProvenance, type Provenance } from "../provenance/provenance.js";
import { DiskFileBlob } from "./disk-file-blob.js";
import { EventChannel } from "../event-channel.js";
import { hubEndpoint, isHubOffline } from "./hub-endpoint.js";
import { toHubError, type HubErrorContext } from "./hub-errors.js";
import { HubHttp } from "./hub-http.js";
import { isValidRepoId } from "./parse-model-ref.js";
import { buildModelCard, licenseOfCard, type BaseLicense } from "./model-card.js";

export interface PushModelParams {
  dir: string;
  repo: string;
  token?: string;
  private?: boolean;
  /** Default "main"; created from main when missing. */
  branch?: string;
  message?: string;
  /** Open a pull request instead of committing to the branch. */
  createPr?: boolean;
  endpoint?: string;
  /** The base model's folder (e.g. its cache snapshot), read for its license. */
  baseModelDir?: string;
}

export type UploadPhase = "hash" | "upload";

export type UploadEvent =
  | { type: "repo"; repo: string; created: boolean }
  | { type: "plan"; files: number; bytesTotal: number }
  | { type: "phase"; phase: "preupload" | UploadPhase | "commit" }
  | { type: "progress"; phase: UploadPhase; bytesDone: number; bytesTotal: number }
  | { type: "retry"; url: string; attempt: number; delayMs: number; reason: string };

export interface PushResult {
  repo: string;
  branch: string;
  commitOid: string;
  commitUrl: string;
  pullRequestUrl?: string;
  created: boolean;
  files: number;
  bytes: number;
}

// Bookkeeping that must not travel: VCS and cache folders, interrupted downloads, our own locks.
const SKIPPED = /^(\.git|\.cache|\.DS_Store|\.huggingface)$|\.(incomplete|lock|partial)$/;

async function listFolder(dir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (current: string) => {
    for (const entry of await readdir(current, { withFileTypes: true })) {
      if (SKIPPED.test(entry.name)) continue;
      const path = join(current, entry.name);
      // stat follows symlinks, so a cache snapshot pushes the blobs' contents.
      const info = await stat(path);
      if (info.isDirectory()) await walk(path);
      else if (info.isFile()) found.push(relative(dir, path).split(sep).join("/"));
    }
  };
  await walk(dir);
  return found.sort();
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch {
    return undefined;
  }
}

/** License for a card that has none: the base folder's card, then the base repo's card data on the Hub. */
async function findBaseLicense(params: PushModelParams, provenance: Provenance | undefined, http: HubHttp, endpoint: string): Promise<BaseLicense | undefined> {
  const local = params.baseModelDir ? licenseOfCard(await readIfExists(join(params.baseModelDir, "README.md"))) : undefined;
  if (local) return local;
  const base = provenance?.source?.repo;
  if (!base) return undefined;
  try {
    const info = await modelInfo({ name: base, additionalFields: ["cardData"], hubUrl: endpoint, accessToken: params.token, fetch: http.fetch });
    const card = info.cardData as Record<string, unknown> | undefined;
    if (typeof card?.license !== "string") return undefined;
    return {
      license: card.license,
      ...(typeof card.license_name === "string" ? { licenseName: card.license_name } : {}),
      ...(typeof card.license_link === "string" ? { licenseLink: card.license_link } : {}),
    };
  } catch {
    // The license is a courtesy: a base repo we cannot read leaves the card without one.
    return undefined;
  }
}

export async function* pushModel(params: PushModelParams): AsyncGenerator<UploadEvent, PushResult> {
  const endpoint = params.endpoint ?? hubEndpoint();
  const branch = params.branch ?? "main";
  const { repo } = params;
  if (!isValidRepoId(repo) || !repo.includes("/")) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `"${repo}" is not a repo id to push to (expected namespace/name)`);
  }
  if (isHubOffline()) {
    throw new AbliterateError(ErrorCodes.HUB_OFFLINE, `HF_HUB_OFFLINE is set, so nothing can be pushed to ${repo}; unset it to push`);
  }
  if (!params.token) {
    throw new AbliterateError(ErrorCodes.HUB_UNAUTHORIZED, `pushing to ${repo} needs a token with write access: set HF_TOKEN, run \`huggingface-cli login\`, or pass --token`);
  }
  const dirInfo = await stat(params.dir).catch(() => undefined);
  if (!dirInfo?.isDirectory()) throw new AbliterateError(ErrorCodes.IO, `${params.dir} is not a folder`, { file: params.dir });

  const events = new EventChannel<UploadEvent>();
  const uploaded = new Map<string, number>();
  const http = new HubHttp({
    // A commit whose answer was lost is looked up before it is sent again: one push, one commit.
    idempotentCommits: true,
    onRetry: (info) => events.push({ type: "retry", ...info }),
    onUploadProgress: ({ path, part, loaded }) => {
      uploaded.set(`${path}\u0000${part ?? ""}`, loaded);
      events.push({ type: "progress", phase: "upload", bytesDone: uploadedBytes(), bytesTotal: bytesTotal }, (queued) => queued.type === "progress" && queued.phase === "upload");
    },
  });
  const context: HubErrorContext = { repo, revision: branch, endpoint, token: params.token, action: "push", http };
  const credentials = { accessToken: params.token, hubUrl: endpoint, fetch: http.fetch };

  const files = await listFolder(params.dir);
  const provenance = files.includes(PROVENANCE_FILE) ? await readProvenance(params.dir) : undefined;
  const existingCard = await readIfExists(join(params.dir, "README.md"));
  const baseLicense = licenseOfCard(existingCard) ? undefined : yield* events.until(findBaseLicense(params, provenance, http, endpoint));
  const card = buildModelCard({ repo, provenance, existing: existingCard, baseLicense, endpoint });

  const operations: CommitOperation[] = [];
  const sizes = new Map<string, number>();
  for (const path of files.filter((file) => file !== "README.md")) {
    const blob = await DiskFileBlob.open(join(params.dir, ...path.split("/")));
    operations.push({ operation: "addOrUpdate", path, content: blob });
    sizes.set(path, blob.size);
  }
  const cardBlob = new Blob([card]);
  operations.push({ operation: "addOrUpdate", path: "README.md", content: cardBlob });
  sizes.set("README.md", cardBlob.size);
  const bytesTotal = [...sizes.values()].reduce((sum, size) => sum + size, 0);
  const completed = new Set<string>();
  const uploadedBytes = () => {
    let sum = 0;
    for (const [path, size] of sizes) {
      if (completed.has(path)) sum += size;
      else for (const [key, loaded] of uploaded) if (key.startsWith(`${path}\u0000`)) sum += loaded;
    }
    return Math.min(sum, bytesTotal);
  };

  let created = true;
  try {
    yield* events.until(
      createRepo({ repo, ...credentials, accessToken: params.token, ...(params.private !== undefined ? { visibility: params.private ? "private" : "public" } : {}) }).catch((error: unknown) => {
        if (error instanceof HubApiError && error.statusCode === 409) {
          created = false;
          return undefined;
        }
        throw error;
      }),
    );
    yield { type: "repo", repo, created };
    if (branch !== "main") {
      yield* events.until(
        createBranch({ repo, branch, ...credentials }).catch((error: unknown) => {
          if (error instanceof HubApiError && error.statusCode === 409) return undefined;
          throw error;
        }),
      );
    }
  } catch (error) {
    throw toHubError(error, context);
  }

  yield { type: "plan", files: operations.length, bytesTotal };
  const hashed = new Map<string, number>();
  const commit = commitIter({
    repo,
    ...credentials,
    operations,
    title: params.message ?? (provenance ? `Upload abliterated model${provenance.source?.repo ? ` of ${provenance.source.repo}` : ""}` : "Upload model with abliterate"),
    ...(provenance ? { description: `Made with abliterate ${provenance.tool?.version ?? ""}; verification ${provenance.verification?.passed ? "passed" : "did not pass"}.` } : {}),
    branch,
    isPullRequest: params.createPr ?? false,
    useXet: false,
  });
  let output: Awaited<ReturnType<typeof commit.next>>;
  try {
    for (;;) {
      output = yield* events.until(commit.next());
      if (output.done) break;
      const event = output.value;
      if (event.event === "phase") {
        const phase = event.phase === "preuploading" ? "preupload" : event.phase === "uploadingLargeFiles" ? "hash" : "commit";
        yield { type: "phase", phase };
      } else if (event.state === "hashing") {
        hashed.set(event.path, event.progress * (sizes.get(event.path) ?? 0));
        events.push({ type: "progress", phase: "hash", bytesDone: Math.round([...hashed.values()].reduce((a, b) => a + b, 0)), bytesTotal }, (queued) => queued.type === "progress" && queued.phase === "hash");
      } else if (event.state === "uploading" && event.progress >= 1) {
        completed.add(event.path);
        events.push({ type: "progress", phase: "upload", bytesDone: uploadedBytes(), bytesTotal }, (queued) => queued.type === "progress" && queued.phase === "upload");
      }
    }
  } catch (error) {
    throw toHubError(error, context);
  }
  yield* events.drain();
  const result = output.value;
  if (!result) throw new AbliterateError(ErrorCodes.HUB, `the Hub did not confirm the commit to ${repo}`);
  for (const path of sizes.keys()) completed.add(path);
  yield { type: "progress", phase: "upload", bytesDone: bytesTotal, bytesTotal };
  return {
    repo,
    branch,
    commitOid: result.commit.oid,
    commitUrl: result.commit.url,
    ...(result.pullRequestUrl ? { pullRequestUrl: result.pullRequestUrl } : {}),
    created,
    files: operations.length,
    bytes: bytesTotal,
  };
}
