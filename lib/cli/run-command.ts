/**
 * The one command: `abliterate MODEL (--out DIR | --push REPO)` = download (when MODEL is a Hub repo) → prompts →
 * directions → selection → apply → verify → evaluate → report → push (lib/pipeline/run-pipeline.ts); with `--direction FILE`
 * the direction stages are skipped: download → apply → verify → push. It exits 0 only when verification passed (applyModel throws VERIFY_FAILED
 * otherwise). With --push and no --out, the checkpoint is built in a temporary folder that is removed afterwards,
 * whether the run succeeds, fails, or is interrupted.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import { AbliterateError, ErrorCodes } from "../errors.js";
import { isHubOffline } from "../hub/hub-endpoint.js";
import { resolveHubToken } from "../hub/hub-token.js";
import type { Provenance } from "../provenance/provenance.js";
import { printJson, type GlobalArgs } from "./global-options.js";
import { ProgressDisplay } from "./progress.js";
import { describePush, renderUpload, withPushOptions, type PushOptionArgs } from "./push-command.js";
import { renderSurgery } from "./render-surgery.js";
import { resolveModelArgument } from "./resolve-model-argument.js";
import { surgeryParamsFrom, withSurgeryOptions, type SurgeryArgs } from "./surgery-options.js";
import { threadsFrom } from "./threads-option.js";
import { contrastSources, directionStageOptions, searchSettings, withPromptOptions, withSelectionOptions, type PromptArgs, type SelectionArgs } from "./pipeline-options.js";
import type { PipelineResult } from "../pipeline/run-pipeline.js";
import { verifiedSummary } from "../surgery/verified-summary.js";
import { renderPipeline } from "./render-pipeline.js";

interface RunArgs extends GlobalArgs, SurgeryArgs, PushOptionArgs, PromptArgs, SelectionArgs {
  model: string;
  out?: string;
  push?: string;
  force?: boolean;
}

/** Removes the temporary output even when the user interrupts the run. */
function removeOnSignal(dir: string): () => void {
  const handler = (signal: NodeJS.Signals) => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(signal === "SIGINT" ? 130 : 143);
  };
  process.once("SIGINT", handler);
  process.once("SIGTERM", handler);
  return () => {
    process.off("SIGINT", handler);
    process.off("SIGTERM", handler);
  };
}

