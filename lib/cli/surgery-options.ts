/** The surgery flags shared by `apply`, `verify` and the one command, declared once. */
import type { Argv } from "yargs";
import type { Orientation, TargetKind } from "../arch/families.js";
import { AbliterateError, ErrorCodes } from "../errors.js";
import type { SurgeryParams } from "../surgery/prepare-surgery.js";
import { withNumberOptions } from "./number-option.js";
import { threadsFrom, withThreadsOption, type ThreadsArgs } from "./threads-option.js";

export interface SurgeryArgs extends ThreadsArgs {
  direction: string;
  "direction-layer"?: number;
  scale?: number;
  layers?: string;
  targets?: string;
  include?: string[];
  exclude?: string[];
  orientation?: string;
  "norm-preserving"?: boolean;
  "per-layer"?: boolean;
  projected?: boolean;
  biprojected?: boolean;
}

const TARGET_KINDS: readonly TargetKind[] = ["embed", "attn", "mlp"];
const ORIENTATIONS: readonly Orientation[] = ["linear", "rows", "bias", "experts-linear", "experts-rows"];

export function withSurgeryOptions<T>(yargs: Argv<T>, { directionRequired }: { directionRequired: boolean }) {
  // Numbers are parsed from the text typed (number-option.ts): `--scale ""` is an error, not 0.
  return withNumberOptions(withThreadsOption(yargs), {
    "direction-layer": { integer: true, min: 0, describe: "row of a `directions` file (index i = residual stream entering layer i)" },
    scale: { describe: "α: 1 ablates, 2 reflects, negative amplifies (default 1)" },
  })
    .option("direction", {
      type: "string",
      demandOption: directionRequired,
      describe: "direction file: safetensors with `direction` [d], `directions` [L+1, d] or `subspace` [k, d]; also .npy, .json, llama.cpp control-vector .gguf, torch.save .pt",
    })
    .option("per-layer", { type: "boolean", describe: "with a `directions` [L+1, d] file: each writer uses the row of the stream it writes into (embeddings 0, layer i → i+1)" })
    .option("projected", { type: "boolean", describe: "orthogonalize the direction against the harmless mean (`harmless_mean` in the file) at the direction's layer" })
    .option("biprojected", { type: "boolean", describe: "orthogonalize the direction against the harmless mean of every target layer" })
    .option("layers", { type: "string", describe: "half-open layer range a:b to edit (default all; the embedding counts as layer 0)" })
    .option("targets", { type: "string", describe: "comma list of embed,attn,mlp (default all three)" })
    .option("include", { type: "string", array: true, describe: "also edit tensors whose name matches REGEX (needed for unsupported families)" })
    .option("exclude", { type: "string", array: true, describe: "never edit tensors whose name matches REGEX" })
    .option("orientation", { type: "string", choices: ORIENTATIONS as unknown as string[], describe: "layout of --include tensors (default linear = [d_model, in])" })
    .option("norm-preserving", { type: "boolean", describe: "keep every written column's norm (grimjim's variant)" });
}

export function parseTargets(text: string | undefined): TargetKind[] | undefined {
  if (text === undefined) return undefined;
  const parts = text.split(",").map((part) => part.trim()).filter(Boolean);
  const unknown = parts.filter((part) => !TARGET_KINDS.includes(part as TargetKind));
  if (parts.length === 0 || unknown.length > 0) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--targets must be a comma list of ${TARGET_KINDS.join(", ")}; got "${text}"`);
  }
  return [...new Set(parts)] as TargetKind[];
}

export function surgeryParamsFrom(args: SurgeryArgs): SurgeryParams {
  if (args.scale !== undefined && !Number.isFinite(args.scale)) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--scale must be a finite number`);
  }
  if (args["direction-layer"] !== undefined && !Number.isInteger(args["direction-layer"])) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--direction-layer must be an integer`);
  }
  threadsFrom(args);
  if (args.projected && args.biprojected) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--projected and --biprojected are alternatives; pass one`);
  }
  if (args["per-layer"] && args["direction-layer"] !== undefined) {
    throw new AbliterateError(ErrorCodes.INVALID_ARGUMENT, `--per-layer uses every row of the direction file; drop --direction-layer`);
  }
  return {
    direction: args.direction,
    directionLayer: args["direction-layer"],
    scale: args.scale,
    layers: args.layers,
    targets: parseTargets(args.targets),
    include: args.include,
    exclude: args.exclude,
    orientation: args.orientation as Orientation | undefined,
    normPreserving: args["norm-preserving"],
    perLayer: args["per-layer"],
    projection: args.projected ? "projected" : args.biprojected ? "biprojected" : undefined,
  };
}
