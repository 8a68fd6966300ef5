/**
 * The rotary-embedding settings of a text config, read the way transformers reads them. Both config layouts are
 * read: transformers 5's `rope_parameters` {rope_type, rope_theta, ...} and the older `rope_theta` + `rope_scaling`
 * {type|rope_type, ...}. lib/engine/rope-table.ts turns them into inverse frequencies.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";

export interface RopeParameters {
  ropeType: string;
  theta: number;
  /** Every other key of the scaling dict as written (factor, low_freq_factor, ...). */
  scaling: Record<string, unknown>;
  partialRotaryFactor: number;
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}

/**
 * The rope parameters of `config` (a text config). `defaultTheta` is the family's default rope_theta, used when the
 * config names none (transformers' default_theta is 10000 for the families here).
 */
export function readRopeParameters(config: Record<string, unknown>, file: string, defaultTheta = 10000): RopeParameters {
  const modern = config.rope_parameters;
  const legacy = config.rope_scaling;
  const source =
    modern && typeof modern === "object" && !Array.isArray(modern)
      ? (modern as Record<string, unknown>)
      : legacy && typeof legacy === "object" && !Array.isArray(legacy)
        ? (legacy as Record<string, unknown>)
        : {};
  const ropeType = String(source.rope_type ?? source.type ?? "default");
  const theta = numberOr(source.rope_theta, numberOr(config.rope_theta, defaultTheta));
  const partialRotaryFactor = numberOr(source.partial_rotary_factor, numberOr(config.partial_rotary_factor, 1));
  if (!(theta > 0)) throw new AbliterateError(ErrorCodes.CONFIG_INVALID, `rope_theta must be positive (got ${theta})`, { file });
  return { ropeType, theta, scaling: source, partialRotaryFactor };
}

