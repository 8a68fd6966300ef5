/**
 * Worker thread of sha256Files(): hashes the files it is sent, one at a time into one buffer, and answers each with
 * its digest or the error (its message, and the code, syscall and path of a file-system error).
 */
import { parentPort } from "node:worker_threads";
import { SHA256_READ_BYTES, sha256File } from "./sha256-file.js";

export interface Sha256Request {
  index: number;
  path: string;
}

export type Sha256Reply = { index: number; sha256: string } | { index: number; error: { message: string; code?: string; syscall?: string; path?: string } };

const buffer = Buffer.allocUnsafe(SHA256_READ_BYTES);

parentPort?.on("message", (request: Sha256Request) => {
  sha256File(request.path, buffer).then(
    (sha256) => parentPort!.postMessage({ index: request.index, sha256 } satisfies Sha256Reply),
    (error: Error & { code?: string; syscall?: string; path?: string; cause?: unknown }) => {
      // sha256File names the file in its own error; the other side rebuilds it from the cause's fields.
      const cause = (error.cause ?? error) as NodeJS.ErrnoException;
      parentPort!.postMessage({ index: request.index, error: { message: String(cause?.message ?? error), code: cause?.code, syscall: cause?.syscall, path: cause?.path } } satisfies Sha256Reply);
    },
  );
});
