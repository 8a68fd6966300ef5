/**
 * Repo paths and hashes from the Hub become file names in the cache (snapshots/<commit>/<path>,
 * blobs/<etag>), so a hostile or broken server must not be able to name a file outside the repo's folder, hide a
 * name from the terminal, or make two paths collide. The Hub itself never lists such paths; anything that does
 * is refused whole, before the first byte is written.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";

const GIT_OID = /^[0-9a-f]{40}$/;
const SHA256 = /^[0-9a-f]{64}$/;
// C0 and C1 controls (NUL, newline, escape, ...), and the Unicode format characters that reorder or hide text.
const ODD_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/u;
const MAX_PATH_LENGTH = 4096;

/** Why `path` is not a safe relative repo path, or undefined when it is. */
export function unsafePathReason(path: unknown): string | undefined {
  if (typeof path !== "string") return "it is not a string";
  if (path === "") return "it is empty";
  if (path.length > MAX_PATH_LENGTH) return `it is longer than ${MAX_PATH_LENGTH} characters`;
  if (ODD_CHARACTERS.test(path)) return "it contains control or invisible characters";
  if (path.includes("\\")) return "it contains a backslash";
  if (path.startsWith("/")) return "it is an absolute path";
  if (/^[A-Za-z]:/.test(path)) return "it starts with a drive letter";
  const segments = path.split("/");
  if (segments.some((segment) => segment === "..")) return 'it has a ".." segment';
  if (segments.some((segment) => segment === ".")) return 'it has a "." segment';
  if (segments.some((segment) => segment === "")) return "it has an empty segment";
  return undefined;
}

/** A path as it may be shown: quoted, with every control or invisible character escaped, so none reaches the terminal raw. */
export function describePath(path: unknown): string {
  const shown = JSON.stringify(typeof path === "string" && path.length > 200 ? `${path.slice(0, 200)}…` : path) ?? String(path);
  return shown.replace(new RegExp(ODD_CHARACTERS.source, "gu"), (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export interface ListedFile {
  path: string;
  size: number;
  /** The cache's blob name: the LFS sha256, else the git blob sha1. */
  etag: string;
  lfs?: { oid: string; size: number };
}

function refuse(where: string, what: string): never {
  throw new AbliterateError(ErrorCodes.HUB_UNSAFE_LISTING, `the Hub's file listing of ${where} ${what}; the repo was refused and nothing was written to the cache`);
}

/**
 * Checks one tree entry as @huggingface/hub's listFiles hands it over; returns the file (undefined for a
 * directory) or throws HUB_UNSAFE_LISTING naming the entry and what is wrong with it.
 */
export function checkListedEntry(entry: { type?: unknown; path?: unknown; size?: unknown; oid?: unknown; lfs?: { oid?: unknown; size?: unknown } }, where: string): ListedFile | undefined {
  const reason = unsafePathReason(entry.path);
  if (reason) refuse(where, `names the path ${describePath(entry.path)}, which is unsafe: ${reason}`);
  const path = entry.path as string;
  if (entry.type === "directory") return undefined;
  if (entry.type !== "file") refuse(where, `lists ${describePath(path)} with an unknown type ${describePath(entry.type)}`);
  if (typeof entry.size !== "number" || !Number.isSafeInteger(entry.size) || entry.size < 0) refuse(where, `gives ${describePath(path)} an invalid size ${describePath(entry.size)}`);
  if (typeof entry.oid !== "string" || !GIT_OID.test(entry.oid)) refuse(where, `gives ${describePath(path)} a malformed git oid ${describePath(entry.oid)}`);
  const size = entry.size as number;
  if (entry.lfs === undefined || entry.lfs === null) return { path, size, etag: entry.oid as string };
  const { oid, size: lfsSize } = entry.lfs;
  if (typeof oid !== "string" || !SHA256.test(oid)) refuse(where, `gives ${describePath(path)} a malformed LFS sha256 ${describePath(oid)}`);
  if (lfsSize !== size) refuse(where, `gives ${describePath(path)} two sizes (${describePath(size)} and LFS ${describePath(lfsSize)})`);
  return { path, size, etag: oid as string, lfs: { oid: oid as string, size } };
}

/** A user-given revision becomes a file under refs/: the same rules as a path (refs/pr/1 is fine, ../x is not). */
export function checkRevision(revision: string): void {
  // Each segment becomes a file name under refs/: past 255 bytes the file system refuses it (ENAMETOOLONG).
  const long = revision.split("/").find((segment) => Buffer.byteLength(segment) > 255);
  const reason = unsafePathReason(revision) ?? (long !== undefined ? `a part of it is ${Buffer.byteLength(long)} bytes long, and revisions (branch, tag or commit names) are at most 255 bytes per part` : undefined);
  if (reason) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `the revision ${describePath(revision)} cannot be used: ${reason}`);
}
