/**
 * One error type for the whole tool. Every failure a user can cause or meet carries a stable `code`
 * (documented below), the file it concerns when there is one, and an HTTP status for Hub failures.
 * The CLI maps any AbliterateError to a one-line message and a non-zero exit; nothing else is caught.
 */
export const ErrorCodes = {
  // safetensors (lib/safetensors)
  /** The file is shorter than the 8-byte header length prefix or than the header it announces. */
  SAFETENSORS_TRUNCATED: "SAFETENSORS_TRUNCATED",
  /** The announced header length exceeds the 100 MB cap. */
  SAFETENSORS_HEADER_TOO_LARGE: "SAFETENSORS_HEADER_TOO_LARGE",
  /** The header is too small to hold a JSON object ("{}" is the minimum). */
  SAFETENSORS_HEADER_TOO_SMALL: "SAFETENSORS_HEADER_TOO_SMALL",
  /** The header bytes are not valid UTF-8. */
  SAFETENSORS_INVALID_UTF8: "SAFETENSORS_INVALID_UTF8",
  /** The header is not valid JSON, or not a JSON object, or a key appears twice. */
  SAFETENSORS_INVALID_JSON: "SAFETENSORS_INVALID_JSON",
  /** A tensor entry is not {dtype, shape, data_offsets}, or __metadata__ is not string → string. */
  SAFETENSORS_INVALID_ENTRY: "SAFETENSORS_INVALID_ENTRY",
  /** A dtype the format does not define. */
  SAFETENSORS_UNKNOWN_DTYPE: "SAFETENSORS_UNKNOWN_DTYPE",
  /** shape × dtype size does not fit in 64 bits / Number.MAX_SAFE_INTEGER. */
  SAFETENSORS_SIZE_OVERFLOW: "SAFETENSORS_SIZE_OVERFLOW",
  /** shape × dtype size differs from the byte span given by data_offsets. */
  SAFETENSORS_SIZE_MISMATCH: "SAFETENSORS_SIZE_MISMATCH",
  /** Offsets are not contiguous from 0 (a hole or an overlap). */
  SAFETENSORS_INVALID_OFFSETS: "SAFETENSORS_INVALID_OFFSETS",
  /** The last tensor does not end exactly at the end of the file. */
  SAFETENSORS_SIZE_MISMATCH_FILE: "SAFETENSORS_SIZE_MISMATCH_FILE",
  /** model.safetensors.index.json is malformed, names a missing shard, or points outside the folder. */
  INDEX_INVALID: "INDEX_INVALID",

  // checkpoint / architecture (lib/arch)
  /** The folder has no safetensors weights. */
  NO_SAFETENSORS: "NO_SAFETENSORS",
  /**
   * The folder holds weight files besides the checkpoint being edited (a second copy in another format or
   * variant that a loader may pick); they would ship unedited.
   */
  OTHER_WEIGHTS: "OTHER_WEIGHTS",
  /** config.json is missing or malformed. */
  CONFIG_INVALID: "CONFIG_INVALID",
  /** model_type is not a supported family and no --include was given. */
  UNSUPPORTED_FAMILY: "UNSUPPORTED_FAMILY",
  /** The checkpoint is quantized in a scheme the tool refuses. */
  UNSUPPORTED_QUANTIZATION: "UNSUPPORTED_QUANTIZATION",
  /** A target tensor has a shape or dtype the planned operation cannot handle. */
  TENSOR_SHAPE: "TENSOR_SHAPE",
  /** A tensor the forward engine needs (a layer's q_proj, the final norm, ...) is not in the checkpoint. */
  TENSOR_MISSING: "TENSOR_MISSING",

  // directions (lib/directions)
  /** The direction file is missing, malformed, or holds no usable tensor. */
  DIRECTION_INVALID: "DIRECTION_INVALID",
  /** The direction's dimension differs from hidden_size. */
  DIRECTION_DIMENSION: "DIRECTION_DIMENSION",
  /** The direction holds NaN or Inf. */
  DIRECTION_NOT_FINITE: "DIRECTION_NOT_FINITE",
  /** The direction has zero norm, or directions of a subspace are linearly dependent. */
  DIRECTION_DEGENERATE: "DIRECTION_DEGENERATE",
  /**
   * The model's own completions of the two prompt sets show no behaviour that tells them apart (no opening is
   * typical of one set and rare in the other), so there is nothing to select or evaluate a direction by.
   */
  SIGNATURE_NOT_FOUND: "SIGNATURE_NOT_FOUND",
  /**
   * The edit changed most of the negative set's completions: the behaviour may be gone only because the model is
   * broken. The output exists and says so; it is not pushed.
   */
  EDIT_DAMAGED: "EDIT_DAMAGED",

  // search (lib/directions/search)
  /** The search's trial store (search-trials.jsonl) is not one this tool wrote, or a line other than the last is corrupt. */
  SEARCH_STORE_INVALID: "SEARCH_STORE_INVALID",

  // surgery and files (lib/surgery)
  /** The output folder exists and --force was not given. */
  OUTPUT_EXISTS: "OUTPUT_EXISTS",
  /** Another run holds the lock on the output folder. */
  OUTPUT_LOCKED: "OUTPUT_LOCKED",
  /** Verification found a tensor that is not what the surgery promised. */
  VERIFY_FAILED: "VERIFY_FAILED",
  /** A bad command-line value (layer range, scale, ...). */
  INVALID_ARGUMENT: "INVALID_ARGUMENT",
  /** An operating-system I/O failure (open, read, write). */
  IO: "IO",
  /** The disk is full (ENOSPC). */
  DISK_FULL: "DISK_FULL",
  /** The native addon is missing or failed in a way not covered above. */
  NATIVE: "NATIVE",

  // hub (lib/hub)
  /** A Hub request failed; `status` holds the HTTP status. */
  HUB: "HUB",
  /** The repo or revision or file does not exist (404). */
  HUB_NOT_FOUND: "HUB_NOT_FOUND",
  /** Private or gated repo and no (valid) token (401/403). */
  HUB_UNAUTHORIZED: "HUB_UNAUTHORIZED",
  /** HF_HUB_OFFLINE=1 and the cache cannot satisfy the request. */
  HUB_OFFLINE: "HUB_OFFLINE",
  /** A downloaded file does not match its announced hash or size. */
  HUB_INTEGRITY: "HUB_INTEGRITY",
  /**
   * The Hub's answer names a path or hash that is unsafe to use as a file name (a `..` segment, an absolute path,
   * a backslash, control characters, a malformed oid): the repo is refused before anything is written.
   */
  HUB_UNSAFE_LISTING: "HUB_UNSAFE_LISTING",
} as const;

export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

export interface AbliterateErrorOptions {
  /** The file the error concerns, when there is one. */
  file?: string;
  /** HTTP status, for Hub errors. */
  status?: number;
  cause?: unknown;
}

export class AbliterateError extends Error {
  readonly code: ErrorCode;
  readonly file?: string;
  readonly status?: number;

  constructor(code: ErrorCode, message: string, options: AbliterateErrorOptions = {}) {
    super(options.file && !message.includes(options.file) ? `${options.file}: ${message}` : message, {
      cause: options.cause,
    });
    this.name = "AbliterateError";
    this.code = code;
    this.file = options.file;
    this.status = options.status;
  }
}

export function isAbliterateError(value: unknown): value is AbliterateError {
  return value instanceof AbliterateError;
}
