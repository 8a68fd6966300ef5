/**
 * Pushes a folder to a Hub model repo in one commit: creates the repo when missing (409 means it exists),
 * creates the branch when asked for one, writes the model card, and commits every file through @huggingface/hub
 * (regular upload for small text files; large files through Xet when the Hub offers it, which deduplicates
 * their chunks against everything the CAS holds (the base model among it), else LFS; streamed from disk as
 * DiskFileBlob). `HF_HUB_DISABLE_XET=1` forces LFS, as in huggingface_hub.
 * Only regular files inside the folder are pushed: links that leave it, dangling or looping links, links to
 * folders, and dot-entries (.git, .env, …; .gitattributes excepted) are skipped and reported.
 */
import { lstat, readFile, readdir, realpath, stat } from "node:fs/promises";
import { basename, dirname, join, relative, sep } from "node:path";
import { commitIter, createBranch, createRepo, HubApiError, modelInfo, type CommitOperation } from "@huggingface/hub";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { PROVENANCE_FILE, readProvenance, type Provenance } from "../provenance/provenance.js";
import { DiskFileBlob } from "./disk-file-blob.js";
import { EventChannel } from "../event-channel.js";
import { hubEndpoint, isHubOffline, isTrueEnv } from "./hub-endpoint.js";
import { toHubError, type HubErrorContext } from "./hub-errors.js";
import { HubHttp } from "./hub-http.js";
import { checkBranchName, isValidRepoId, repoIdProblem } from "./parse-model-ref.js";
import { XetUploadStats, type FileTransfer } from "./xet-upload-stats.js";
import { commitThroughXet, xetWriteGrant, type XetCommitFile } from "./commit-through-xet.js";
import { findCachedSnapshot } from "./cached-snapshot.js";
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

export type { FileTransfer };

export interface TransferSummary {
  /** "xet" when the Hub took the large files through Xet, "lfs" otherwise. */
  protocol: "xet" | "lfs";
  /** Bytes of file content put on the wire (Xet: xorb bodies, compressed, retries included; LFS: file bytes). */
  bytesSent: number;
  /** File and xorb metadata (Xet shards). */
  metadataBytesSent: number;
  /** Bytes of large files the Hub already held and so were not sent. */
  bytesDeduplicated: number;
  /** Large files, one line each. */
  files: FileTransfer[];
}

export type UploadEvent =
  | { type: "skipped"; path: string; reason: string }
  | { type: "repo"; repo: string; created: boolean }
  | { type: "plan"; files: number; bytesTotal: number }
  | { type: "phase"; phase: "preupload" | UploadPhase | "commit" }
  | { type: "progress"; phase: UploadPhase; bytesDone: number; bytesTotal: number }
  | { type: "retry"; url: string; attempt: number; delayMs: number; reason: string }
  | { type: "waiting"; url: string; seconds: number }
  /** Xet: content bytes sent so far (the upload bar counts bytes processed, deduplicated ones included). */
  | { type: "sent"; bytesSent: number }
  /** After the commit, per large file: what was sent and what the Hub already had. */
  | ({ type: "file-transfer" } & FileTransfer);

export interface PushResult {
  repo: string;
  branch: string;
  commitOid: string;
  commitUrl: string;
  pullRequestUrl?: string;
  created: boolean;
  files: number;
  bytes: number;
  transfer: TransferSummary;
}

// Bookkeeping that must not travel: interrupted downloads and our own locks. Dot-entries are skipped apart.
const SKIPPED = /\.(incomplete|lock|partial)$/;

interface Listing {
  files: string[];
  skipped: { path: string; reason: string }[];
}

/** A cache snapshot (…/snapshots/<commit>) links its files to the repo's blobs/: those links are its content. */
function blobsOfSnapshot(dir: string): string | undefined {
  return basename(dirname(dir)) === "snapshots" && /^[0-9a-f]{40}$/.test(basename(dir)) ? join(dirname(dirname(dir)), "blobs") : undefined;
}

