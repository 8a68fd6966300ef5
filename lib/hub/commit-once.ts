/**
 * One push, one commit. A commit POST whose answer never arrived (a reset, a proxy's 502/504, an answer cut
 * half-way) may or may not have landed; sending it again blindly could add a second commit or open a second pull
 * request. So before a retry the Hub is asked: did the branch move (or a new pull request appear) to a commit
 * holding exactly the files we sent? Then that commit is ours and is answered as if the first reply had arrived.
 * The baseline (the branch head, or the pull requests there were) is read before the first attempt.
 */
import { createHash } from "node:crypto";

export interface ExpectedEntry {
  path: string;
  /** Regular file: its git blob sha1 and sha256 (the Hub may have stored it through LFS). */
  gitOid?: string;
  sha256?: string;
  /** Deleted by the commit. */
  absent?: boolean;
}

export interface CommitRequest {
  /** Endpoint, e.g. https://huggingface.co. */
  hubUrl: string;
  repo: string;
  revision: string;
  createPr: boolean;
  authorization?: string;
  expected: ExpectedEntry[];
}

export type CommitBaseline = { kind: "branch"; head: string } | { kind: "pr"; refs: Set<string> };

export interface LandedCommit {
  oid: string;
  pullRequestUrl?: string;
}

const COMMIT_PATH = /^(.*)\/api\/models\/([^/]+)\/([^/]+)\/commit\/([^/]+)$/;
const OID = /^[0-9a-f]{40}$/;

/** What a commit POST (as @huggingface/hub sends it: NDJSON in a string) asks for; undefined when unreadable. */
export function parseCommitRequest(url: string, init: RequestInit): CommitRequest | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  const match = COMMIT_PATH.exec(parsed.pathname);
  if (!match || typeof init.body !== "string") return undefined;
  const expected: ExpectedEntry[] = [];
  for (const line of init.body.split("\n")) {
    if (line.trim() === "") continue;
    let item: { key?: unknown; value?: Record<string, unknown> };
    try {
      item = JSON.parse(line) as typeof item;
    } catch {
      return undefined;
    }
    const path = item.value?.path;
    if (item.key === "header") continue;
    if (typeof path !== "string") return undefined;
    if (item.key === "file" && typeof item.value?.content === "string") {
      const bytes = Buffer.from(item.value.content, "base64");
      const gitOid = createHash("sha1").update(`blob ${bytes.length}\0`).update(bytes).digest("hex");
      expected.push({ path, gitOid, sha256: createHash("sha256").update(bytes).digest("hex") });
    } else if (item.key === "lfsFile" && typeof item.value?.oid === "string") {
      expected.push({ path, sha256: item.value.oid });
    } else if (item.key === "deletedFile") {
      expected.push({ path, absent: true });
    } else if (item.key !== "deletedFolder") {
      return undefined;
    }
  }
  return {
    hubUrl: `${parsed.origin}${match[1]}`,
    repo: `${decodeURIComponent(match[2])}/${decodeURIComponent(match[3])}`,
    revision: decodeURIComponent(match[4]),
    createPr: ["1", "true"].includes(parsed.searchParams.get("create_pr") ?? ""),
    authorization: new Headers(init.headers).get("authorization") ?? undefined,
    expected,
  };
}

async function getJson(request: CommitRequest, fetcher: typeof fetch, url: string, init: RequestInit = {}): Promise<unknown> {
  const headers = new Headers(init.headers);
  if (request.authorization) headers.set("Authorization", request.authorization);
  const response = await fetcher(url, { ...init, headers });
  if (!response.ok) {
    await response.body?.cancel().catch(() => undefined);
    throw new Error(`HTTP ${response.status}`);
  }
  return response.json();
}

async function branchHead(request: CommitRequest, fetcher: typeof fetch): Promise<string> {
  const info = (await getJson(request, fetcher, `${request.hubUrl}/api/models/${request.repo}/revision/${encodeURIComponent(request.revision)}?expand=sha`)) as { sha?: unknown };
  if (typeof info.sha !== "string" || !OID.test(info.sha)) throw new Error("no commit sha");
  return info.sha;
}

