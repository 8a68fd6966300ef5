/**
 * Makes a folder durable before it is renamed into place: fsync of every regular file under it, then of every
 * folder (so their entries are on disk too). Files are synced concurrently, so the kernel writes them back in
 * parallel. Nothing may add or remove entries while it runs: it lists the folder first.
 */
import { open, readdir } from "node:fs/promises";
import { join } from "node:path";
import { fromFileSystemError } from "./file-system-error.js";

export async function fsyncPath(path: string): Promise<void> {
  let handle;
  try {
    handle = await open(path, "r");
    await handle.sync();
  } catch (error) {
    // fsync and close errors carry no path; a failed writeback (EIO, ENOSPC on some filesystems) must name it.
    throw fromFileSystemError(error, path);
  } finally {
    await handle?.close();
  }
}

/** `alreadySynced`: files the caller fsynced itself and has not written since, skipped. */
export async function fsyncTree(dir: string, options: { alreadySynced?: ReadonlySet<string> } = {}): Promise<void> {
  const files: string[] = [];
  const folders: string[] = [dir];
  for (let i = 0; i < folders.length; i += 1) {
    for (const entry of await readdir(folders[i], { withFileTypes: true })) {
      const path = join(folders[i], entry.name);
      if (entry.isDirectory()) folders.push(path);
      else if (entry.isFile() && !options.alreadySynced?.has(path)) files.push(path);
    }
  }
  await Promise.all(files.map(fsyncPath));
  // Some filesystems refuse fsync on folders; the files are what must not be torn.
  await Promise.all(folders.map((folder) => fsyncPath(folder).catch(() => undefined)));
}
