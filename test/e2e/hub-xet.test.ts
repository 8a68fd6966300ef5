/**
 * Push and download through Xet against the emulator, in-process: a base checkpoint is pushed, downloaded back
 * through Xet, abliterated with applyModel, and the result pushed to a new repo. The CAS's byte counters say how
 * much was sent: about the changed bytes, not the checkpoint; a second push of the same folder sends nothing new;
 * a push after changing one tensor sends about that tensor. The repos read back byte for byte.
 */
import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, cpSync, openSync, readFileSync, readdirSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";
import { downloadModel, type DownloadEvent } from "../../lib/hub/download-model.js";
import { pushModel, type PushResult, type UploadEvent } from "../../lib/hub/push-model.js";
import { applyModel } from "../../lib/surgery/apply-model.js";
import { parseSafetensorsHeader } from "../../lib/safetensors/parse-header.js";
import { randomDirection, writeDirectionFile, writeTinyLlama } from "../helpers/tiny-llama.js";
import { startHubEmulator } from "../hub-emulator/hub-emulator.js";
import { scratch } from "../hub-emulator/test-fixtures.js";

const TOKEN = "hf_XetWriter0123456789abcdef";
const HIDDEN = 1024;
const hub = await startHubEmulator({ xet: true });
hub.addToken(TOKEN, { user: "me", orgs: ["org"] });
const { root, cleanup } = scratch("abl-hub-xet-");
after(async () => {
  await hub.close();
  cleanup();
});

async function drain<E, R>(run: AsyncGenerator<E, R>, onEvent?: (event: E) => void): Promise<R> {
  let step = await run.next();
  while (!step.done) {
    onEvent?.(step.value);
    step = await run.next();
  }
  return step.value;
}

const push = (dir: string, repo: string, events: UploadEvent[] = [], baseModelDir?: string) => drain(pushModel({ dir, repo, token: TOKEN, endpoint: hub.url, ...(baseModelDir ? { baseModelDir } : {}) }), (event) => events.push(event));

/** Bytes of the tensors whose data differ between two checkpoints with the same layout, overall and per shard. */
function changedBytes(a: string, b: string): { changed: number; total: number; perFile: Map<string, { changed: number; firstChunkChanged: boolean }> } {
  let changed = 0;
  let total = 0;
  const perFile = new Map<string, { changed: number; firstChunkChanged: boolean }>();
  for (const name of readdirSync(a).filter((file) => file.endsWith(".safetensors"))) {
    const left = readFileSync(join(a, name));
    const right = readFileSync(join(b, name));
    total += left.length;
    let fileChanged = 0;
    const header = parseSafetensorsHeader({ bytes: left, fileSize: left.length, path: name });
    for (const tensor of header.tensors) {
      const start = tensor.byteOffset;
      const end = tensor.byteOffset + tensor.byteLength;
      if (!left.subarray(start, end).equals(right.subarray(start, end))) fileChanged += end - start;
    }
    changed += fileChanged;
    // The first chunk is at least 8 KiB: whether it changed decides what the library's dedup query finds.
    perFile.set(name, { changed: fileChanged, firstChunkChanged: !left.subarray(0, 8192).equals(right.subarray(0, 8192)) });
  }
  return { changed, total, perFile };
}

const base = join(root, "base");
const direction = join(root, "refusal.safetensors");
const out = join(root, "out");
let baseDownload: { dir: string; xorbBytes: number; cdnBytes: number };
let first: PushResult;
let firstSent = 0;
let sizes: ReturnType<typeof changedBytes>;
const firstEvents: UploadEvent[] = [];

before(async () => {
  writeTinyLlama({ dir: base, dtype: "BF16", tied: true, hidden: HIDDEN, intermediate: 2 * HIDDEN, layers: 2, vocab: 4096, shards: 2 });
  writeDirectionFile(direction, [{ name: "direction", shape: [HIDDEN], values: randomDirection(HIDDEN, 5) }]);
  await push(base, "org/base");
  hub.resetCounters();
  const events: DownloadEvent[] = [];
  const downloaded = await drain(downloadModel({ repo: "org/base", token: TOKEN, endpoint: hub.url, cacheDir: join(root, "cache") }), (event) => events.push(event));
  baseDownload = { dir: downloaded.dir, xorbBytes: hub.counter("xorb-download").bytesOut, cdnBytes: hub.counter("lfs-download").bytesOut };
  await drain(applyModel({ modelDir: downloaded.dir, outDir: out, direction, source: { repo: "org/base", revision: "main", commit: downloaded.commit } }));
  sizes = changedBytes(base, out);
  hub.resetCounters();
  first = await push(out, "me/abl", firstEvents, downloaded.dir);
  firstSent = hub.counter("xorb-upload").bytesIn;
});

