/**
 * A Blob over a byte range of a file on disk, read lazily and in bounded chunks.
 * @huggingface/hub's own FileBlob streams through Readable.toWeb, which on Node 20 reads ahead without
 * backpressure (a multi-GB shard ends up in memory); this one pulls 1 MiB at a time, and HubHttp recognises it
 * to upload it with node:http and a real pipeline.
 */
import { createReadStream } from "node:fs";
import { open, stat } from "node:fs/promises";
import { Readable } from "node:stream";

const CHUNK_BYTES = 1 << 20;

export class DiskFileBlob extends Blob {
  static async open(path: string): Promise<DiskFileBlob> {
    const { size } = await stat(path);
    return new DiskFileBlob(path, 0, size);
  }

  private constructor(
    readonly path: string,
    readonly start: number,
    readonly end: number,
  ) {
    super([]);
  }

  // @ts-expect-error Node's Blob typings declare `size` as a field; at runtime it is an accessor, as here.
  override get size(): number {
    return this.end - this.start;
  }

  override slice(start = 0, end = this.size): DiskFileBlob {
    if (start < 0 || end < 0) throw new TypeError("DiskFileBlob.slice does not support negative offsets");
    return new DiskFileBlob(this.path, Math.min(this.start + start, this.end), Math.min(this.start + end, this.end));
  }

  override async arrayBuffer(): Promise<ArrayBuffer> {
    const handle = await open(this.path, "r");
    try {
      const buffer = Buffer.alloc(this.size);
      let done = 0;
      while (done < this.size) {
        const { bytesRead } = await handle.read(buffer, done, this.size - done, this.start + done);
        if (bytesRead === 0) throw new Error(`${this.path} shrank while being read`);
        done += bytesRead;
      }
      return buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength) as ArrayBuffer;
    } finally {
      await handle.close();
    }
  }

  override async text(): Promise<string> {
    return Buffer.from(await this.arrayBuffer()).toString("utf8");
  }

  override stream(): ReturnType<Blob["stream"]> {
    const { path, end } = this;
    let position = this.start;
    let handle: Awaited<ReturnType<typeof open>> | undefined;
    return new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          handle ??= await open(path, "r");
          const length = Math.min(CHUNK_BYTES, end - position);
          if (length <= 0) {
            await handle.close();
            controller.close();
            return;
          }
          const buffer = Buffer.allocUnsafe(length);
          const { bytesRead } = await handle.read(buffer, 0, length, position);
          if (bytesRead === 0) {
            await handle.close();
            controller.error(new Error(`${path} shrank while being read`));
            return;
          }
          position += bytesRead;
          controller.enqueue(new Uint8Array(buffer.buffer, buffer.byteOffset, bytesRead));
        },
        async cancel() {
          await handle?.close();
        },
      },
      { highWaterMark: 0 },
    ) as ReturnType<Blob["stream"]>;
  }

  /** A Node stream of the range, for piping into a socket with backpressure. */
  nodeStream(): Readable {
    if (this.size === 0) return Readable.from([]);
    return createReadStream(this.path, { start: this.start, end: this.end - 1, highWaterMark: CHUNK_BYTES });
  }
}
