/**
 * An output must never overlap an input. `apply --force --out MODEL` deleted the model it was reading; an OUT that
 * contained the direction file deleted the direction; an output inside the model folder makes the folder hold a
 * second checkpoint (and the next run would copy it). So whatever the caller writes, folder or file, is refused
 * when it equals an input, contains one, or lies inside one, with or without --force.
 *
 * Paths are compared after resolving symbolic links (the nearest existing ancestor for a path not created yet), and
 * for a folder input also the targets of the links directly in it: a Hub cache snapshot is links into `blobs/`,
 * which an output around the cache would delete.
 */
import { lstat, readdir, realpath } from "node:fs/promises";
import { basename, dirname, join, resolve, sep } from "node:path";
import { AbliterateError, ErrorCodes } from "../errors.js";

export interface OutputInput {
  path: string;
  /** What the input is, for the message: "the model", "the direction file", "the --harmful prompts", "the work dir". */
  label: string;
}

export interface RefuseOutputOverlapParams {
  output: string;
  inputs: readonly OutputInput[];
  /** The option that named the output, for the message (default `--out`). */
  option?: string;
}

/** Links followed in one folder input; a snapshot holds a few dozen. */
const MAX_LINKED_ENTRIES = 10_000;

/** The path with every existing part's links resolved; parts that do not exist yet are appended as given. */
export async function canonicalPath(path: string): Promise<string> {
  const absolute = resolve(path);
  const missing: string[] = [];
  let current = absolute;
  for (;;) {
    try {
      const real = await realpath(current);
      return missing.length === 0 ? real : join(real, ...missing.reverse());
    } catch {
      const parent = dirname(current);
      if (parent === current) return absolute;
      missing.push(basename(current));
      current = parent;
    }
  }
}

async function inputPaths(input: OutputInput): Promise<string[]> {
  const paths = [await canonicalPath(input.path)];
  const info = await lstat(paths[0]).catch(() => undefined);
  if (!info?.isDirectory()) return paths;
  const entries = await readdir(paths[0], { withFileTypes: true }).catch(() => []);
  for (const entry of entries.slice(0, MAX_LINKED_ENTRIES)) {
    if (!entry.isSymbolicLink()) continue;
    const target = await realpath(join(paths[0], entry.name)).catch(() => undefined);
    if (target !== undefined) paths.push(target);
  }
  return paths;
}

function within(path: string, folder: string): boolean {
  return path.startsWith(folder.endsWith(sep) ? folder : `${folder}${sep}`);
}

/** Throws INVALID_ARGUMENT naming the output and the input when they overlap. */
export async function refuseOutputOverlap(params: RefuseOutputOverlapParams): Promise<void> {
  const option = params.option ?? "--out";
  const output = await canonicalPath(params.output);
  for (const input of params.inputs) {
    // An input that is not on disk (a Hub dataset id given where a file may be) cannot be overwritten.
    if ((await lstat(resolve(input.path)).catch(() => undefined)) === undefined) continue;
    const [own, ...linked] = await inputPaths(input);
    let relation: string | undefined;
    if (output === own) relation = "is";
    else if (within(own, output)) relation = "contains";
    else if (within(output, own)) relation = "lies inside";
    else if (linked.some((target) => target === output || within(target, output))) relation = "contains a file linked from";
    if (relation === undefined) continue;
    throw new AbliterateError(
      ErrorCodes.INVALID_ARGUMENT,
      `${option} ${params.output} ${relation} ${input.label} (${input.path}); an output must not overlap what is read, ` +
        "with --force or not (the old output is deleted when it is replaced); choose a path outside it",
      { file: params.output },
    );
  }
}
