/**
 * verifyModel is the check of an existing OUT against its source as the bytes are now (issue 17 item 1, used by
 * the one command before it reuses or pushes an OUT): it reads every byte of every shard and every other file
 * afresh, so one flipped byte anywhere, in an edited tensor, an untouched tensor, a shard header or a copied file,
 * fails it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { applyModel } from "../../lib/surgery/apply-model.js";
import { verifyModel, type VerifyReport } from "../../lib/surgery/verify-model.js";
import { readSafetensorsHeader } from "../../lib/safetensors/index.js";
import { randomDirection, writeDirectionFile, writeTinyLlama } from "../helpers/tiny-llama.js";

const HIDDEN = 16;

async function drain<R>(events: AsyncGenerator<unknown, R>): Promise<R> {
  let step = await events.next();
  while (!step.done) step = await events.next();
  return step.value;
}

test("verifyModel fails on one flipped byte in an edited tensor, an untouched tensor, a header or a copied file", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-verify-now-"));
  try {
    const model = join(root, "model");
    const out = join(root, "out");
    const direction = join(root, "d.safetensors");
    writeTinyLlama({ dir: model, dtype: "BF16", tied: false, hidden: HIDDEN, layers: 2, shards: 2 });
    writeDirectionFile(direction, [{ name: "direction", shape: [HIDDEN], values: randomDirection(HIDDEN, 3) }]);
    await drain(applyModel({ modelDir: model, outDir: out, direction, threads: 1 }));
    const verify = () => drain(verifyModel({ originalDir: model, modifiedDir: out, direction, threads: 1 })) as Promise<VerifyReport>;
    const clean = await verify();
    assert.equal(clean.passed, true, clean.failures.join("\n"));

    const shardPath = join(out, "model-00001-of-00002.safetensors");
    const header = await readSafetensorsHeader(shardPath);
    // byteOffset is the tensor's offset in the file; +1 is the high byte (sign, exponent) of a little-endian BF16.
    const at = (name: string, element: number) => header.byName.get(name)!.byteOffset + 2 * element + 1;
    const flips: [string, string, number, RegExp][] = [
      ["edited tensor (o_proj)", shardPath, at("model.layers.0.self_attn.o_proj.weight", 5), /tensor "model\.layers\.0\.self_attn\.o_proj\.weight" has 1 element\(s\) outside 1 ulp/],
      ["edited tensor (embedding)", shardPath, at("model.embed_tokens.weight", 0), /tensor "model\.embed_tokens\.weight" has 1 element\(s\) outside 1 ulp/],
      ["untouched tensor (q_proj)", shardPath, at("model.layers.0.self_attn.q_proj.weight", 2), /bytes outside the edited tensors differ, first at offset \d+ \(inside tensor "model\.layers\.0\.self_attn\.q_proj\.weight"/],
      ["shard header", shardPath, 20, /bytes outside the edited tensors differ.*\(in the header\)/],
      ["config.json", join(out, "config.json"), 10, /config\.json: differs from the original's at byte 10/],
    ];
    for (const [what, path, offset, failure] of flips) {
      const bytes = readFileSync(path);
      const saved = bytes[offset];
      bytes[offset] ^= 0xff;
      writeFileSync(path, bytes);
      const report = await verify();
      assert.equal(report.passed, false, `${what}: a flipped byte must fail verify`);
      assert.equal(report.failures.length, 1, `${what}: ${report.failures.join(" | ")}`);
      assert.match(report.failures[0], failure, what);
      bytes[offset] = saved;
      writeFileSync(path, bytes);
    }
    assert.equal((await verify()).passed, true, "restored, it passes again");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
