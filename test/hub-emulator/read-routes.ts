/**
 * Read side of the emulator: model and dataset info, tree (paginated through `Link`), paths-info, refs, and file
 * resolution (regular files: 307 to a relative resolve-cache URL; LFS files: 302 to a signed CDN URL; ranges;
 * error headers). Datasets answer under `/api/datasets/…` and `/datasets/…/resolve/…`, as on the Hub.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createReadStream, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import type { HubEmulator } from "./hub-emulator.js";
import { directoriesOf, lfsPointer, repoKey, typeOfPlural, typePlural, type Commit, type Repo, type StoredFile } from "./repo-store.js";
import { HttpError, encodePath, isTruthy, originOf, parseRange, readJsonOrForm, sendJson } from "./http-util.js";
import { parseFrontMatter } from "./simple-yaml.js";

type Segments = string[];

function treeOid(commit: Commit, path: string): string {
  return createHash("sha1").update(`tree ${commit.oid} ${path}`).digest("hex");
}

function fileEntry(repo: Repo, file: StoredFile, expand: boolean): Record<string, unknown> {
  const entry: Record<string, unknown> = { type: "file", oid: file.gitOid, size: file.size, path: file.path };
  if (file.lfs) {
    entry.lfs = { oid: file.sha256, size: file.size, pointerSize: Buffer.byteLength(lfsPointer(file.sha256, file.size)) };
  }
  if (expand) {
    const last = repo.commits.get(file.lastCommit);
    entry.lastCommit = last && { id: last.oid, title: last.title, date: last.date.toISOString() };
    entry.securityFileStatus = { status: "safe" };
  }
  return entry;
}

function directoryEntry(repo: Repo, commit: Commit, path: string, expand: boolean): Record<string, unknown> {
  const entry: Record<string, unknown> = { type: "directory", oid: treeOid(commit, path), size: 0, path };
  if (expand) entry.lastCommit = { id: commit.oid, title: commit.title, date: commit.date.toISOString() };
  return entry;
}

function cardDataOf(hub: HubEmulator, commit: Commit): Record<string, unknown> | undefined {
  const readme = commit.files.get("README.md");
  if (!readme) return undefined;
  try {
    return parseFrontMatter(readFileSync(hub.store.pathOf(readme.sha256), "utf8"))?.data;
  } catch {
    return undefined;
  }
}

/** `/api/models/{id}` and `/api/datasets/{id}`: the same core; models add their library fields. */
function repoInfo(hub: HubEmulator, repo: Repo, commit: Commit, url: URL): Record<string, unknown> {
  const blobs = isTruthy(url.searchParams.get("blobs"));
  const siblings = [...commit.files.values()].map((file) => {
    if (!blobs) return { rfilename: file.path };
    const sibling: Record<string, unknown> = { rfilename: file.path, size: file.size, blobId: file.gitOid };
    if (file.lfs) sibling.lfs = { sha256: file.sha256, size: file.size, pointerSize: Buffer.byteLength(lfsPointer(file.sha256, file.size)) };
    return sibling;
  });
  const cardData = cardDataOf(hub, commit);
  const full: Record<string, unknown> = {
    _id: repo.internalId,
    id: repo.id,
    ...(repo.type === "model" ? { modelId: repo.id } : {}),
    author: repo.id.split("/")[0],
    sha: commit.oid,
    lastModified: commit.date.toISOString(),
    createdAt: repo.createdAt.toISOString(),
    private: repo.private,
    gated: repo.gated,
    disabled: false,
    downloads: 0,
    likes: 0,
    tags: [],
    ...(repo.type === "model" ? { library_name: cardData?.library_name, spaces: [] } : { description: "", citation: "" }),
    siblings,
    ...(cardData ? { cardData } : {}),
  };
  const expand = url.searchParams.getAll("expand");
  if (expand.length === 0) return full;
  // With `expand`, the Hub answers only the requested fields (plus the ids).
  const partial: Record<string, unknown> = { _id: full._id, id: full.id };
  for (const key of expand) if (key in full) partial[key] = full[key];
  return partial;
}

