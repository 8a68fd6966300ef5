/**
 * Lets callback-style progress (stream chunks, retries, library callbacks) surface as events of an async
 * generator while the work runs: `yield* channel.until(work)` yields what was pushed, then returns work's result.
 */
export class EventChannel<T> {
  private readonly queue: T[] = [];
  private wake?: () => void;

  /** Queues an event; `coalesce` replaces a queued event it matches, so fast progress does not pile up. */
  push(event: T, coalesce?: (queued: T) => boolean): void {
    const last = this.queue.length - 1;
    if (coalesce && last >= 0 && coalesce(this.queue[last])) this.queue[last] = event;
    else this.queue.push(event);
    this.wake?.();
  }

  async *until<R>(work: Promise<R>): AsyncGenerator<T, R> {
    let settled = false;
    let result: R | undefined;
    let failure: { error: unknown } | undefined;
    work.then(
      (value) => {
        settled = true;
        result = value;
        this.wake?.();
      },
      (error: unknown) => {
        settled = true;
        failure = { error };
        this.wake?.();
      },
    );
    for (;;) {
      while (this.queue.length > 0) yield this.queue.shift()!;
      if (settled) {
        if (failure) throw failure.error;
        return result as R;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }

  /** Events pushed outside any `until` (e.g. between awaits). */
  *drain(): Generator<T> {
    while (this.queue.length > 0) yield this.queue.shift()!;
  }
}

/** Runs an event generator to its end for a caller that wants only its result (tests, scripts). */
export async function resultOf<R>(events: AsyncGenerator<unknown, R>): Promise<R> {
  let step = await events.next();
  while (!step.done) step = await events.next();
  return step.value;
}
