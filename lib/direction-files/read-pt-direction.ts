/**
 * `.pt` directions written by torch.save (the zip format of torch ≥ 1.6): <archive>/data.pkl plus one
 * <archive>/data/<key> entry per storage. The pickle goes through the restricted reader in read-torch-pickle.ts,
 * never through a general unpickler. Accepted payloads: a tensor; a dict of name → tensor (the safetensors
 * names; scalar or string values become metadata); a list or tuple of equally long 1-D tensors (stacked to [n, d]).
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import { UNNAMED, type DecodedTensor } from "./direction-file.js";
import { PickleTensor, PickleTuple, readTorchPickle, type PickleValue } from "./read-torch-pickle.js";
import { readStoredZip } from "./read-zip.js";

function toDecoded(tensor: PickleTensor): DecodedTensor {
  return { shape: tensor.shape, values: tensor.values };
}

export function readPtDirection(bytes: Uint8Array, path: string): { tensors: Map<string, DecodedTensor>; metadata?: Record<string, string> } {
  const fail = (message: string): never => {
    throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `.pt ${message}`, { file: path });
  };
  const entries = readStoredZip(bytes, path);
  const pickles = [...entries.keys()].filter((name) => /^[^/]+\/data\.pkl$/.test(name));
  if (pickles.length !== 1) fail(pickles.length === 0 ? "archive has no <name>/data.pkl: not a torch.save file (legacy non-zip .pt files are not read)" : "archive has several data.pkl entries");
  const prefix = pickles[0].slice(0, -"data.pkl".length);
  const byteorder = entries.get(`${prefix}byteorder`);
  if (byteorder && new TextDecoder().decode(byteorder).trim() !== "little") fail("archive was written on a big-endian machine; re-save it on a little-endian one");
  const value = readTorchPickle({
    pickle: entries.get(pickles[0])!,
    storageBytes: (key) => entries.get(`${prefix}data/${key}`) ?? fail(`storage ${key} is missing from the archive (${prefix}data/${key})`),
    path,
  });
  const tensors = new Map<string, DecodedTensor>();
  if (value instanceof PickleTensor) {
    tensors.set(UNNAMED, toDecoded(value));
    return { tensors };
  }
  if (value instanceof Map) {
    const metadata: Record<string, string> = {};
    for (const [key, item] of value) {
      if (typeof key !== "string") fail(`dict key ${String(key)} is not a string`);
      if (item instanceof PickleTensor) tensors.set(key as string, toDecoded(item));
      else if (typeof item === "string" || typeof item === "number" || typeof item === "boolean") metadata[key as string] = String(item);
      else fail(`dict value "${String(key)}" is neither a tensor nor a scalar`);
    }
    return { tensors, metadata };
  }
  const items: PickleValue[] | undefined = Array.isArray(value) ? value : value instanceof PickleTuple ? (value.items as PickleValue[]) : undefined;
  if (items && items.length > 0 && items.every((item) => item instanceof PickleTensor && item.shape.length === 1)) {
    const rows = items as PickleTensor[];
    const width = rows[0].shape[0];
    if (rows.some((row) => row.shape[0] !== width)) fail("list holds 1-D tensors of different lengths");
    const values = new Float64Array(rows.length * width);
    rows.forEach((row, index) => values.set(row.values, index * width));
    tensors.set(UNNAMED, { shape: [rows.length, width], values });
    return { tensors };
  }
  return fail("holds no tensor, dict of tensors or list of 1-D tensors");
}
