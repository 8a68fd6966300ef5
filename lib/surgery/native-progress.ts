/**
 * Turns a native call that reports progress through a callback into an async generator of progress values,
 * so the library exposes progress as typed events (huggingface.js style) and never prints.
 */
export async function* withProgress<P, R>(run: (onProgress: (progress: P) => void) => Promise<R>): AsyncGenerator<P, R> {
  const pending: P[] = [];
  let wake: (() => void) | undefined;
  let settled = false;
  let result: R | undefined;
  let failure: unknown;
  let failed = false;
  run((progress) => {
    pending.push(progress);
    wake?.();
  }).then(
    (value) => {
      result = value;
      settled = true;
      wake?.();
    },
    (error: unknown) => {
      failure = error;
      failed = true;
      settled = true;
      wake?.();
    },
  );
  for (;;) {
    while (pending.length > 0) yield pending.shift() as P;
    if (settled) break;
    await new Promise<void>((resolve) => (wake = resolve));
    wake = undefined;
  }
  while (pending.length > 0) yield pending.shift() as P;
  if (failed) throw failure;
  return result as R;
}
