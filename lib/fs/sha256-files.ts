/**
 * sha256 of whole files, several at once. Node hashes on the thread that calls update() (about 1.5 GB/s on one of
 * this machine's cores, sha256-file.ts), so a model folder's shards hashed one after another keep one core busy and
 * the rest idle: about 90 s for a 140 GB folder. Here each file goes to one of
 * up to `threads` worker threads (sha256-worker.ts), largest first; a folder of small files is hashed on this thread,
 * where a worker's start-up would cost more than the hashing.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { fromFileSystemError } from "./file-system-error.js";
import { SHA256_READ_BYTES, sha256File } from "./sha256-file.js";
import type { Sha256Reply } from "./sha256-worker.js";

export interface FileToHash {
  path: string;
  /** Its size (stat), to schedule the largest first and to decide whether workers pay. */
  bytes: number;
}

/** Below this many bytes in all, one thread hashes them faster than workers start. */
const WORKER_THRESHOLD_BYTES = 64 << 20;

/** Hex sha256 of each file, in the order given. A file that cannot be read fails the call with an error naming it. */
export async function sha256Files(files: readonly FileToHash[], params: { threads?: number } = {}): Promise<string[]> {
  const total = files.reduce((sum, f) => sum + f.bytes, 0);
  const threads = Math.min(files.length, params.threads ?? availableParallelism());
  const digests: string[] = new Array(files.length);
  if (threads <= 1 || total < WORKER_THRESHOLD_BYTES) {
    const buffer = Buffer.allocUnsafe(SHA256_READ_BYTES);
    for (const [i, file] of files.entries()) digests[i] = await sha256File(file.path, buffer);
    return digests;
  }
  const queue = files.map((_, i) => i).sort((a, b) => files[b].bytes - files[a].bytes);
  const workers = Array.from({ length: threads }, () => new Worker(new URL("./sha256-worker.js", import.meta.url)));
  try {
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((resolve, reject) => {
            const next = () => {
              const index = queue.shift();
              if (index === undefined) resolve();
              else worker.postMessage({ index, path: files[index].path });
            };
            worker.on("message", (reply: Sha256Reply) => {
              if ("sha256" in reply) {
                digests[reply.index] = reply.sha256;
                next();
                return;
              }
              const error = Object.assign(new Error(reply.error.message), reply.error);
              reject(fromFileSystemError(error, files[reply.index].path));
            });
            worker.on("error", reject);
            worker.on("exit", (code) => reject(new Error(`sha256 worker exited with code ${code} before its files were hashed`)));
            next();
          }),
      ),
    );
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
  return digests;
}
