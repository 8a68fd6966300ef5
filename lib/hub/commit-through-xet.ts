/**
 * One commit whose large files go through Xet, in the Hub's order: preupload (which files are LFS), the Xet
 * upload of those (xet-upload.ts), the LFS batch (which must now find every object stored), then the NDJSON
 * commit (LFS pointers by sha256, small files inline). The commit goes through HubHttp's idempotent commit, so a
 * lost answer never makes a second commit. Files are read once: the library's commit would hash them again.
 */
import { createHash } from "node:crypto";
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { DiskFileBlob } from "./disk-file-blob.js";
import { uploadThroughXet, type XetGrant } from "./xet-upload.js";

export interface XetCommitFile {
  path: string;
  blob: Blob | DiskFileBlob;
  /** The same file in the base model, when it is on disk. */
  base?: DiskFileBlob;
}

export interface XetCommitParams {
  hubUrl: string;
  repo: string;
  branch: string;
  createPr: boolean;
  token: string;
  title: string;
  description?: string;
  files: XetCommitFile[];
  grant: XetGrant;
  fetch: typeof fetch;
  onPhase?: (phase: "preupload" | "upload" | "commit") => void;
  onProgress?: (bytesDone: number) => void;
}

export interface XetCommitResult {
  commitOid: string;
  commitUrl: string;
  pullRequestUrl?: string;
}

/** `GET /api/models/{repo}/xet-write-token/{rev}`: the CAS and a token for it, or undefined when the Hub has no Xet. */
export async function xetWriteGrant(params: { hubUrl: string; repo: string; branch: string; token: string; fetch: typeof fetch }): Promise<XetGrant | undefined> {
  const response = await params.fetch(`${params.hubUrl}/api/models/${params.repo}/xet-write-token/${encodeURIComponent(params.branch)}`, { headers: { Authorization: `Bearer ${params.token}` } });
  if (response.status === 404 || response.status === 405 || response.status === 501) {
    await response.body?.cancel().catch(() => undefined);
    return undefined;
  }
  if (!response.ok) {
    // Let the library's path meet the same refusal and report it with the Hub's words.
    await response.body?.cancel().catch(() => undefined);
    return undefined;
  }
  const body = (await response.json()) as { casUrl?: unknown; accessToken?: unknown };
  if (typeof body.casUrl !== "string" || typeof body.accessToken !== "string") return undefined;
  return { casUrl: body.casUrl.replace(/\/+$/, ""), accessToken: body.accessToken };
}

async function hubJson(fetcher: typeof fetch, url: string, init: RequestInit, what: string): Promise<unknown> {
  const response = await fetcher(url, init);
  if (!response.ok) {
    let detail = "";
    try {
      detail = ((await response.json()) as { error?: string }).error ?? "";
    } catch {
      detail = "";
    }
    const code = response.status === 401 || response.status === 403 ? ErrorCodes.HUB_UNAUTHORIZED : ErrorCodes.HUB;
    throw new AbliterateError(code, `the Hub refused ${what} (HTTP ${response.status}${detail ? `: ${detail}` : ""})`, { status: response.status });
  }
  return response.json();
}

async function sha256Of(blob: Blob | DiskFileBlob): Promise<string> {
  const hash = createHash("sha256");
  const stream = "nodeStream" in blob ? blob.nodeStream() : blob.stream();
  for await (const part of stream as AsyncIterable<Uint8Array>) hash.update(part);
  return hash.digest("hex");
}

/** Large files whose bytes the branch already has at the same path (same size, then same sha256). */
async function filesAlreadyThere(params: XetCommitParams, api: string, auth: Record<string, string>, large: XetCommitFile[]): Promise<Map<string, { path: string; size: number; sha256: string; xetHash: string }>> {
  const found = new Map<string, { path: string; size: number; sha256: string; xetHash: string }>();
  if (large.length === 0) return found;
  let entries: { path?: string; lfs?: { oid?: string; size?: number } }[];
  try {
    entries = (await hubJson(params.fetch, `${api}/paths-info/${encodeURIComponent(params.branch)}`, { method: "POST", headers: { ...auth, "Content-Type": "application/json" }, body: JSON.stringify({ paths: large.map((file) => file.path), expand: false }) }, "the file listing")) as typeof entries;
  } catch {
    return found;
  }
  for (const file of large) {
    const remote = Array.isArray(entries) ? entries.find((entry) => entry.path === file.path) : undefined;
    if (!remote?.lfs?.oid || remote.lfs.size !== file.blob.size) continue;
    const sha256 = await sha256Of(file.blob);
    if (sha256 === remote.lfs.oid) found.set(file.path, { path: file.path, size: file.blob.size, sha256, xetHash: "" });
  }
  return found;
}

