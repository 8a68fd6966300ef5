/** Shared setup for Hub tests: scratch folders, a seeded tiny model, and a CLI environment isolated from the user's. */
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { HubApiError } from "@huggingface/hub";
import type { HubEmulator, SeedFile } from "./hub-emulator.js";

export function scratch(prefix = "abl-hub-"): { root: string; cleanup: () => void } {
  const root = mkdtempSync(join(tmpdir(), prefix));
  return { root, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}

/** Every file under a folder (following symlinks), as repo paths. */
export function filesUnder(dir: string, root = dir): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return filesUnder(path, root);
    return [relative(root, path).split("\\").join("/")];
  }).sort();
}

/** Publishes every file of a local folder to the emulator in one commit; returns the commit. */
export function publishFolder(hub: HubEmulator, repo: string, dir: string, extra: SeedFile[] = []): string {
  const files: SeedFile[] = filesUnder(dir).map((path) => ({ path, content: readFileSync(join(dir, path)) }));
  return hub.addFiles(repo, [...files, ...extra]);
}

/**
 * Environment for a CLI run against the emulator: the cache, HF_HOME and TMPDIR inside the test's scratch
 * folder, fast retries, and none of the developer's own Hub settings leaking in.
 */
export function hubEnv(hub: HubEmulator | { url: string }, root: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    HF_ENDPOINT: hub.url,
    HF_HOME: join(root, "hf-home"),
    HF_HUB_CACHE: join(root, "hub-cache"),
    HF_TOKEN: "",
    HUGGING_FACE_HUB_TOKEN: "",
    HF_TOKEN_PATH: join(root, "hf-home", "token"),
    HF_HUB_OFFLINE: "",
    ABLITERATE_RETRY_BASE_MS: "5",
    ...extra,
  };
}

/** Anything of the secret in the captured output (the whole token or a long piece of it). */
export function leaksSecret(output: string, secret: string): boolean {
  const body = secret.replace(/^hf_/, "");
  return output.includes(secret) || output.includes(body) || output.includes(body.slice(0, 12));
}

/** The HTTP status a @huggingface/hub call ended with: 200 when it succeeded, else its HubApiError's status. */
export async function statusOf(promise: Promise<unknown>): Promise<number> {
  try {
    await promise;
    return 200;
  } catch (error) {
    if (!(error instanceof HubApiError)) throw error;
    return error.statusCode;
  }
}
