/** `abliterate push DIR REPO`: one commit with every file of DIR and a model card, with upload progress. */
import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import type { PushResult, UploadEvent, UploadPhase } from "../hub/push-model.js";
import { resolveHubToken } from "../hub/hub-token.js";
import { formatBytes } from "./format-bytes.js";
import { printJson, type GlobalArgs } from "./global-options.js";
import { ProgressDisplay, type ProgressTask } from "./progress.js";

export interface PushOptionArgs {
  private?: boolean;
  branch?: string;
  message?: string;
  "create-pr"?: boolean;
}

interface PushArgs extends GlobalArgs, PushOptionArgs {
  dir: string;
  repo: string;
}

/** The push flags, shared with the one command. */
export function withPushOptions<T>(yargs: Argv<T>) {
  return yargs
    .option("private", { type: "boolean", describe: "create the repo as private (an existing repo keeps its visibility)" })
    .option("branch", { type: "string", describe: "commit to this branch, created from main when missing (default main)" })
    .option("message", { type: "string", describe: "commit message" })
    .option("create-pr", { type: "boolean", describe: "open a pull request instead of committing to the branch" });
}

const LABELS: Record<UploadPhase, string> = { hash: "hash", upload: "upload" };

/** Drives the upload bars from pushModel's events and hands back its result. */
export async function renderUpload(events: AsyncGenerator<UploadEvent, PushResult>, display: ProgressDisplay): Promise<PushResult> {
  const tasks = new Map<UploadPhase, ProgressTask>();
  try {
    let step = await events.next();
    while (!step.done) {
      const event = step.value;
      if (event.type === "skipped") {
        display.log(`skipped ${event.path}: ${event.reason}`);
      } else if (event.type === "file-transfer") {
        display.log(`  ${event.path}: ${formatBytes(event.bytesNew)} new, ${formatBytes(event.bytesDeduplicated)} already on the Hub`);
      } else if (event.type === "sent") {
        // The upload bar counts bytes processed; what actually went out is summed up after the commit.
      } else if (event.type === "repo") {
        display.log(event.created ? `created ${event.repo}` : `pushing to existing repo ${event.repo}`);
      } else if (event.type === "plan") {
        display.log(`uploading ${event.files} file(s), ${formatBytes(event.bytesTotal)}, in one commit`);
      } else if (event.type === "progress") {
        let task = tasks.get(event.phase);
        if (!task) {
          task = display.start(LABELS[event.phase], event.bytesTotal, "bytes");
          tasks.set(event.phase, task);
        }
        task.update(event.bytesDone);
      } else if (event.type === "phase") {
        if (event.phase === "upload" || event.phase === "commit") tasks.get("hash")?.finish();
        if (event.phase === "commit") tasks.get("upload")?.finish();
      } else if (event.type === "waiting") {
        display.log(`waiting for the Hub to answer ${event.url} (${event.seconds} s so far)`);
      } else if (event.type === "retry") {
        display.log(`retrying ${event.url} in ${(event.delayMs / 1000).toFixed(1)}s (${event.reason}, attempt ${event.attempt})`);
      }
      step = await events.next();
    }
    return step.value;
  } finally {
    for (const task of tasks.values()) task.finish();
    display.stop();
  }
}

/** "through Xet: 1.2 GB sent, 3.4 GB deduplicated" — what the upload cost on the wire. */
export function describeTransfer(result: PushResult): string {
  const { transfer } = result;
  return `through ${transfer.protocol === "xet" ? "Xet" : "LFS"}: ${formatBytes(transfer.bytesSent)} sent, ${formatBytes(transfer.bytesDeduplicated)} already on the Hub (not sent)`;
}

export function describePush(result: PushResult): string {
  return result.pullRequestUrl
    ? `opened ${result.pullRequestUrl} (commit ${result.commitOid.slice(0, 12)}; ${describeTransfer(result)})`
    : `pushed ${result.files} file(s) to ${result.repo}@${result.branch} (${describeTransfer(result)}): ${result.commitUrl}`;
}

export const pushCommand: CommandModule<GlobalArgs, PushArgs> = {
  command: "push <dir> <repo>",
  describe: "upload a folder to a Hub model repo in one commit, with a model card",
  builder: (yargs) =>
    withPushOptions(
      (yargs as Argv<GlobalArgs>)
        .positional("dir", { type: "string", demandOption: true, describe: "folder to upload (e.g. the output of apply)" })
        .positional("repo", { type: "string", demandOption: true, describe: "target repo id, namespace/name (created when missing)" }),
    ) as unknown as Argv<PushArgs>,
  handler: async (args: ArgumentsCamelCase<PushArgs>) => {
    // Loaded here, not at the top: @huggingface/hub costs every other command ~30 ms of start-up.
    const { pushModel } = await import("../hub/push-model.js");
    const display = new ProgressDisplay({ quiet: args.quiet || args.json });
    const { token } = resolveHubToken({ explicit: args.token });
    const result = await renderUpload(
      pushModel({ dir: args.dir, repo: args.repo, token, private: args.private, branch: args.branch, message: args.message, createPr: args["create-pr"] }),
      display,
    );
    if (args.json) {
      printJson({ ok: true, push: result });
      return;
    }
    display.log(describePush(result));
  },
};