async function pullRequests(request: CommitRequest, fetcher: typeof fetch): Promise<Map<string, string>> {
  const refs = (await getJson(request, fetcher, `${request.hubUrl}/api/models/${request.repo}/refs?include_prs=1`)) as { pullRequests?: { ref?: unknown; targetCommit?: unknown }[] };
  const found = new Map<string, string>();
  for (const pr of refs.pullRequests ?? []) if (typeof pr.ref === "string" && typeof pr.targetCommit === "string") found.set(pr.ref, pr.targetCommit);
  return found;
}

/** The state to compare with after a failure: the branch head, or the pull requests that already exist. */
export async function commitBaseline(request: CommitRequest, fetcher: typeof fetch): Promise<CommitBaseline> {
  if (request.createPr) return { kind: "pr", refs: new Set((await pullRequests(request, fetcher)).keys()) };
  return { kind: "branch", head: await branchHead(request, fetcher) };
}

/** Whether commit `oid` holds every file of the request with the bytes we sent (and not the files we deleted). */
async function holdsOurFiles(request: CommitRequest, fetcher: typeof fetch, oid: string): Promise<boolean> {
  for (let start = 0; start < request.expected.length; start += 100) {
    const chunk = request.expected.slice(start, start + 100);
    const entries = (await getJson(request, fetcher, `${request.hubUrl}/api/models/${request.repo}/paths-info/${oid}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ paths: chunk.map((entry) => entry.path), expand: false }),
    })) as { path?: unknown; type?: unknown; oid?: unknown; lfs?: { oid?: unknown } }[];
    if (!Array.isArray(entries)) return false;
    const byPath = new Map(entries.filter((entry) => entry.type !== "directory").map((entry) => [entry.path, entry]));
    for (const wanted of chunk) {
      const entry = byPath.get(wanted.path);
      if (wanted.absent) {
        if (entry) return false;
        continue;
      }
      if (!entry) return false;
      const sameLfs = wanted.sha256 !== undefined && entry.lfs?.oid === wanted.sha256;
      const sameRegular = wanted.gitOid !== undefined && !entry.lfs && entry.oid === wanted.gitOid;
      if (!sameLfs && !sameRegular) return false;
    }
  }
  return true;
}

/**
 * Our commit, if it landed since the baseline; undefined when it did not. Throws when the Hub cannot be asked
 * (the caller then gives up rather than risk a second commit).
 */
export async function findLandedCommit(request: CommitRequest, baseline: CommitBaseline, fetcher: typeof fetch): Promise<LandedCommit | undefined> {
  if (baseline.kind === "branch") {
    const head = await branchHead(request, fetcher);
    if (head === baseline.head) return undefined;
    return (await holdsOurFiles(request, fetcher, head)) ? { oid: head } : undefined;
  }
  const fresh = [...(await pullRequests(request, fetcher))].filter(([ref]) => !baseline.refs.has(ref));
  fresh.sort(([a], [b]) => Number(a.split("/").pop()) - Number(b.split("/").pop()));
  for (const [ref, oid] of fresh) {
    if (await holdsOurFiles(request, fetcher, oid)) {
      return { oid, pullRequestUrl: `${request.hubUrl}/${request.repo}/discussions/${ref.split("/").pop()}` };
    }
  }
  return undefined;
}

/** The answer the Hub would have given to the commit that landed. */
export function landedCommitResponse(request: CommitRequest, landed: LandedCommit): Response {
  const body = {
    success: true,
    commitOid: landed.oid,
    commitUrl: `${request.hubUrl}/${request.repo}/commit/${landed.oid}`,
    hookOutput: "",
    ...(landed.pullRequestUrl ? { pullRequestUrl: landed.pullRequestUrl } : {}),
  };
  const response = new Response(JSON.stringify(body), { status: 200, headers: { "Content-Type": "application/json" } });
  Object.defineProperty(response, "url", { value: `${request.hubUrl}/api/models/${request.repo}/commit/${encodeURIComponent(request.revision)}` });
  return response;
}