export async function commitThroughXet(params: XetCommitParams): Promise<XetCommitResult> {
  const auth = { Authorization: `Bearer ${params.token}` };
  const query = params.createPr ? "?create_pr=1" : "";
  const api = `${params.hubUrl}/api/models/${params.repo}`;
  params.onPhase?.("preupload");
  const modes = new Map<string, string>();
  for (let start = 0; start < params.files.length; start += 100) {
    const batch = params.files.slice(start, start + 100);
    const files = await Promise.all(batch.map(async (file) => ({ path: file.path, size: file.blob.size, sample: Buffer.from(await file.blob.slice(0, 512).arrayBuffer()).toString("base64") })));
    const answer = (await hubJson(params.fetch, `${api}/preupload/${encodeURIComponent(params.branch)}${query}`, { method: "POST", headers: { ...auth, "Content-Type": "application/json" }, body: JSON.stringify({ files }) }, "the preupload")) as { files?: { path: string; uploadMode: string }[] };
    for (const file of answer.files ?? []) modes.set(file.path, file.uploadMode);
  }
  const large = params.files.filter((file) => modes.get(file.path) === "lfs");
  // A file the branch already holds with the same size is hashed first: when it is the same, nothing is sent.
  const unchanged = await filesAlreadyThere(params, api, auth, large);
  params.onPhase?.("upload");
  const fresh = await uploadThroughXet({
    files: large.filter((file) => !unchanged.has(file.path)).map((file) => ({ path: file.path, blob: file.blob as DiskFileBlob, ...(file.base ? { base: file.base } : {}) })),
    grant: params.grant,
    fetch: params.fetch,
    onProgress: params.onProgress,
  });
  const uploaded = [...fresh, ...unchanged.values()];
  const shaOf = new Map(uploaded.map((file) => [file.path, file]));

  // The Hub must now know every object; one it still wants uploaded was not registered, and is not committed.
  const objects = uploaded.map((file) => ({ oid: file.sha256, size: file.size }));
  for (let start = 0; start < objects.length; start += 100) {
    const answer = (await hubJson(
      params.fetch,
      `${params.hubUrl}/${params.repo}.git/info/lfs/objects/batch`,
      {
        method: "POST",
        headers: { ...auth, Accept: "application/vnd.git-lfs+json", "Content-Type": "application/vnd.git-lfs+json" },
        body: JSON.stringify({ operation: "upload", transfers: ["basic", "multipart", "xet"], hash_algo: "sha_256", ...(params.createPr ? {} : { ref: { name: params.branch } }), objects: objects.slice(start, start + 100) }),
      },
      "the LFS batch",
    )) as { objects?: { oid: string; actions?: { upload?: unknown }; error?: { message?: string } }[] };
    const missing = (answer.objects ?? []).filter((object) => object.actions?.upload || object.error);
    if (missing.length > 0) {
      const paths = uploaded.filter((file) => missing.some((object) => object.oid === file.sha256)).map((file) => file.path);
      throw new AbliterateError(ErrorCodes.HUB, `the Hub did not register the Xet upload of ${paths.join(", ")}; nothing was committed`);
    }
  }

  params.onPhase?.("commit");
  const lines: unknown[] = [{ key: "header", value: { summary: params.title, ...(params.description ? { description: params.description } : {}) } }];
  for (const file of params.files) {
    const done = shaOf.get(file.path);
    if (done) lines.push({ key: "lfsFile", value: { path: file.path, algo: "sha256", size: done.size, oid: done.sha256 } });
    else lines.push({ key: "file", value: { path: file.path, encoding: "base64", content: Buffer.from(await file.blob.arrayBuffer()).toString("base64") } });
  }
  const result = (await hubJson(
    params.fetch,
    `${api}/commit/${encodeURIComponent(params.branch)}${query}`,
    { method: "POST", headers: { ...auth, "Content-Type": "application/x-ndjson" }, body: lines.map((line) => JSON.stringify(line)).join("\n") },
    "the commit",
  )) as { commitOid?: unknown; commitUrl?: unknown; pullRequestUrl?: unknown };
  if (typeof result.commitOid !== "string" || typeof result.commitUrl !== "string") throw new AbliterateError(ErrorCodes.HUB, `the Hub did not confirm the commit to ${params.repo}`);
  return { commitOid: result.commitOid, commitUrl: result.commitUrl, ...(typeof result.pullRequestUrl === "string" ? { pullRequestUrl: result.pullRequestUrl } : {}) };
}
