/**
 * Progress on stderr for every long stage (download, surgery, verify, upload).
 * Bars only when stderr is a TTY; otherwise one line per finished stage, so CI logs stay readable.
 * `--quiet` shows errors only; `--json` keeps stdout for the single result object.
 */
import { createRequire } from "node:module";
import type cliProgress from "cli-progress";
import { formatBytes } from "./format-bytes.js";

// Required on first use: bars are drawn only on a TTY, and the library is a noticeable part of start-up time.
const requireBars = () => createRequire(import.meta.url)("cli-progress") as typeof cliProgress;

export interface ProgressOptions {
  quiet?: boolean;
  /** Where bars and messages go; stderr unless a test substitutes a stream. */
  stream?: NodeJS.WriteStream;
}

export type ProgressUnit = "bytes" | "files" | "items";

export interface ProgressTask {
  /** Sets the absolute amount done. */
  update(done: number): void;
  /** Grows the total when it becomes known late (e.g. after listing a repo). */
  setTotal(total: number): void;
  finish(): void;
}

function formatAmount(value: number, unit: ProgressUnit): string {
  return unit === "bytes" ? formatBytes(value) : String(Math.round(value));
}

export class ProgressDisplay {
  private readonly quiet: boolean;
  private readonly stream: NodeJS.WriteStream;
  private readonly interactive: boolean;
  private multibar?: cliProgress.MultiBar;

  constructor(options: ProgressOptions = {}) {
    this.quiet = options.quiet ?? false;
    this.stream = options.stream ?? process.stderr;
    this.interactive = !this.quiet && Boolean(this.stream.isTTY);
  }

  /** A message for the user (stderr), suppressed by --quiet. */
  log(message: string): void {
    if (this.quiet) return;
    if (this.multibar) this.multibar.log(`${message}\n`);
    else this.stream.write(`${message}\n`);
  }

  /** `started` (Date.now() ms): when the work began, if before its first progress report; the summary line counts from it. */
  start(label: string, total: number, unit: ProgressUnit = "bytes", started = Date.now()): ProgressTask {
    let done = 0;
    let currentTotal = total;
    let finished = false;
    if (!this.interactive) {
      return {
        update: (value) => void (done = value),
        setTotal: (value) => void (currentTotal = value),
        finish: () => {
          if (finished) return;
          finished = true;
          const seconds = ((Date.now() - started) / 1000).toFixed(1);
          this.log(`${label}: ${formatAmount(Math.max(done, currentTotal), unit)} in ${seconds}s`);
        },
      };
    }
    const bars = requireBars();
    this.multibar ??= new bars.MultiBar(
      {
        stream: this.stream,
        hideCursor: true,
        clearOnComplete: false,
        format: "{label} |{bar}| {percentage}% {amount}",
        barsize: 30,
      },
      bars.Presets.shades_classic,
    );
    const bar = this.multibar.create(Math.max(total, 1), 0, { label: label.padEnd(12), amount: "" });
    const render = () =>
      bar.update(done, {
        label: label.padEnd(12),
        amount: `${formatAmount(done, unit)} / ${formatAmount(currentTotal, unit)}`,
      });
    return {
      update: (value) => {
        done = value;
        render();
      },
      setTotal: (value) => {
        currentTotal = value;
        bar.setTotal(Math.max(value, 1));
        render();
      },
      finish: () => {
        if (finished) return;
        finished = true;
        done = Math.max(done, currentTotal);
        render();
        bar.stop();
      },
    };
  }

  stop(): void {
    this.multibar?.stop();
    this.multibar = undefined;
  }
}
