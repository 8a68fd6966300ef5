/**
 * The work dir: each stage's result under a fixed name, and `pipeline-state.json` mapping each stage to the key of
 * the inputs that produced it. A stage is reused only when its key (a hash over every input that changes its
 * output, upstream keys included) matches and its artifact exists. Every write is an atomic, fsynced replacement,
 * so a killed run leaves either the old result with its old key or the new one with its new key.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { replaceFileAtomically } from "../fs/replace-file-atomically.js";

/** A stable key over any JSON value (object keys in the order given: callers build them literally). */
export function stageKey(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 32);
}

const STATE_FILE = "pipeline-state.json";

export class StageStore {
  readonly dir: string;
  private state?: Record<string, string>;

  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  private load(): Record<string, string> {
    if (!this.state) {
      try {
        const file = this.path(STATE_FILE);
        this.state = existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as Record<string, string>) : {};
      } catch {
        // A state file we cannot read means nothing is reused; the stages rewrite it.
        this.state = {};
      }
    }
    return this.state;
  }

  /** The key the stage's saved result was made with, if any. */
  keyOf(stage: string): string | undefined {
    return this.load()[stage];
  }

  reusable(stage: string, key: string, artifact: string): boolean {
    return this.keyOf(stage) === key && existsSync(this.path(artifact));
  }

  async markDone(stage: string, key: string): Promise<void> {
    this.load()[stage] = key;
    await replaceFileAtomically(this.path(STATE_FILE), `${JSON.stringify(this.load(), null, 2)}\n`);
  }

  /** Forgets a stage's key before its artifact is rewritten, so a kill in between never pairs old key and new file. */
  async invalidate(stage: string): Promise<void> {
    if (this.load()[stage] === undefined) return;
    delete this.load()[stage];
    await replaceFileAtomically(this.path(STATE_FILE), `${JSON.stringify(this.load(), null, 2)}\n`);
  }

  async writeJson(name: string, value: unknown): Promise<void> {
    await replaceFileAtomically(this.path(name), `${JSON.stringify(value, null, 2)}\n`);
  }

  readJson<T>(name: string): T {
    const file = this.path(name);
    try {
      return JSON.parse(readFileSync(file, "utf8")) as T;
    } catch (error) {
      throw new AbliterateError(ErrorCodes.IO, `cannot read the saved stage result: ${(error as Error).message}`, { file, cause: error });
    }
  }
}
