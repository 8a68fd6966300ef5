/** The CLI's progress display: bars on a TTY (cli-progress, loaded on first use), one line per stage otherwise, nothing with --quiet. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { ProgressDisplay } from "../../lib/cli/progress.js";
import type { PipelineEvent } from "../../lib/pipeline/events.js";

function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  }) as unknown as NodeJS.WriteStream;
  // What cli-progress asks of a terminal.
  Object.assign(stream, { isTTY, columns: 100, cursorTo: () => true, moveCursor: () => true, clearLine: () => true, clearScreenDown: () => true });
  return { stream, text: () => chunks.join("") };
}

test("a TTY gets a bar with the label and the percentage; a pipe gets one summary line; --quiet gets nothing", () => {
  const tty = fakeStream(true);
  const drawing = new ProgressDisplay({ stream: tty.stream });
  const bar = drawing.start("surgery", 200, "items");
  bar.update(100);
  bar.finish();
  drawing.stop();
  assert.match(tty.text(), /surgery +\|█+\| 100% 200 \/ 200/);

  const pipe = fakeStream(false);
  const display = new ProgressDisplay({ stream: pipe.stream });
  const line = display.start("verify", 3, "items");
  line.update(3);
  line.finish();
  assert.match(pipe.text(), /^verify: 3 in \d+\.\ds\n$/);
  assert.doesNotMatch(pipe.text(), /\|/);

  const quiet = fakeStream(true);
  const silent = new ProgressDisplay({ stream: quiet.stream, quiet: true });
  silent.log("hello");
  const task = silent.start("download", 10);
  task.update(10);
  task.finish();
  assert.equal(quiet.text(), "");
});

test("a pipeline stage's line counts from the stage's start, not from its first progress event", async () => {
  const { renderPipeline } = await import("../../lib/cli/render-pipeline.js");
  async function* events(): AsyncGenerator<PipelineEvent, string> {
    yield { type: "stage", stage: "signature", status: "start" };
    // The first batch: no progress is reported until it is done.
    await new Promise((resolve) => setTimeout(resolve, 400));
    yield { type: "progress", stage: "signature", done: 1, total: 2 };
    yield { type: "progress", stage: "signature", done: 2, total: 2 };
    yield { type: "stage", stage: "signature", status: "done" };
    return "result";
  }
  const pipe = fakeStream(false);
  assert.equal(await renderPipeline(events(), new ProgressDisplay({ stream: pipe.stream }), "/work"), "result");
  const seconds = Number(/^signature: 2 in (\d+\.\d)s$/m.exec(pipe.text())?.[1]);
  assert.ok(seconds >= 0.35, `the line counts the first batch: ${pipe.text()}`);
});
