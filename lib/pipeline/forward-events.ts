/** Runs callback-style forward work (runForward's onProgress) as pipeline progress events of one stage. */
import { EventChannel } from "../event-channel.js";
import type { PipelineEvent, StageName } from "./events.js";

export async function* withStageProgress<R>(stage: StageName, work: (onProgress: (done: number, total: number) => void) => Promise<R>): AsyncGenerator<PipelineEvent, R> {
  const channel = new EventChannel<PipelineEvent>();
  const onProgress = (done: number, total: number) => channel.push({ type: "progress", stage, done, total }, (queued) => queued.type === "progress");
  return yield* channel.until(work(onProgress));
}
