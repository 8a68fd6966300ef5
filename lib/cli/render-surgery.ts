/** Drives progress bars from the surgery library's typed events and hands back the generator's result. */
import type { SurgeryEvent, SurgeryPhase } from "../surgery/events.js";
import type { ProgressDisplay, ProgressTask } from "./progress.js";

const LABELS: Record<SurgeryPhase, string> = { apply: "surgery", verify: "verify" };

export async function renderSurgery<R>(events: AsyncGenerator<SurgeryEvent, R>, display: ProgressDisplay): Promise<R> {
  const tasks = new Map<SurgeryPhase, ProgressTask>();
  const task = (phase: SurgeryPhase, total: number) => {
    let current = tasks.get(phase);
    if (!current) {
      current = display.start(LABELS[phase], total, "bytes");
      tasks.set(phase, current);
    }
    return current;
  };
  try {
    let step = await events.next();
    while (!step.done) {
      const event = step.value;
      if (event.type === "plan") {
        display.log(`plan: ${event.tensors} tensor(s) to edit in ${event.shards} shard(s)`);
      } else if (event.type === "progress") {
        task(event.phase, event.bytesTotal).update(event.bytesDone);
      } else {
        tasks.get(event.phase)?.finish();
      }
      step = await events.next();
    }
    return step.value;
  } finally {
    for (const current of tasks.values()) current.finish();
    display.stop();
  }
}
