/**
 * lib/fs/refuse-output-overlap.ts (issue 17 items 5 and 18): an output may not equal, contain or lie inside an
 * input, compared after resolving links, including the blobs a Hub snapshot's links point to.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AbliterateError, ErrorCodes } from "../../lib/errors.js";
import { refuseOutputOverlap } from "../../lib/fs/refuse-output-overlap.js";

function refused(pattern: RegExp): (error: unknown) => boolean {
  return (error) => error instanceof AbliterateError && error.code === ErrorCodes.INVALID_ARGUMENT && pattern.test(error.message);
}

test("equal, containing, inside and linked outputs are refused; siblings and missing inputs are not", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-overlap-"));
  try {
    const model = join(root, "model");
    mkdirSync(model);
    writeFileSync(join(model, "config.json"), "{}");
    writeFileSync(join(root, "d.safetensors"), "d");
    const inputs = [{ path: model, label: "the model" }, { path: join(root, "d.safetensors"), label: "the direction file" }];
    await assert.rejects(refuseOutputOverlap({ output: model, inputs }), refused(/model is the model/));
    await assert.rejects(refuseOutputOverlap({ output: `${model}/`, inputs }), refused(/is the model/));
    await assert.rejects(refuseOutputOverlap({ output: root, inputs }), refused(/contains the model/));
    await assert.rejects(refuseOutputOverlap({ output: join(model, "abl"), inputs }), refused(/lies inside the model/));
    await assert.rejects(refuseOutputOverlap({ output: join(model, "new", "deeper"), inputs }), refused(/lies inside the model/));
    await assert.rejects(refuseOutputOverlap({ output: join(root, "d.safetensors"), inputs }), refused(/is the direction file/));
    symlinkSync(model, join(root, "link"));
    await assert.rejects(refuseOutputOverlap({ output: join(root, "link"), inputs }), refused(/link is the model/));
    await assert.rejects(refuseOutputOverlap({ output: join(root, "link", "x"), inputs }), refused(/lies inside the model/));
    // The one command's own inputs, passed by the caller.
    mkdirSync(join(root, "work"));
    writeFileSync(join(root, "work", "h.txt"), "x");
    await assert.rejects(refuseOutputOverlap({ output: join(root, "work"), inputs: [{ path: join(root, "work", "h.txt"), label: "the --harmful prompts" }], option: "--work-dir" }), refused(/--work-dir .* contains the --harmful prompts/));
    // Not overlaps: a sibling sharing a prefix, a fresh path, an input that does not exist (a Hub dataset id).
    await refuseOutputOverlap({ output: `${model}2`, inputs });
    await refuseOutputOverlap({ output: join(root, "out"), inputs });
    await refuseOutputOverlap({ output: join(root, "mlabonne", "x"), inputs: [{ path: "mlabonne/harmful_behaviors", label: "a prompts file" }] });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("an output around the blobs a Hub snapshot links to is refused", async () => {
  const root = mkdtempSync(join(tmpdir(), "abl-overlap-"));
  try {
    const blobs = join(root, "hub", "models--org--name", "blobs");
    const snapshot = join(root, "hub", "models--org--name", "snapshots", "abc");
    mkdirSync(blobs, { recursive: true });
    mkdirSync(snapshot, { recursive: true });
    writeFileSync(join(blobs, "0123"), "weights");
    symlinkSync(join(blobs, "0123"), join(snapshot, "model.safetensors"));
    const inputs = [{ path: snapshot, label: "the model" }];
    await assert.rejects(refuseOutputOverlap({ output: blobs, inputs }), refused(/contains a file linked from the model/));
    await assert.rejects(refuseOutputOverlap({ output: join(root, "hub"), inputs }), refused(/contains the model/));
    await refuseOutputOverlap({ output: join(root, "elsewhere"), inputs });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
