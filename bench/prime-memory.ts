import { execFileSync } from "node:child_process";

/**
 * Touches `bytes` of memory in a child and exits, so that much free memory is backed by the host again when the next
 * command starts. On this project's VMs (virtio-balloon with free-page reporting) memory freed a few seconds ago has
 * been handed back to the host, and the first write into it costs the guest several times the copy: a 440 MB buffered
 * write took 0.10–0.15 s of system time right after such a priming and 1.0–1.1 s without it, 15 s after the previous
 * output was deleted; 800 MB of fresh huge pages took 1.03 s to touch the first time and 0.07 s right after. Which
 * command pays that, and how much, depends on what ran before it and how long ago, so without priming the medians
 * compare luck (cp+sync measured 1.15 s and 3.76 s in one run; one engine generation run 3.8–5.0 s). BENCH_PRIME=0
 * turns it off. Not timed.
 */
export function primeMemory(bytes: number): void {
  if (process.env.BENCH_PRIME === "0" || bytes <= 0) return;
  const script = `const held = []; for (let left = ${bytes}; left > 0; left -= 2 ** 28) held.push(Buffer.allocUnsafe(Math.min(left, 2 ** 28)).fill(1));`;
  execFileSync(process.execPath, ["-e", script]);
}
