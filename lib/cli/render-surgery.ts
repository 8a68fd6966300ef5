/** Drives progress bars from the surgery library's typed events and hands back the generator's result. */
import type { SurgeryEvent, SurgeryPhase } from "../surgery/events.js";
import type { ProgressDisplay, ProgressTask } from "./progress.js";

const LABELS: Record<SurgeryPhase, string> = { apply: "surgery", verify: "verify" };

/** One surgery's bars, fed event by event (the pipeline renderer passes its surgery events here). */
export class SurgeryProgress {
  private readonly tasks = new Map<SurgeryPhase, ProgressTask>();

  constructor(private readonly display: ProgressDisplay) {}

  handle(event: SurgeryEvent): void {
    if (event.type === "plan") {
      this.display.log(`plan: ${event.tensors} tensor(s) to edit in ${event.shards} shard(s)`);
    } else if (event.type === "note") {
      this.display.log(`note: ${event.message}`);
    } else if (event.type === "progress") {
      let task = this.tasks.get(event.phase);
      if (!task) {
        task = this.display.start(LABELS[event.phase], event.bytesTotal, "bytes");
        this.tasks.set(event.phase, task);
      }
      task.update(event.bytesDone);
    } else {
      this.tasks.get(event.phase)?.finish();
    }
  }

  finish(): void {
    for (const task of this.tasks.values()) task.finish();
    this.tasks.clear();
    this.display.stop();
  }
}

export async function renderSurgery<R>(events: AsyncGenerator<SurgeryEvent, R>, display: ProgressDisplay): Promise<R> {
  const progress = new SurgeryProgress(display);
  try {
    let step = await events.next();
    while (!step.done) {
      progress.handle(step.value);
      step = await events.next();
    }
    return step.value;
  } finally {
    progress.finish();
  }
}