function listTree(hub: HubEmulator, req: IncomingMessage, res: ServerResponse, repo: Repo, commit: Commit, path: string, url: URL): void {
  const recursive = isTruthy(url.searchParams.get("recursive"));
  const expand = isTruthy(url.searchParams.get("expand"));
  const prefix = path === "" ? "" : `${path}/`;
  const directories = directoriesOf(commit.files.keys());
  if (path !== "" && !directories.has(path)) {
    throw new HttpError(404, `Entry not found: ${path}`, "EntryNotFound");
  }
  const within = (candidate: string) => candidate.startsWith(prefix) && (recursive || !candidate.slice(prefix.length).includes("/"));
  const entries: Record<string, unknown>[] = [
    ...[...directories].filter(within).map((dir) => directoryEntry(repo, commit, dir, expand)),
    ...[...commit.files.values()].filter((file) => within(file.path)).map((file) => fileEntry(repo, file, expand)),
  ].sort((a, b) => String(a.path).localeCompare(String(b.path)));

  const pageSize = Number(url.searchParams.get("limit") ?? hub.options.treePageSize);
  const cursor = url.searchParams.get("cursor");
  const start = cursor ? Number(Buffer.from(cursor, "base64url").toString("utf8")) : 0;
  if (!Number.isInteger(start) || start < 0) throw new HttpError(400, "invalid cursor");
  const page = entries.slice(start, start + pageSize);
  const headers: Record<string, string> = {};
  if (start + pageSize < entries.length) {
    const next = new URL(url.pathname + url.search, originOf(req));
    next.searchParams.set("cursor", Buffer.from(String(start + pageSize)).toString("base64url"));
    headers.Link = `<${next.href}>; rel="next"`;
  }
  sendJson(res, 200, page, headers);
}

async function pathsInfo(req: IncomingMessage, res: ServerResponse, repo: Repo, commit: Commit): Promise<void> {
  const body = await readJsonOrForm(req);
  const paths = Array.isArray(body.paths) ? body.paths.map(String) : typeof body.paths === "string" ? [body.paths] : [];
  const expand = isTruthy(body.expand);
  const directories = directoriesOf(commit.files.keys());
  const result: Record<string, unknown>[] = [];
  for (const path of paths.map((p) => p.replace(/^\/+|\/+$/g, ""))) {
    const file = commit.files.get(path);
    if (file) result.push(fileEntry(repo, file, expand));
    else if (directories.has(path)) result.push(directoryEntry(repo, commit, path, expand));
  }
  sendJson(res, 200, result);
}

