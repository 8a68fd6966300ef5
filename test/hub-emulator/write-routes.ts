/**
 * Write side of the emulator: repo creation, branches, preupload, the git-lfs batch API with basic and multipart
 * transfers (every upload's size and sha256 are checked before the object is stored), and NDJSON commits that
 * refuse LFS pointers to objects never uploaded, move the branch, or open a pull request. Model and dataset repos
 * alike, under the paths the Hub gives each type.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream, rmSync } from "node:fs";
import { once } from "node:events";
import { finished } from "node:stream/promises";
import type { HubEmulator } from "./hub-emulator.js";
import { lfsPatterns, makeCommit, repoKey, repoWebPath, resolveRevision, typeOfPlural, typePlural, type FileChange, type Repo, type RepoType } from "./repo-store.js";
import { HttpError, isTruthy, originOf, readBody, readJson, sendJson } from "./http-util.js";

type Segments = string[];

export interface UploadSession {
  id: string;
  /** The repo's key (`org/name`, `datasets/org/name`). */
  repoKey: string;
  oid: string;
  size: number;
  chunkSize?: number;
  /** Multipart parts received: part number → temp file and its ETag. */
  parts: Map<number, { path: string; etag: string }>;
}

async function receiveToFile(req: IncomingMessage, path: string): Promise<{ sha256: string; md5: string; size: number }> {
  const sha = createHash("sha256");
  const md5 = createHash("md5");
  let size = 0;
  const out = createWriteStream(path);
  for await (const chunk of req) {
    const bytes = chunk as Buffer;
    sha.update(bytes);
    md5.update(bytes);
    size += bytes.length;
    if (!out.write(bytes)) await once(out, "drain");
  }
  out.end();
  await finished(out);
  return { sha256: sha.digest("hex"), md5: md5.digest("hex"), size };
}

function createRepoRoute(hub: HubEmulator, req: IncomingMessage, res: ServerResponse, body: Record<string, unknown>): void {
  const token = hub.authenticate(req);
  if (!token) throw new HttpError(401, "Invalid username or password.");
  const type = (body.type ?? "model") as RepoType;
  if (type !== "model" && type !== "dataset") throw new HttpError(400, `the emulator hosts model and dataset repos, not ${String(body.type)}`);
  const name = String(body.name ?? "");
  const namespace = typeof body.organization === "string" && body.organization ? body.organization : token.user;
  if (!/^[\w.-]+$/.test(name) || !/^[\w.-]+$/.test(namespace)) throw new HttpError(400, `invalid repo name ${namespace}/${name}`);
  if (!token.write || (namespace !== token.user && !token.orgs.includes(namespace))) {
    throw new HttpError(403, `You don't have the rights to create a ${type} under the namespace "${namespace}"`);
  }
  const id = `${namespace}/${name}`;
  const key = repoKey(type, id);
  const url = `${originOf(req)}${repoWebPath({ type, id })}`;
  if (hub.repos.has(key)) {
    sendJson(res, 409, { error: `You already created this ${type} repo`, url });
    return;
  }
  const isPrivate = body.visibility !== undefined ? body.visibility !== "public" : isTruthy(body.private);
  const repo = hub.createRepo(key, { private: isPrivate });
  if (Array.isArray(body.files) && body.files.length > 0) {
    hub.addFiles(key, (body.files as { path: string; content: string }[]).map((file) => ({ path: file.path, content: Buffer.from(file.content, "base64") })));
  }
  sendJson(res, 200, { url, name: id, id: repo.internalId });
}

function preupload(hub: HubEmulator, res: ServerResponse, repo: Repo, revision: string, body: Record<string, unknown>): void {
  const head = resolveRevision(repo, revision);
  if (!head) throw new HttpError(404, `Invalid rev id: ${revision}`, "RevisionNotFound");
  const patterns = typeof body.gitAttributes === "string" ? lfsPatterns(body.gitAttributes) : hub.lfsPatternsAt(repo, head);
  const files = Array.isArray(body.files) ? (body.files as { path: string; size: number; sample?: string }[]) : [];
  sendJson(res, 200, {
    files: files.map((file) => {
      const sample = Buffer.from(file.sample ?? "", "base64");
      const lfs = file.size > hub.options.lfsThreshold || patterns.some((pattern) => pattern.test(file.path)) || sample.includes(0);
      return { path: file.path, uploadMode: lfs ? "lfs" : "regular", shouldIgnore: false };
    }),
    commitOid: head,
  });
}