async function listFolder(dir: string): Promise<Listing> {
  const root = await realpath(dir);
  const blobs = blobsOfSnapshot(root);
  const found: string[] = [];
  const skipped: Listing["skipped"] = [];
  const inside = (path: string, folder: string) => path === folder || path.startsWith(`${folder}${sep}`);
  const walk = async (current: string) => {
    for (const entry of await readdir(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      const shown = relative(dir, path).split(sep).join("/");
      if (entry.name.startsWith(".") && entry.name !== ".gitattributes") {
        skipped.push({ path: shown, reason: "dot-entries (.git, .env, …) are not pushed" });
        continue;
      }
      if (SKIPPED.test(entry.name)) continue;
      const info = await lstat(path);
      if (info.isSymbolicLink()) {
        // Follow a link only to a regular file inside the folder (or, for a cache snapshot, in its blobs/).
        const target = await realpath(path).catch(() => undefined);
        const targetInfo = target ? await stat(target).catch(() => undefined) : undefined;
        if (!target || !targetInfo) skipped.push({ path: shown, reason: "dangling or looping symbolic link" });
        else if (targetInfo.isDirectory()) skipped.push({ path: shown, reason: "symbolic link to a folder" });
        else if (!targetInfo.isFile()) skipped.push({ path: shown, reason: "symbolic link to something that is not a regular file" });
        else if (!inside(target, root) && !(blobs && inside(target, blobs))) skipped.push({ path: shown, reason: `symbolic link out of the folder (to ${target})` });
        else found.push(shown);
        continue;
      }
      if (info.isDirectory()) await walk(path);
      else if (info.isFile()) found.push(shown);
      else skipped.push({ path: shown, reason: "not a regular file" });
    }
  };
  await walk(dir);
  return { files: found.sort(), skipped };
}

/**
 * The base model on disk, whose files' first chunks tell the Xet dedup index which base the upload derives from:
 * the folder given, else the cache snapshot of the source abliteration.json names.
 */
async function findBaseDir(params: PushModelParams, provenance: Provenance | undefined): Promise<string | undefined> {
  if (params.baseModelDir) return params.baseModelDir;
  const source = provenance?.source;
  if (!source?.repo) return undefined;
  try {
    const found = findCachedSnapshot({ repo: source.repo, revision: source.commit ?? source.revision ?? "main" });
    return "missing" in found ? undefined : found.dir;
  } catch {
    return undefined;
  }
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
    const problem = repoIdProblem(repo);
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `"${repo}" is not a repo id to push to (expected namespace/name${problem ? `; ${problem}` : ""})`);
  }
  checkBranchName(branch);
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
  const useXet = !isTrueEnv(process.env.HF_HUB_DISABLE_XET);
  const xetStats = new XetUploadStats();
  const http = new HubHttp({
    onSend: (request) => {
      const before = xetStats.xorbsSent;
      xetStats.observe(request);
      if (xetStats.xorbsSent !== before) events.push({ type: "sent", bytesSent: xetStats.bytesSent }, (queued) => queued.type === "sent");
    },
    onResponse: (url, response) => xetStats.observeResponse(url, response),
    // A commit whose answer was lost is looked up before it is sent again: one push, one commit.
    idempotentCommits: true,
    onRetry: (info) => events.push({ type: "retry", ...info }),
    onWaiting: (info) => events.push({ type: "waiting", ...info }),
    onUploadProgress: ({ path, part, loaded }) => {
      uploaded.set(`${path}\u0000${part ?? ""}`, loaded);
      events.push({ type: "progress", phase: "upload", bytesDone: uploadedBytes(), bytesTotal: bytesTotal }, (queued) => queued.type === "progress" && queued.phase === "upload");
    },
  });
  const context: HubErrorContext = { repo, revision: branch, endpoint, token: params.token, action: "push", http };
  const credentials = { accessToken: params.token, hubUrl: endpoint, fetch: http.fetch };

  const listing = await listFolder(params.dir);
  for (const skip of listing.skipped) yield { type: "skipped", ...skip };
  const files = listing.files;
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
  const title = params.message ?? (provenance ? `Upload abliterated model${provenance.source?.repo ? ` of ${provenance.source.repo}` : ""}` : "Upload model with abliterate");
  const description = provenance ? `Made with abliterate ${provenance.tool?.version ?? ""}; verification ${provenance.verification?.passed ? "passed" : "did not pass"}.` : undefined;
  let result: { commitOid: string; commitUrl: string; pullRequestUrl?: string };
  const grant = useXet ? yield* events.until(xetWriteGrant({ hubUrl: endpoint, repo, branch, token: params.token, fetch: http.fetch }).catch(() => undefined)) : undefined;
  try {
    if (grant) {
      xetStats.xetOffered = true;
      const baseDir = await findBaseDir(params, provenance);
      const files: XetCommitFile[] = [];
      for (const operation of operations) {
        if (operation.operation !== "addOrUpdate" || !(operation.content instanceof Blob)) continue;
        const base = baseDir ? await DiskFileBlob.open(join(baseDir, ...operation.path.split("/"))).catch(() => undefined) : undefined;
        files.push({ path: operation.path, blob: operation.content, ...(base ? { base } : {}) });
      }
      result = yield* events.until(
        commitThroughXet({
          hubUrl: endpoint,
          repo,
          branch,
          createPr: params.createPr ?? false,
          token: params.token,
          title,
          description,
          files,
          grant,
          fetch: http.fetch,
          onPhase: (phase) => events.push({ type: "phase", phase }),
          onProgress: (bytesDone) => events.push({ type: "progress", phase: "upload", bytesDone, bytesTotal }, (queued) => queued.type === "progress" && queued.phase === "upload"),
        }),
      );
    } else {
      result = yield* commitThroughLibrary();
    }
  } catch (error) {
    throw toHubError(error, context);
  }

  async function* commitThroughLibrary(): AsyncGenerator<UploadEvent, { commitOid: string; commitUrl: string; pullRequestUrl?: string }> {
    const hashed = new Map<string, number>();
    const commit = commitIter({ repo, ...credentials, operations, title, ...(description ? { description } : {}), branch, isPullRequest: params.createPr ?? false, useXet: false });
    let output: Awaited<ReturnType<typeof commit.next>>;
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
    const done = output.value;
    if (!done) throw new AbliterateError(ErrorCodes.HUB, `the Hub did not confirm the commit to ${repo}`);
    return { commitOid: done.commit.oid, commitUrl: done.commit.url, ...(done.pullRequestUrl ? { pullRequestUrl: done.pullRequestUrl } : {}) };
  }
  yield* events.drain();
  for (const path of sizes.keys()) completed.add(path);
  yield { type: "progress", phase: "upload", bytesDone: bytesTotal, bytesTotal };
  const transfer = summarizeTransfer(xetStats, sizes, uploaded);
  for (const file of transfer.files) yield { type: "file-transfer", ...file };
  return {
    repo,
    branch,
    commitOid: result.commitOid,
    commitUrl: result.commitUrl,
    ...(result.pullRequestUrl ? { pullRequestUrl: result.pullRequestUrl } : {}),
    created,
    files: operations.length,
    bytes: bytesTotal,
    transfer,
  };
}