export const runCommand: CommandModule<GlobalArgs, RunArgs> = {
  command: "$0 <model>",
  describe: "download → prompts → directions → selection → apply → verify → evaluate → report → push, in one go (--direction FILE skips the direction stages)",
  builder: (yargs) =>
    withPushOptions(
      withSelectionOptions(
        withPromptOptions(
          withSurgeryOptions(
            (yargs as Argv<GlobalArgs>)
              .positional("model", { type: "string", demandOption: true, describe: "local folder, Hub repo id (org/name[@revision]) or Hub URL" })
              .option("out", { type: "string", describe: "write the verified checkpoint here" })
              .option("push", { type: "string", describe: "push the verified checkpoint to this repo (namespace/name)" })
              .option("force", { type: "boolean", describe: "replace an existing --out folder" }),
            { directionRequired: false },
          ),
        ),
      ),
    ) as unknown as Argv<RunArgs>,
  handler: async (args: ArgumentsCamelCase<RunArgs>) => {
    const { pushModel } = await import("../hub/push-model.js");
    const { applyModel } = await import("../surgery/apply-model.js");
    if (!args.out && !args.push) throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, "give --out DIR, --push REPO, or both");
    const surgery = surgeryParamsFrom(args);
    if (surgery.perLayer && args.direction === undefined) {
      // The pipeline selects and evaluates one layer's direction; per-layer surgery needs every row, from a file.
      throw new AbliterateError(
        ErrorCodes.INVALID_ARGUMENT,
        "--per-layer needs --direction FILE holding \"directions\" [L+1, d]; make one with `abliterate direction MODEL --out dirs.safetensors`, then pass --direction dirs.safetensors --per-layer",
      );
    }
    // A push that cannot happen fails here, not after an hour of download and surgery.
    if (args.push && isHubOffline()) {
      throw new AbliterateError(ErrorCodes.HUB_OFFLINE, `HF_HUB_OFFLINE is set, so nothing can be pushed to ${args.push}; unset it, or use --out`);
    }
    const token = args.push ? resolveHubToken({ explicit: args.token }).token : args.token;
    if (args.push && !token) {
      throw new AbliterateError(ErrorCodes.HUB_UNAUTHORIZED, `pushing to ${args.push} needs a token with write access: set HF_TOKEN, run \`huggingface-cli login\`, or pass --token`);
    }
    const display = new ProgressDisplay({ quiet: args.quiet || args.json });
    const model = await resolveModelArgument({ model: args.model, token, display });

    const tempRoot = args.out ? undefined : await mkdtemp(join(tmpdir(), "abliterate-"));
    const releaseSignals = tempRoot ? removeOnSignal(tempRoot) : undefined;
    try {
      const outDir = args.out ?? join(tempRoot!, "model");
      if (tempRoot) display.log(`building the checkpoint in ${outDir} (removed after the push; set TMPDIR to use another disk)`);
      let report: { outDir: string; tensorsChanged: number; provenance: Provenance };
      let pipeline: PipelineResult | undefined;
      if (args.direction !== undefined) {
        const applied = await renderSurgery(
          applyModel({ ...surgery, modelDir: model.dir, outDir, force: args.force, threads: threadsFrom(args), source: model.source }),
          display,
        );
        if (!applied.verified) throw new AbliterateError(ErrorCodes.VERIFY_FAILED, `verification of ${outDir} failed`, { file: outDir });
        display.log(verifiedSummary(applied.verification));
        report = applied;
      } else {
        const sources = contrastSources(args);
        const { direction: _direction, directionLayer, ...surgeryRest } = surgery;
        void _direction;
        const { runPipeline } = await import("../pipeline/run-pipeline.js");
        const workDir = args["work-dir"] ?? (args.out ? `${args.out.replace(/\/+$/, "")}.work` : join(tempRoot!, "work"));
        pipeline = await renderPipeline(
          runPipeline({
            ...directionStageOptions(args, model, args.model, token, workDir),
            directionLayer,
            ...searchSettings(args),
            outDir,
            surgery: surgeryRest,
            force: args.force,
            threads: threadsFrom(args),
          }),
          display,
          workDir,
        );
        report = { outDir, tensorsChanged: pipeline.provenance.tensors_changed.length, provenance: pipeline.provenance };
        display.log(`report: ${pipeline.reportHtml}`);
        if (pipeline.evaluation.verdict === "damaged") {
          // The checkpoint is written and says so; a broken model is not a success, and it is never pushed.
          throw new AbliterateError(
            ErrorCodes.EDIT_DAMAGED,
            `the edit changed ${(100 * (1 - pipeline.evaluation.negativeUnchanged)).toFixed(0)}% of the held-out ${sources.labels.negative} completions: the behaviour may be gone only because the model broke. ` +
              `Nothing was pushed; see ${pipeline.reportHtml}. Let the selection choose (drop --direction-layer), or try another layer, a smaller --scale, or --targets`,
            { file: outDir },
          );
        }
      }

      const pushed = args.push
        ? await renderUpload(
            pushModel({ dir: report.outDir, repo: args.push, token, private: args.private, branch: args.branch, message: args.message, createPr: args["create-pr"], baseModelDir: model.dir }),
            display,
          )
        : undefined;
      if (args.json) {
        printJson({
          ok: true,
          model: { dir: model.dir, ...model.source },
          out: args.out ? report.outDir : null,
          tensorsChanged: report.tensorsChanged,
          verification: report.provenance.verification,
          notes: report.provenance.notes,
          ...(pipeline ? { selectedLayer: pipeline.layer, evaluation: { ...pipeline.evaluation, samples: undefined }, report: args.out ? pipeline.reportHtml : null } : {}),
          ...(pushed ? { push: pushed } : {}),
        });
        return;
      }
      if (args.out) display.log(`wrote ${report.outDir}: ${report.tensorsChanged} tensor(s) edited`);
      if (pushed) display.log(describePush(pushed));
    } finally {
      releaseSignals?.();
      if (tempRoot) await rm(tempRoot, { recursive: true, force: true });
    }
  },
};