/** Streams stored bytes with Range support (206 + Content-Range; 416 when unsatisfiable). */
function serveObject(req: IncomingMessage, res: ServerResponse, hub: HubEmulator, file: { sha256: string; size: number }, headers: Record<string, string>): void {
  const range = parseRange(req.headers.range, file.size);
  if (range === "invalid") {
    res.writeHead(416, { "Content-Range": `bytes */${file.size}`, ...headers });
    res.end();
    return;
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? file.size - 1;
  const length = file.size === 0 ? 0 : end - start + 1;
  res.writeHead(range ? 206 : 200, {
    "Content-Type": "application/octet-stream",
    "Content-Length": String(length),
    "Accept-Ranges": "bytes",
    ...(range ? { "Content-Range": `bytes ${start}-${end}/${file.size}` } : {}),
    ...headers,
  });
  if (req.method === "HEAD" || length === 0) {
    res.end();
    return;
  }
  createReadStream(hub.store.pathOf(file.sha256), { start, end }).pipe(res);
}

function resolveFile(hub: HubEmulator, req: IncomingMessage, res: ServerResponse, repo: Repo, commit: Commit, path: string, raw: boolean): void {
  const file = commit.files.get(path);
  if (!file) throw new HttpError(404, `Entry not found: ${path}`, "EntryNotFound", { "X-Repo-Commit": commit.oid });
  const common = { "X-Repo-Commit": commit.oid, "Access-Control-Expose-Headers": "X-Repo-Commit,X-Linked-Etag,X-Linked-Size,ETag" };
  if (raw) {
    if (file.lfs) {
      const pointer = Buffer.from(lfsPointer(file.sha256, file.size));
      res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8", "Content-Length": pointer.length, ETag: `"${file.gitOid}"`, ...common });
      res.end(req.method === "HEAD" ? undefined : pointer);
      return;
    }
    serveObject(req, res, hub, file, { ETag: `"${file.gitOid}"`, ...common });
    return;
  }
  const xetFile = file.lfs ? hub.xet?.fileForSha256(file.sha256) : undefined;
  if (xetFile) {
    // A Xet-backed file: its Xet hash and where to get a read token and the reconstruction, in headers (Link
    // rels `xet-auth` and `xet-reconstruction-info`, as huggingface_hub and huggingface.js read them).
    const origin = originOf(req);
    const refresh = `${origin}/api/${typePlural(repo.type)}/${repo.id}/xet-read-token/${commit.oid}`;
    const reconstruction = `${origin}/cas/v1/reconstructions/${xetFile.hash}`;
    const xetHeaders = {
      "X-Xet-Hash": xetFile.hash,
      "X-Xet-Refresh-Route": refresh,
      Link: `<${refresh}>; rel="xet-auth", <${reconstruction}>; rel="xet-reconstruction-info"`,
      "X-Linked-Etag": `"${file.sha256}"`,
      "X-Linked-Size": String(file.size),
      ...common,
    };
    if ((req.headers.accept ?? "").includes("application/vnd.xet-fileinfo+json")) {
      sendJson(res, 200, { casUrl: `${origin}/cas`, hash: xetFile.hash, refreshUrl: refresh, reconstructionUrl: reconstruction, etag: file.sha256, size: file.size }, { ...xetHeaders, "Content-Type": "application/vnd.xet-fileinfo+json", ETag: `"${file.sha256}"` });
      return;
    }
    // Clients that do not speak Xet follow the redirect and get the bytes, as from the Hub's Xet bridge.
    res.writeHead(302, { Location: `${hub.cdnOrigin(req)}${hub.signedCdnPath(repo, file.sha256, path.split("/").pop()!)}`, ETag: `"${file.sha256}"`, "Content-Type": "text/plain; charset=utf-8", "Content-Length": "0", ...xetHeaders });
    res.end();
    return;
  }
  if (file.lfs) {
    const location = `${hub.cdnOrigin(req)}${hub.signedCdnPath(repo, file.sha256, path.split("/").pop()!)}`;
    res.writeHead(302, {
      Location: location,
      ETag: `"${file.sha256}"`,
      "X-Linked-Etag": `"${file.sha256}"`,
      "X-Linked-Size": String(file.size),
      "Content-Type": "text/plain; charset=utf-8",
      "Content-Length": "0",
      ...common,
    });
    res.end();
    return;
  }
  res.writeHead(307, {
    Location: `/api/resolve-cache/${typePlural(repo.type)}/${repo.id}/${commit.oid}/${encodePath(path)}`,
    ETag: `"${file.gitOid}"`,
    "Content-Type": "text/plain; charset=utf-8",
    "Content-Length": "0",
    ...common,
  });
  res.end();
}

/** Routes reading repos; answers whether it handled the request. */
export async function handleReadRoute(hub: HubEmulator, req: IncomingMessage, res: ServerResponse, s: Segments, url: URL): Promise<boolean> {
  const method = req.method ?? "GET";
  const get = method === "GET" || method === "HEAD";

  if (get && s[0] === "api" && s[1] === "whoami-v2" && s.length === 2) {
    const token = hub.authenticate(req);
    if (!token) throw new HttpError(401, "Invalid username or password.");
    sendJson(res, 200, { type: "user", name: token.user, orgs: token.orgs.map((name) => ({ name })), auth: { type: "access_token", accessToken: { role: token.write ? "write" : "read" } } });
    return true;
  }

  const apiType = typeOfPlural(s[1]);
  if (s[0] === "api" && apiType && s.length >= 4) {
    const id = repoKey(apiType, `${s[2]}/${s[3]}`);
    const action = s[4];
    if (get && (s.length === 4 || (action === "revision" && s.length === 6))) {
      const { repo } = hub.readableRepo(req, id);
      const commit = hub.revisionOf(repo, s[5] ?? "main");
      sendJson(res, 200, repoInfo(hub, repo, commit, url));
      return true;
    }
    if (get && action === "tree" && s.length >= 6) {
      const { repo } = hub.readableRepo(req, id);
      listTree(hub, req, res, repo, hub.revisionOf(repo, s[5]), s.slice(6).filter(Boolean).join("/"), url);
      return true;
    }
    if (method === "POST" && action === "paths-info" && s.length === 6) {
      const { repo } = hub.readableRepo(req, id);
      await pathsInfo(req, res, repo, hub.revisionOf(repo, s[5]));
      return true;
    }
    if (get && action === "refs" && s.length === 5) {
      const { repo } = hub.readableRepo(req, id);
      const ref = (name: string, prefix: string, oid: string) => ({ name, ref: `${prefix}${name}`, targetCommit: oid });
      sendJson(res, 200, {
        branches: [...repo.branches].map(([name, oid]) => ref(name, "refs/heads/", oid)),
        tags: [...repo.tags].map(([name, oid]) => ref(name, "refs/tags/", oid)),
        converts: [],
        ...(isTruthy(url.searchParams.get("include_prs")) ? { pullRequests: [...repo.pullRequests].map(([n, oid]) => ({ name: `refs/pr/${n}`, ref: `refs/pr/${n}`, targetCommit: oid })) } : {}),
      });
      return true;
    }
    return false;
  }

  const cacheType = typeOfPlural(s[2]);
  if (get && s[0] === "api" && s[1] === "resolve-cache" && cacheType && s.length >= 7) {
    const { repo } = hub.readableRepo(req, repoKey(cacheType, `${s[3]}/${s[4]}`), { files: true });
    const commit = repo.commits.get(s[5]);
    if (!commit) throw new HttpError(404, `Invalid rev id: ${s[5]}`, "RevisionNotFound");
    const path = s.slice(6).join("/");
    const file = commit.files.get(path);
    if (!file) throw new HttpError(404, `Entry not found: ${path}`, "EntryNotFound");
    serveObject(req, res, hub, file, { ETag: `"${file.gitOid}"`, "X-Repo-Commit": commit.oid });
    return true;
  }

  if (get && s[0] === "cdn" && s[1] === "lfs" && s.length === 3) {
    const sha256 = s[2];
    const key = url.searchParams.get("repo") ?? "";
    const expires = Number(url.searchParams.get("expires"));
    const valid = url.searchParams.get("sig") === hub.cdnSignature(key, sha256, expires) && expires * 1000 > Date.now();
    const repo = hub.repos.get(key);
    if (!valid || !repo || !repo.lfsObjects.has(sha256) || !hub.store.has(sha256)) {
      res.writeHead(403, { "Content-Type": "application/xml" });
      res.end(req.method === "HEAD" ? undefined : "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>");
      return true;
    }
    const size = [...repo.commits.values()].flatMap((commit) => [...commit.files.values()]).find((file) => file.sha256 === sha256)?.size;
    const filename = url.searchParams.get("filename") ?? sha256;
    serveObject(req, res, hub, { sha256, size: size ?? 0 }, {
      ...(hub.separateCdn ? { "X-Cache": "Miss from cloudfront" } : {}),
      ETag: `"${sha256}"`,
      "Content-Disposition": `attachment; filename*=UTF-8''${encodeURIComponent(filename)}; filename="${filename.replace(/[^\x20-\x7e]|"/g, "_")}";`,
    });
    return true;
  }

  // `/{org}/{name}/resolve/…` for a model, `/datasets/{org}/{name}/resolve/…` for a dataset.
  const web = s[0] === "datasets" ? { type: "dataset" as const, at: 1 } : { type: "model" as const, at: 0 };
  const verb = s[web.at + 2];
  if (get && s.length >= web.at + 5 && (verb === "resolve" || verb === "raw") && s[0] !== "api") {
    const { repo } = hub.readableRepo(req, repoKey(web.type, `${s[web.at]}/${s[web.at + 1]}`), { files: true });
    const commit = hub.revisionOf(repo, s[web.at + 3]);
    resolveFile(hub, req, res, repo, commit, s.slice(web.at + 4).join("/"), verb === "raw");
    return true;
  }

  return false;
}