/** What went on the wire: Xet's figures from its requests, or for LFS the bytes of the objects uploaded. */
function summarizeTransfer(xet: XetUploadStats, sizes: Map<string, number>, lfsUploaded: Map<string, number>): TransferSummary {
  const files = xet.perFile(sizes);
  if (xet.xetOffered) {
    return { protocol: "xet", bytesSent: xet.bytesSent, metadataBytesSent: xet.metadataBytesSent, bytesDeduplicated: files.reduce((sum, file) => sum + file.bytesDeduplicated, 0), files };
  }
  // LFS: an object is sent whole or (already stored) not at all.
  const sent = new Map<string, number>();
  for (const [key, loaded] of lfsUploaded) {
    const path = key.split("\u0000")[0];
    sent.set(path, (sent.get(path) ?? 0) + loaded);
  }
  const lfsFiles = files.map((file) => {
    const bytesNew = Math.min(file.bytes, sent.get(file.path) ?? 0);
    return { ...file, bytesNew, bytesDeduplicated: file.bytes - bytesNew };
  });
  return { protocol: "lfs", bytesSent: lfsFiles.reduce((sum, file) => sum + file.bytesNew, 0), metadataBytesSent: 0, bytesDeduplicated: lfsFiles.reduce((sum, file) => sum + file.bytesDeduplicated, 0), files: lfsFiles };
}
