/**
 * Renders the pipeline's typed events on stderr: a bar per running stage (when stderr is a terminal), "STAGE: reused
 * from WORKDIR" for a stage answered from saved results, findings as sentences, notes prefixed "note:". Returns the
 * pipeline's result. A failure is reported with the stage it happened in and where the finished stages' results are.
 */
import { AbliterateError } from "../errors.js";
import type { PipelineEvent, StageName } from "../pipeline/events.js";
import type { ProgressDisplay, ProgressTask } from "./progress.js";
import { SurgeryProgress } from "./render-surgery.js";

export async function renderPipeline<R>(events: AsyncGenerator<PipelineEvent, R>, display: ProgressDisplay, workDir: string): Promise<R> {
  const tasks = new Map<StageName, ProgressTask>();
  // A stage's first progress event comes after its first batch (the bench model's signature stage printed 7.2 s of
  // its 13.0 s): its line counts from the stage's start.
  const started = new Map<StageName, number>();
  const surgery = new SurgeryProgress(display);
  let current: StageName | undefined;
  try {
    let step = await events.next();
    while (!step.done) {
      const event = step.value;
      if (event.type === "stage") {
        current = event.stage;
        if (event.status === "start") started.set(event.stage, Date.now());
        else if (event.status === "reused") display.log(`${event.stage}: reused ${event.detail ?? `from ${workDir}`}`);
        else if (event.status === "done") {
          const task = tasks.get(event.stage);
          task?.finish();
          tasks.delete(event.stage);
          if (event.stage === "surgery") surgery.finish();
          display.stop();
          display.log(`${event.stage}: done${event.detail ? ` (${event.detail})` : ""}`);
        }
      } else if (event.type === "progress") {
        let task = tasks.get(event.stage);
        if (!task) {
          task = display.start(event.stage, event.total, "items", started.get(event.stage));
          tasks.set(event.stage, task);
        }
        task.setTotal(event.total);
        task.update(event.done);
      } else if (event.type === "surgery") {
        surgery.handle(event.event);
      } else if (event.type === "finding") {
        display.log(event.message);
      } else {
        display.log(`note: ${event.message}`);
      }
      step = await events.next();
    }
    return step.value;
  } catch (error) {
    if (error instanceof AbliterateError && current) {
      throw new AbliterateError(error.code, `${current} stage failed: ${error.message}\n(results of the finished stages are in ${workDir}; rerun the same command to resume)`, {
        file: error.file,
        status: error.status,
        cause: error,
      });
    }
    throw error;
  } finally {
    for (const task of tasks.values()) task.finish();
    surgery.finish();
  }
}