function lfsBatch(hub: HubEmulator, req: IncomingMessage, res: ServerResponse, key: string, body: Record<string, unknown>): void {
  const operation = body.operation;
  const { repo } = operation === "upload" ? hub.writableRepo(req, key) : hub.readableRepo(req, key, { files: true });
  const transfers = Array.isArray(body.transfers) ? (body.transfers as string[]) : ["basic"];
  const multipartOffered = transfers.includes("multipart");
  // The Hub answers "xet" to clients that offer it: every object to upload then points at the write-token route,
  // with a first token in the headers, and the bytes go to the CAS instead of an LFS PUT.
  const xet = hub.xet && operation === "upload" && transfers.includes("xet") ? hub.xet : undefined;
  const refName = typeof (body.ref as { name?: unknown } | undefined)?.name === "string" ? String((body.ref as { name: string }).name).replace(/^refs\/heads\//, "") : "main";
  const sessionId = randomBytes(8).toString("hex");
  const origin = originOf(req);
  const objects = (Array.isArray(body.objects) ? body.objects : []) as { oid: string; size: number }[];
  const answer = objects.map(({ oid, size }) => {
    if (!/^[0-9a-f]{64}$/.test(String(oid)) || !Number.isInteger(size) || size < 0) {
      return { oid, size, error: { code: 422, message: "invalid oid or size" } };
    }
    const stored = repo.lfsObjects.has(oid) && hub.store.has(oid);
    if (operation === "download") {
      if (!stored) return { oid, size, error: { code: 404, message: "Object does not exist" } };
      return { oid, size, authenticated: true, actions: { download: { href: `${hub.cdnOrigin(req)}${hub.signedCdnPath(repo, oid, oid)}` } } };
    }
    // Objects the repo already holds get no actions: the client skips their upload.
    if (stored) return { oid, size, authenticated: true };
    if (xet) {
      const { accessToken, exp } = xet.issueToken(key, "write");
      const href = `${origin}/api/${typePlural(repo.type)}/${repo.id}/xet-write-token/${encodeURIComponent(refName)}`;
      const header = { "X-Xet-Cas-Url": `${origin}/cas`, "X-Xet-Access-Token": accessToken, "X-Xet-Token-Expiration": String(exp), "X-Xet-Session-Id": sessionId };
      return { oid, size, authenticated: true, actions: { upload: { href, header } } };
    }
    const session: UploadSession = { id: randomBytes(12).toString("hex"), repoKey: key, oid, size, parts: new Map() };
    hub.uploads.set(session.id, session);
    const base = `${origin}/lfs-upload/${session.id}`;
    const verify = { href: `${base}/verify`, header: {} };
    if (multipartOffered && size > hub.options.multipartThreshold) {
      const chunkSize = hub.options.multipartChunkSize;
      session.chunkSize = chunkSize;
      const header: Record<string, string> = { chunk_size: String(chunkSize) };
      const parts = Math.ceil(size / chunkSize);
      for (let part = 1; part <= parts; part += 1) header[String(part).padStart(5, "0")] = `${base}/part/${part}`;
      return { oid, size, authenticated: true, actions: { upload: { href: `${base}/complete`, header }, verify } };
    }
    return { oid, size, authenticated: true, actions: { upload: { href: base }, verify } };
  });
  const payload = Buffer.from(JSON.stringify({ transfer: xet ? "xet" : multipartOffered ? "multipart" : "basic", objects: answer, hash_algo: "sha256" }));
  res.writeHead(200, { "Content-Type": "application/vnd.git-lfs+json", "Content-Length": payload.length });
  res.end(payload);
}

async function storeVerified(hub: HubEmulator, session: UploadSession, tempPath: string, received: { sha256: string; size: number }): Promise<void> {
  if (received.size !== session.size || received.sha256 !== session.oid) {
    rmSync(tempPath, { force: true });
    throw new HttpError(400, `uploaded content does not match the announced object: expected sha256 ${session.oid} (${session.size} bytes), got ${received.sha256} (${received.size} bytes)`);
  }
  hub.store.adopt(tempPath, session.oid);
  hub.repos.get(session.repoKey)?.lfsObjects.add(session.oid);
}

async function completeMultipart(hub: HubEmulator, res: ServerResponse, session: UploadSession, body: Record<string, unknown>): Promise<void> {
  if (body.oid !== session.oid) throw new HttpError(400, "completion oid does not match the upload");
  // Completing again (a client retrying a completion whose answer it lost) succeeds, as on S3.
  if (session.parts.size === 0 && hub.repos.get(session.repoKey)?.lfsObjects.has(session.oid)) {
    sendJson(res, 200, {});
    return;
  }
  const parts = (Array.isArray(body.parts) ? body.parts : []) as { partNumber: number; etag: string }[];
  const expected = Math.ceil(session.size / session.chunkSize!);
  if (parts.length !== expected) throw new HttpError(400, `expected ${expected} parts, got ${parts.length}`);
  const tempPath = hub.store.tempPath();
  const out = createWriteStream(tempPath);
  const sha = createHash("sha256");
  let size = 0;
  for (const [index, part] of [...parts].sort((a, b) => a.partNumber - b.partNumber).entries()) {
    const received = session.parts.get(index + 1);
    if (part.partNumber !== index + 1 || !received || received.etag !== String(part.etag).replace(/"/g, "")) {
      out.destroy();
      rmSync(tempPath, { force: true });
      throw new HttpError(400, `part ${index + 1} is missing or its ETag does not match`);
    }
    for await (const chunk of createReadStream(received.path)) {
      sha.update(chunk as Buffer);
      size += (chunk as Buffer).length;
      if (!out.write(chunk)) await once(out, "drain");
    }
  }
  out.end();
  await finished(out);
  await storeVerified(hub, session, tempPath, { sha256: sha.digest("hex"), size });
  for (const part of session.parts.values()) rmSync(part.path, { force: true });
  session.parts.clear();
  sendJson(res, 200, {});
}

async function uploadRoute(hub: HubEmulator, req: IncomingMessage, res: ServerResponse, s: Segments): Promise<void> {
  const session = hub.uploads.get(s[1]);
  if (!session) throw new HttpError(404, "unknown upload");
  if (req.method === "PUT" && s.length === 2 && session.chunkSize === undefined) {
    const tempPath = hub.store.tempPath();
    await storeVerified(hub, session, tempPath, await receiveToFile(req, tempPath));
    res.writeHead(200, { "Content-Length": "0" });
    res.end();
    return;
  }
  if (req.method === "PUT" && s.length === 4 && s[2] === "part" && session.chunkSize !== undefined) {
    const part = Number(s[3]);
    if (!Number.isInteger(part) || part < 1 || part > Math.ceil(session.size / session.chunkSize)) throw new HttpError(400, "invalid part number");
    const tempPath = hub.store.tempPath();
    const received = await receiveToFile(req, tempPath);
    session.parts.set(part, { path: tempPath, etag: received.md5 });
    res.writeHead(200, { ETag: `"${received.md5}"`, "Content-Length": "0" });
    res.end();
    return;
  }
  if (req.method === "POST" && s.length === 3 && s[2] === "complete" && session.chunkSize !== undefined) {
    await completeMultipart(hub, res, session, await readJson(req));
    return;
  }
  if (req.method === "POST" && s.length === 3 && s[2] === "verify") {
    const body = await readJson(req);
    const repo = hub.repos.get(session.repoKey);
    if (body.oid !== session.oid || !repo?.lfsObjects.has(session.oid)) throw new HttpError(404, "object not uploaded");
    sendJson(res, 200, {});
    return;
  }
  throw new HttpError(405, "unsupported upload operation");
}

interface NdjsonLine {
  key: string;
  value: Record<string, unknown>;
}

async function commitRoute(hub: HubEmulator, req: IncomingMessage, res: ServerResponse, repo: Repo, revision: string, url: URL): Promise<void> {
  const createPr = isTruthy(url.searchParams.get("create_pr"));
  const text = (await readBody(req)).toString("utf8");
  let lines: NdjsonLine[];
  try {
    lines = text.split("\n").filter((line) => line.trim() !== "").map((line) => JSON.parse(line) as NdjsonLine);
  } catch {
    throw new HttpError(400, "commit payload is not valid NDJSON");
  }
  const header = lines.find((line) => line.key === "header")?.value;
  if (!header || typeof header.summary !== "string" || header.summary.trim() === "") throw new HttpError(400, "commit header with a summary is required");

  const pr = /^refs\/pr\/(\d+)$/.exec(revision);
  const head = pr ? repo.pullRequests.get(Number(pr[1])) : repo.branches.get(revision);
  if (!head) throw new HttpError(404, `Invalid rev id: ${revision}`, "RevisionNotFound");
  const parentCommit = typeof header.parentCommit === "string" ? header.parentCommit : undefined;
  if (parentCommit && !repo.commits.has(parentCommit)) throw new HttpError(400, `unknown parent commit ${parentCommit}`);
  if (parentCommit && !createPr && parentCommit !== head) throw new HttpError(412, "A commit has happened since. Please refresh and try again.");

  const changes: FileChange[] = [];
  for (const { key, value } of lines) {
    if (key === "header") continue;
    const path = String(value.path ?? "").replace(/^\/+/, "");
    if (path === "" || path.split("/").some((part) => part === ".." || part === ".")) throw new HttpError(400, `invalid path ${String(value.path)}`);
    if (key === "file") {
      if (value.encoding !== "base64" || typeof value.content !== "string") throw new HttpError(400, `file ${path}: content must be base64`);
      const content = Buffer.from(value.content, "base64");
      if (content.length > hub.options.lfsThreshold) {
        throw new HttpError(400, `Your push was rejected because it contains files larger than 10 MiB (${path}). Please use https://git-lfs.github.com/ to store large files.`);
      }
      changes.push({ path, sha256: hub.store.put(content), size: content.length, lfs: false, content });
    } else if (key === "lfsFile") {
      const oid = String(value.oid);
      if (value.algo !== undefined && value.algo !== "sha256") throw new HttpError(400, `lfsFile ${path}: unsupported algo ${String(value.algo)}`);
      if (!repo.lfsObjects.has(oid) || !hub.store.has(oid)) {
        throw new HttpError(422, `lfsFile ${path}: LFS object ${oid} was never uploaded to ${repo.id}`);
      }
      changes.push({ path, sha256: oid, size: Number(value.size), lfs: true });
    } else if (key === "deletedFile") {
      changes.push({ path });
    } else if (key === "deletedFolder") {
      changes.push({ path, deleteFolder: true });
    } else {
      throw new HttpError(400, `unsupported commit operation ${key}`);
    }
  }

  const parent = createPr ? (parentCommit ?? head) : head;
  const commit = makeCommit(repo, { parent, title: header.summary, message: typeof header.description === "string" ? header.description : "", changes });
  const origin = originOf(req);
  let pullRequestUrl: string | undefined;
  if (createPr) {
    const number = Math.max(0, ...repo.pullRequests.keys()) + 1;
    repo.pullRequests.set(number, commit.oid);
    pullRequestUrl = `${origin}${repoWebPath(repo)}/discussions/${number}`;
  } else if (pr) {
    repo.pullRequests.set(Number(pr[1]), commit.oid);
  } else {
    repo.branches.set(revision, commit.oid);
  }
  sendJson(res, 200, {
    success: true,
    commitOid: commit.oid,
    commitUrl: `${origin}${repoWebPath(repo)}/commit/${commit.oid}`,
    commitMessage: commit.title,
    hookOutput: "",
    ...(pullRequestUrl ? { pullRequestUrl } : {}),
  });
}

async function branchRoute(hub: HubEmulator, req: IncomingMessage, res: ServerResponse, repo: Repo, branch: string): Promise<void> {
  if (req.method === "DELETE") {
    if (!repo.branches.delete(branch)) throw new HttpError(404, `Invalid rev id: ${branch}`, "RevisionNotFound");
    sendJson(res, 200, {});
    return;
  }
  const body = await readJson(req);
  if (repo.branches.has(branch) && !isTruthy(body.overwrite)) throw new HttpError(409, "Reference already exists");
  const from = typeof body.startingPoint === "string" ? body.startingPoint : "main";
  const oid = resolveRevision(repo, from);
  if (!oid) throw new HttpError(404, `Invalid rev id: ${from}`, "RevisionNotFound");
  if (isTruthy(body.emptyBranch)) {
    repo.branches.set(branch, makeCommit(repo, { title: "empty branch", changes: [] }).oid);
  } else {
    repo.branches.set(branch, oid);
  }
  sendJson(res, 200, {});
}

/** Routes writing repos; answers whether it handled the request. */
export async function handleWriteRoute(hub: HubEmulator, req: IncomingMessage, res: ServerResponse, s: Segments, url: URL): Promise<boolean> {
  const method = req.method ?? "GET";

  if (s[0] === "api" && s[1] === "repos" && s.length === 3) {
    if (method === "POST" && s[2] === "create") {
      createRepoRoute(hub, req, res, await readJson(req));
      return true;
    }
    if (method === "DELETE" && s[2] === "delete") {
      const body = await readJson(req);
      const token = hub.authenticate(req);
      const key = repoKey(body.type === "dataset" ? "dataset" : "model", `${String(body.organization ?? token?.user)}/${String(body.name)}`);
      hub.writableRepo(req, key);
      hub.repos.delete(key);
      sendJson(res, 200, {});
      return true;
    }
  }

  const apiType = typeOfPlural(s[1]);
  if (s[0] === "api" && apiType && s.length === 6 && method === "POST") {
    const id = repoKey(apiType, `${s[2]}/${s[3]}`);
    if (s[4] === "preupload") {
      const { repo } = hub.writableRepo(req, id);
      preupload(hub, res, repo, s[5], await readJson(req));
      return true;
    }
    if (s[4] === "commit") {
      const { repo } = hub.writableRepo(req, id);
      await commitRoute(hub, req, res, repo, s[5], url);
      return true;
    }
  }
  // `GET /api/{type}s/{repo}/xet-{read,write}-token/{rev}`: a CAS token for this repo, and where the CAS is.
  const tokenKind = /^xet-(read|write)-token$/.exec(s[4] ?? "")?.[1] as "read" | "write" | undefined;
  if (hub.xet && s[0] === "api" && apiType && s.length === 6 && tokenKind && method === "GET") {
    const id = repoKey(apiType, `${s[2]}/${s[3]}`);
    if (tokenKind === "write") hub.writableRepo(req, id);
    else hub.revisionOf(hub.readableRepo(req, id, { files: true }).repo, s[5]);
    sendJson(res, 200, { ...hub.xet.issueToken(id, tokenKind), casUrl: `${originOf(req)}/cas` });
    return true;
  }
  if (s[0] === "api" && apiType && s.length === 6 && s[4] === "branch" && (method === "POST" || method === "DELETE")) {
    const { repo } = hub.writableRepo(req, repoKey(apiType, `${s[2]}/${s[3]}`));
    await branchRoute(hub, req, res, repo, s[5]);
    return true;
  }

  // `/{org}/{name}.git/info/lfs/objects/batch`, with `/datasets` in front for a dataset.
  const lfs = s[0] === "datasets" ? { type: "dataset" as const, at: 1 } : { type: "model" as const, at: 0 };
  if (method === "POST" && s.length === lfs.at + 6 && s[lfs.at + 1].endsWith(".git") && s.slice(lfs.at + 2).join("/") === "info/lfs/objects/batch") {
    lfsBatch(hub, req, res, repoKey(lfs.type, `${s[lfs.at]}/${s[lfs.at + 1].slice(0, -4)}`), await readJson(req));
    return true;
  }

  if (s[0] === "lfs-upload" && s.length >= 2) {
    await uploadRoute(hub, req, res, s);
    return true;
  }

  return false;
}
