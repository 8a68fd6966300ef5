/**
 * apply verifies each shard while the next one is projected. These tests pin what that overlap must not change:
 * every shard is verified (reused ones included) and reported in shard order, progress is monotonic and complete,
 * and a bad shard anywhere fails the run, names the shard and tensor, and leaves neither DIR nor DIR.partial.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { applyModel, type ApplyReport, type SurgeryEvent } from "../../lib/surgery/apply-model.js";
import { prepareSurgery } from "../../lib/surgery/prepare-surgery.js";
import { shardKey } from "../../lib/surgery/resume-record.js";
import { PARTIAL_MARKER } from "../../lib/surgery/output-folder.js";
import { AbliterateError } from "../../lib/errors.js";
import { randomDirection, writeDirectionFile, writeTinyLlama } from "../helpers/tiny-llama.js";

const HIDDEN = 16;

function setup(root: string, shards: number) {
  const model = join(root, "model");
  const direction = join(root, "direction.safetensors");
  writeTinyLlama({ dir: model, dtype: "BF16", tied: false, hidden: HIDDEN, shards });
  writeDirectionFile(direction, [{ name: "direction", shape: [HIDDEN], values: randomDirection(HIDDEN, 11) }]);
  return { model, direction };
}

async function collect(run: AsyncGenerator<SurgeryEvent, unknown>): Promise<{ events: SurgeryEvent[]; result: unknown }> {
  const events: SurgeryEvent[] = [];
  for (;;) {
    const step = await run.next();
    if (step.done) return { events, result: step.value };
    events.push(step.value);
  }
}

test("apply with overlapped verification: every shard verified in order, progress monotonic and complete, timeline ordered", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-overlap-"));
  try {
    const { model, direction } = setup(root, 3);
    const out = join(root, "out");
    const { events, result } = await collect(applyModel({ modelDir: model, outDir: out, direction, chunkBytes: 64 }));
    const report = result as ApplyReport;
    const plan = events.find((event) => event.type === "plan");
    assert.ok(plan && plan.type === "plan");
    assert.equal(report.verification.passed, true);
    assert.deepEqual(
      report.verification.shards.map((shard) => shard.shard),
      ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"],
    );
    assert.equal(report.verification.tensorsChecked, report.tensorsChanged);
    for (const phase of ["apply", "verify"] as const) {
      const done = events.map((event) => (event.type === "progress" && event.phase === phase ? event.bytesDone : undefined)).filter((value) => value !== undefined);
      assert.ok(done.length > 0, `${phase} reports progress`);
      for (let index = 1; index < done.length; index += 1) assert.ok(done[index]! >= done[index - 1]!, `${phase} progress never goes back`);
      assert.equal(done.at(-1), plan.bytesTotal, `${phase} progress ends at the total`);
      const finished = events.findIndex((event) => event.type === "phase-done" && event.phase === phase);
      assert.ok(finished >= 0, `${phase} is reported done`);
      assert.ok(!events.slice(finished + 1).some((event) => event.type === "progress" && event.phase === phase), `no ${phase} progress after it is done`);
    }
    const { surgeryDone, verified, durable } = report.timeline;
    assert.ok(surgeryDone <= verified && verified <= durable && durable <= report.seconds, JSON.stringify(report.timeline));
    assert.ok(existsSync(out) && !existsSync(`${out}.partial`));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("a bad shard in the middle fails the overlapped verification: named, and neither DIR nor DIR.partial is left", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-overlap-"));
  try {
    const { model, direction } = setup(root, 3);
    const good = join(root, "good");
    for await (const _ of applyModel({ modelDir: model, outDir: good, direction })) void _;

    // A killed-looking partial whose record vouches for all three shards, the middle one tampered with: the rerun
    // reuses them, and only the verification stands between the tampered byte and a complete-looking DIR.
    const out = join(root, "out");
    const partial = `${out}.partial`;
    mkdirSync(partial);
    writeFileSync(join(partial, PARTIAL_MARKER), JSON.stringify({ tool: "abliterate", pid: 999_999_999 }));
    const { plan, checkpoint } = await prepareSurgery(model, { direction });
    const record: Record<string, string> = {};
    for (const shard of checkpoint.shards) {
      const file = basename(shard.path);
      cpSync(join(good, file), join(partial, file));
      record[file] = await shardKey(shard.path, plan.jobsByShard.get(shard.path) ?? []);
    }
    writeFileSync(join(partial, ".abliterate-resume.json"), JSON.stringify(record));
    const middle = checkpoint.shards[1]!;
    const target = middle.tensors.find((tensor) => /o_proj|down_proj/.test(tensor.name));
    assert.ok(target, "the middle shard holds a target tensor");
    const bytes = readFileSync(join(partial, basename(middle.path)));
    bytes[target.byteOffset + 1] ^= 0x40;
    writeFileSync(join(partial, basename(middle.path)), bytes);

    await assert.rejects(
      collect(applyModel({ modelDir: model, outDir: out, direction })),
      (error: unknown) =>
        error instanceof AbliterateError &&
        error.code === "VERIFY_FAILED" &&
        error.message.includes(basename(middle.path)) &&
        error.message.includes(target.name) &&
        !error.message.includes("model-00001") &&
        !error.message.includes("model-00003"),
    );
    assert.ok(!existsSync(out), "no DIR");
    assert.ok(!existsSync(partial), "no DIR.partial");
    assert.ok(!existsSync(`${out}.lock`), "lock released");
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
