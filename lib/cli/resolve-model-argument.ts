/**
 * MODEL arguments of every command: a local folder is used as it is; a Hub repo id (org/name[@revision]) or URL
 * is downloaded into the shared Hugging Face cache, with a progress bar, and recorded as the model's source.
 */
import type { DownloadEvent } from "../hub/download-model.js";
import { resolveModelDir } from "../hub/resolve-model-dir.js";
import type { ModelSource } from "../provenance/provenance.js";
import { formatBytes } from "./format-bytes.js";
import type { ProgressDisplay, ProgressTask } from "./progress.js";

export interface ResolvedModelArgument {
  dir: string;
  source?: ModelSource;
}

/** An onEvent for resolveModelDir that draws the download bar and reports retries, resumes and cache use. */
export function downloadRenderer(display: ProgressDisplay): { onEvent: (event: DownloadEvent) => void; finish: () => void } {
  let task: ProgressTask | undefined;
  return {
    onEvent: (event) => {
      if (event.type === "resolved") {
        display.log(
          `${event.repo}@${event.revision} is commit ${event.commit.slice(0, 12)}: ${event.files} file(s), ` +
            `${formatBytes(event.bytesToDownload)} to download, ${formatBytes(event.bytesCached)} already in the cache`,
        );
        if (event.bytesToDownload > 0) task = display.start("download", event.bytesToDownload, "bytes");
      } else if (event.type === "progress") {
        task?.update(event.bytesDone);
      } else if (event.type === "waiting") {
        display.log(`waiting for the Hub to answer ${event.url} (${event.seconds} s so far)`);
      } else if (event.type === "retry") {
        display.log(`retrying ${event.url} in ${(event.delayMs / 1000).toFixed(1)}s (${event.reason}, attempt ${event.attempt})`);
      } else if (event.type === "resume") {
        display.log(`resuming ${event.file} from byte ${event.fromByte} (${event.reason})`);
      } else if (event.type === "offline") {
        display.log(`${event.reason}; using the copy in the cache`);
      }
    },
    finish: () => {
      task?.finish();
      display.stop();
    },
  };
}

/** MODEL (folder or Hub repo) → folder, with download progress; what apply records as the source. */
export async function resolveModelArgument(params: { model: string; token?: string; display: ProgressDisplay }): Promise<ResolvedModelArgument> {
  const renderer = downloadRenderer(params.display);
  try {
    const resolved = await resolveModelDir({ model: params.model, token: params.token, onEvent: renderer.onEvent });
    return { dir: resolved.dir, ...(resolved.repo ? { source: { repo: resolved.repo, revision: resolved.revision, commit: resolved.commit } } : {}) };
  } finally {
    renderer.finish();
  }
}