test("the base is downloaded through Xet (reconstruction and xorb ranges), byte-identical, in the Python cache layout", () => {
  assert.ok(baseDownload.xorbBytes > 0, "xorb ranges were fetched");
  assert.equal(baseDownload.cdnBytes, 0, "nothing came through the plain LFS route");
  assert.ok(baseDownload.dir.includes(join("cache", "models--org--base", "snapshots")));
  for (const name of readdirSync(base)) assert.deepEqual(readFileSync(join(baseDownload.dir, name)), readFileSync(join(base, name)), name);
});

test("pushing the abliterated model sends at most the changed bytes + 10 %, and reports it per file", () => {
  const weights = first.transfer.files.filter((file) => file.path.endsWith(".safetensors"));
  console.log(`dedup: checkpoint ${sizes.total} bytes, changed ${sizes.changed} bytes, sent to the CAS ${firstSent} bytes (${((100 * firstSent) / sizes.changed).toFixed(1)} % of changed), shards ${hub.counter("shard-upload").bytesIn} bytes`);
  for (const file of weights) {
    const local = sizes.perFile.get(file.path)!;
    console.log(`dedup: ${file.path}: ${file.bytes} bytes, changed ${local.changed}, first chunk ${local.firstChunkChanged ? "changed" : "unchanged"}, new ${file.bytesNew}, deduplicated ${file.bytesDeduplicated}`);
    assert.equal(file.bytesNew + file.bytesDeduplicated, file.bytes);
    assert.ok(file.bytesNew <= local.changed * 1.1, `${file.path}: ${file.bytesNew} new bytes for ${local.changed} changed`);
  }
  assert.ok(sizes.perFile.get("model-00001-of-00002.safetensors")!.firstChunkChanged, "the first shard opens with the edited embedding");
  assert.ok(sizes.changed > 0 && sizes.changed < sizes.total);
  assert.ok(firstSent <= sizes.changed * 1.1, `sent ${firstSent} bytes for ${sizes.changed} changed`);
  assert.equal(first.transfer.protocol, "xet");
  assert.equal(first.transfer.bytesSent, firstSent, "the reported bytes are what the CAS received");
  assert.equal(weights.length, 2);
  assert.ok(first.transfer.bytesDeduplicated >= sizes.total - sizes.changed * 1.1);
  assert.ok(firstEvents.some((event) => event.type === "file-transfer"), "per-file progress events");
  assert.ok(firstEvents.some((event) => event.type === "sent"), "bytes-sent progress events");
});

test("the pushed repo reads back byte-identical to the local output, with its card and abliteration.json", () => {
  const files = hub.files("me/abl");
  for (const name of readdirSync(out)) {
    if (name === "README.md") continue;
    assert.deepEqual(files.get(name)?.content, readFileSync(join(out, name)), name);
  }
  assert.ok(files.get("README.md")?.content.toString().includes("org/base"), "card names the base model");
  assert.ok(files.has("abliteration.json"));
});

test("a second push of the same folder sends almost nothing; one changed tensor sends about that tensor", async () => {
  hub.resetCounters();
  const again = await push(out, "me/abl");
  const resent = hub.counter("xorb-upload").bytesIn;
  assert.ok(resent <= sizes.changed * 0.01, `second push sent ${resent} bytes`);
  assert.equal(again.transfer.bytesSent, resent);

  const edited = join(root, "edited");
  cpSync(out, edited, { recursive: true });
  const shard = readdirSync(edited).find((name) => name.endsWith("-of-00002.safetensors") && name.startsWith("model-00002"))!;
  const bytes = readFileSync(join(edited, shard));
  const header = parseSafetensorsHeader({ bytes, fileSize: bytes.length, path: shard });
  const tensor = header.tensors.find((entry) => entry.name.endsWith("mlp.up_proj.weight"))!;
  const length = tensor.byteLength;
  const fd = openSync(join(edited, shard), "r+");
  writeSync(fd, Buffer.alloc(length, 0x3c), 0, length, tensor.byteOffset);
  closeSync(fd);
  copyFileSync(join(out, "abliteration.json"), join(edited, "abliteration.json"));
  hub.resetCounters();
  await push(edited, "me/abl", [], baseDownload.dir);
  const sent = hub.counter("xorb-upload").bytesIn;
  console.log(`edit: one tensor of ${length} bytes changed, sent ${sent} bytes`);
  // The dedup index answers with the shard that registered a chunk's xorb. The base's answer covers the base's
  // chunks; the chunks the first push added to this shard are known from its own shard, which only an eligible
  // chunk (hash ≡ 0 mod 1024, about one per 64 MiB) leads to: at this size they are sent again, the rest is not.
  const shardChanged = sizes.perFile.get(shard)!.changed;
  assert.ok(sent <= (length + shardChanged) * 1.1, `sent ${sent} bytes for a ${length}-byte tensor (shard had ${shardChanged} changed bytes)`);
  assert.ok(sent < bytes.length / 2, "not the whole shard");
  assert.deepEqual(hub.files("me/abl").get(shard)?.content, readFileSync(join(edited, shard)));
});
