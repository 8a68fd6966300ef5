/**
 * A restricted unpickler for torch.save's data.pkl: it rebuilds tensors, dicts, lists, tuples and scalars, and
 * nothing else. It is an interpreter for a fixed subset of pickle opcodes with no way to call arbitrary code:
 * - GLOBAL / STACK_GLOBAL resolve only to an allowlist (torch._utils._rebuild_tensor_v2, the Float/Double/Half/
 *   BFloat16 storage types, collections.OrderedDict); any other global is refused by name before it is used.
 * - REDUCE applies only _rebuild_tensor_v2 (checked arguments) or OrderedDict() (no arguments).
 * - BINPERSID accepts only torch's ('storage', <storage type>, key, location, numel) records.
 * - Every other opcode (INST, OBJ, NEWOBJ, BUILD, EXT*, …) is refused by name.
 * Storage bytes come from the caller; tensors are gathered through their sizes and strides with bounds checks.
 */
import { AbliterateError, ErrorCodes } from "../errors.js";
import { decodeFloats, type FloatDtype } from "./decode-floats.js";
import { dtypeBytes } from "../safetensors/dtypes.js";

/** Tuples may also carry the storage records and globals that torch's tensor records are built from. */
export class PickleTuple {
  constructor(readonly items: unknown[]) {}
}
export class PickleTensor {
  constructor(readonly shape: number[], readonly values: Float64Array, readonly dtype: FloatDtype) {}
}
class PickleGlobal {
  constructor(readonly name: string) {}
}
class PickleStorage {
  constructor(readonly key: string, readonly dtype: FloatDtype, readonly numel: number) {}
}
class Mark {}

export type PickleValue = null | boolean | number | string | PickleValue[] | PickleTuple | Map<PickleValue, PickleValue> | PickleTensor;
type StackValue = PickleValue | PickleGlobal | PickleStorage | Mark;

const REBUILD_TENSOR = "torch._utils._rebuild_tensor_v2";
const ORDERED_DICT = "collections.OrderedDict";
const STORAGE_DTYPES: Record<string, FloatDtype> = {
  "torch.FloatStorage": "F32",
  "torch.DoubleStorage": "F64",
  "torch.HalfStorage": "F16",
  "torch.BFloat16Storage": "BF16",
};
const ALLOWED_GLOBALS = new Set([REBUILD_TENSOR, ORDERED_DICT, ...Object.keys(STORAGE_DTYPES)]);

// Opcode names for the refusal message (pickletools' names).
const OPCODE_NAMES: Record<number, string> = {
  0x69: "INST", 0x6f: "OBJ", 0x81: "NEWOBJ", 0x92: "NEWOBJ_EX", 0x62: "BUILD", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4",
  0x50: "PERSID", 0x49: "INT", 0x4c: "LONG", 0x46: "FLOAT", 0x53: "STRING", 0x56: "UNICODE", 0x70: "PUT", 0x67: "GET",
  0x30: "POP", 0x31: "POP_MARK", 0x32: "DUP", 0x8b: "LONG4", 0x42: "BINBYTES", 0x43: "SHORT_BINBYTES", 0x8e: "BINBYTES8",
  0x96: "BYTEARRAY8", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER", 0x8f: "EMPTY_SET", 0x90: "ADDITEMS", 0x91: "FROZENSET",
};

const MAX_OPS = 10_000_000;

export interface ReadTorchPickleParams {
  pickle: Uint8Array;
  /** Raw little-endian bytes of storage `key` (data/<key> in the archive). */
  storageBytes: (key: string) => Uint8Array;
  path: string;
}

export function readTorchPickle({ pickle, storageBytes, path }: ReadTorchPickleParams): PickleValue {
  const fail = (message: string): never => {
    throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `.pt pickle: ${message}`, { file: path });
  };
  const view = new DataView(pickle.buffer, pickle.byteOffset, pickle.byteLength);
  let position = 0;
  const need = (count: number, what: string) => {
    if (count < 0) fail(`negative length in ${what} at byte ${position}`);
    if (position + count > pickle.length) fail(`truncated inside ${what} at byte ${position}`);
  };
  const take = (count: number, what: string): Uint8Array => {
    need(count, what);
    const slice = pickle.subarray(position, position + count);
    position += count;
    return slice;
  };
  const fixed = (width: number, what: string, read: (offset: number) => number): number => {
    need(width, what);
    position += width;
    return read(position - width);
  };
  const u16 = (what: string) => fixed(2, what, (at) => view.getUint16(at, true));
  const u32 = (what: string) => fixed(4, what, (at) => view.getUint32(at, true));
  const i32 = (what: string) => fixed(4, what, (at) => view.getInt32(at, true));
  const utf8 = (bytes: Uint8Array) => new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  const stack: StackValue[] = [];
  const marks: number[] = [];
  const memo = new Map<number, StackValue>();
  const decoded = new Map<string, Float64Array>();

  const pop = (what: string): StackValue => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1])) fail(`stack underflow at ${what}`);
    return stack.pop()!;
  };
  const popMark = (what: string): StackValue[] => {
    if (marks.length === 0) fail(`${what} without a MARK`);
    const start = marks.pop()!;
    return stack.splice(start);
  };
  const top = (what: string): StackValue => {
    if (stack.length === 0) fail(`stack underflow at ${what}`);
    return stack[stack.length - 1];
  };
  const asItem = (value: StackValue, what: string): unknown => {
    if (value instanceof Mark) fail(`${what} received a MARK`);
    return value;
  };
  const asValue = (value: StackValue, what: string): PickleValue => {
    if (value instanceof Mark || value instanceof PickleGlobal || value instanceof PickleStorage) fail(`${what} received a ${value.constructor.name}`);
    return value as PickleValue;
  };
  const resolveGlobal = (module: string, name: string): PickleGlobal => {
    const full = `${module}.${name}`;
    if (!ALLOWED_GLOBALS.has(full)) fail(`refused pickle global ${full}: only tensors (torch._utils._rebuild_tensor_v2 with Float/Double/Half/BFloat16 storages) and OrderedDict are rebuilt`);
    return new PickleGlobal(full);
  };
  const setItems = (target: StackValue, items: StackValue[], what: string) => {
    if (!(target instanceof Map)) return fail(`${what} on a non-dict`);
    if (items.length % 2 !== 0) fail(`${what} with an odd number of items`);
    for (let i = 0; i < items.length; i += 2) {
      const key = asValue(items[i], what);
      if (typeof key !== "string" && typeof key !== "number") fail(`${what}: only string or integer dict keys are accepted`);
      target.set(key, asValue(items[i + 1], what));
    }
  };
  const intArray = (value: unknown, what: string): number[] => {
    const items = value instanceof PickleTuple ? value.items : fail(`${what} must be a tuple`);
    return items.map((item) => (typeof item === "number" && Number.isSafeInteger(item) && item >= 0 ? item : fail(`${what} must hold non-negative integers`)));
  };
  const rebuildTensor = (args: unknown[]): PickleTensor => {
    if (args.length !== 6 && args.length !== 7) fail(`_rebuild_tensor_v2 takes 6 or 7 arguments, got ${args.length}`);
    const [storage, offsetValue, sizeValue, strideValue, , hooks] = args;
    if (!(storage instanceof PickleStorage)) return fail("_rebuild_tensor_v2's first argument is not a storage");
    const offset = typeof offsetValue === "number" && Number.isSafeInteger(offsetValue) && offsetValue >= 0 ? offsetValue : fail("tensor storage offset must be a non-negative integer");
    const shape = intArray(sizeValue, "tensor size");
    const strides = intArray(strideValue, "tensor stride");
    if (strides.length !== shape.length) fail(`tensor has ${shape.length} sizes but ${strides.length} strides`);
    if (!(hooks instanceof Map) || hooks.size > 0) fail("tensors with backward hooks are not accepted");
    const metadata = args[6];
    if (metadata !== undefined && metadata !== null && !(metadata instanceof Map && metadata.size === 0)) fail("tensors with Python attributes are not accepted");
    const count = shape.reduce((a, b) => a * b, 1);
    if (count > 0) {
      const last = offset + shape.reduce((sum, size, axis) => sum + (size - 1) * strides[axis], 0);
      if (last >= storage.numel) fail(`tensor of size (${shape.join(", ")}) with stride (${strides.join(", ")}) at offset ${offset} reads past its ${storage.numel}-element storage`);
    }
    let source = decoded.get(storage.key);
    if (!source) {
      const bytes = storageBytes(storage.key);
      const elementBytes = dtypeBytes(storage.dtype);
      if (bytes.length !== storage.numel * elementBytes) fail(`storage ${storage.key} holds ${bytes.length} bytes, but ${storage.numel} ${storage.dtype} elements need ${storage.numel * elementBytes}`);
      source = decodeFloats(bytes, storage.dtype, 0, storage.numel);
      decoded.set(storage.key, source);
    }
    const values = new Float64Array(count);
    const index = new Array<number>(shape.length).fill(0);
    for (let flat = 0; flat < count; flat += 1) {
      let at = offset;
      for (let axis = 0; axis < shape.length; axis += 1) at += index[axis] * strides[axis];
      values[flat] = source[at];
      for (let axis = shape.length - 1; axis >= 0; axis -= 1) {
        index[axis] += 1;
        if (index[axis] < shape[axis]) break;
        index[axis] = 0;
      }
    }
    return new PickleTensor(shape, values, storage.dtype);
  };

  for (let ops = 0; ; ops += 1) {
    if (ops > MAX_OPS) fail("too many opcodes");
    need(1, "an opcode");
    const opcode = pickle[position];
    position += 1;
    switch (opcode) {
      case 0x80: // PROTO
        take(1, "PROTO");
        break;
      case 0x95: // FRAME
        take(8, "FRAME");
        break;
      case 0x2e: {
        // STOP
        if (stack.length !== 1 || marks.length !== 0) fail(`STOP with ${stack.length} values on the stack`);
        return asValue(stack[0], "STOP");
      }
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PickleTuple([]));
        break;
      case 0x74: // TUPLE
        stack.push(new PickleTuple(popMark("TUPLE").map((item) => asItem(item, "TUPLE"))));
        break;
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: {
        // TUPLE3
        const count = opcode - 0x84;
        const items: unknown[] = [];
        for (let i = 0; i < count; i += 1) items.unshift(asItem(pop("TUPLEn"), "TUPLEn"));
        stack.push(new PickleTuple(items));
        break;
      }
      case 0x6c: // LIST
        stack.push(popMark("LIST").map((item) => asValue(item, "LIST")));
        break;
      case 0x64: {
        // DICT
        const map = new Map<PickleValue, PickleValue>();
        setItems(map, popMark("DICT"), "DICT");
        stack.push(map);
        break;
      }
      case 0x61: {
        // APPEND
        const item = asValue(pop("APPEND"), "APPEND");
        const list = top("APPEND");
        if (!Array.isArray(list)) fail("APPEND on a non-list");
        (list as PickleValue[]).push(item);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark("APPENDS").map((item) => asValue(item, "APPENDS"));
        const list = top("APPENDS");
        if (!Array.isArray(list)) fail("APPENDS on a non-list");
        (list as PickleValue[]).push(...items);
        break;
      }
      case 0x73: {
        // SETITEM
        const value = pop("SETITEM");
        const key = pop("SETITEM");
        setItems(top("SETITEM"), [key, value], "SETITEM");
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark("SETITEMS");
        setItems(top("SETITEMS"), items, "SETITEMS");
        break;
      }
      case 0x4a: // BININT
        stack.push(i32("BININT"));
        break;
      case 0x4b: // BININT1
        stack.push(take(1, "BININT1")[0]);
        break;
      case 0x4d: // BININT2
        stack.push(u16("BININT2"));
        break;
      case 0x8a: {
        // LONG1: little-endian two's complement of n bytes
        const length = take(1, "LONG1")[0];
        const bytes = take(length, "LONG1");
        let value = 0n;
        for (let i = length - 1; i >= 0; i -= 1) value = (value << 8n) | BigInt(bytes[i]);
        if (length > 0 && bytes[length - 1] & 0x80) value -= 1n << BigInt(8 * length);
        if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < -BigInt(Number.MAX_SAFE_INTEGER)) fail(`integer ${value} is out of range`);
        stack.push(Number(value));
        break;
      }
      case 0x47: // BINFLOAT (big-endian)
        stack.push(fixed(8, "BINFLOAT", (at) => view.getFloat64(at, false)));
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x58: // BINUNICODE
        stack.push(utf8(take(u32("BINUNICODE"), "BINUNICODE")));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8(take(take(1, "SHORT_BINUNICODE")[0], "SHORT_BINUNICODE")));
        break;
      case 0x8d: {
        // BINUNICODE8
        need(8, "BINUNICODE8");
        const length = view.getBigUint64(position, true);
        position += 8;
        if (length > BigInt(pickle.length)) fail("BINUNICODE8 longer than the pickle");
        stack.push(utf8(take(Number(length), "BINUNICODE8")));
        break;
      }
      case 0x55: // SHORT_BINSTRING
        stack.push(new TextDecoder("latin1").decode(take(take(1, "SHORT_BINSTRING")[0], "SHORT_BINSTRING")));
        break;
      case 0x54: // BINSTRING
        stack.push(new TextDecoder("latin1").decode(take(i32("BINSTRING"), "BINSTRING")));
        break;
      case 0x71: // BINPUT
        memo.set(take(1, "BINPUT")[0], top("BINPUT"));
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32("LONG_BINPUT"), top("LONG_BINPUT"));
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top("MEMOIZE"));
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const key = opcode === 0x68 ? take(1, "BINGET")[0] : u32("LONG_BINGET");
        if (!memo.has(key)) fail(`memo ${key} read before it was written`);
        stack.push(memo.get(key)!);
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const readLine = () => {
          const end = pickle.indexOf(0x0a, position);
          if (end < 0) fail("GLOBAL without a newline");
          const line = new TextDecoder("latin1").decode(pickle.subarray(position, end));
          position = end + 1;
          return line;
        };
        const module = readLine();
        stack.push(resolveGlobal(module, readLine()));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop("STACK_GLOBAL");
        const module = pop("STACK_GLOBAL");
        if (typeof module !== "string" || typeof name !== "string") fail("STACK_GLOBAL needs two strings");
        stack.push(resolveGlobal(module as string, name as string));
        break;
      }
      case 0x51: {
        // BINPERSID
        const record = pop("BINPERSID");
        const items = record instanceof PickleTuple ? record.items : fail("persistent id is not a tuple");
        const [tag, storageType, key, , numel] = items;
        if (items.length !== 5 || tag !== "storage") fail("persistent id is not a ('storage', type, key, location, numel) record");
        if (!(storageType instanceof PickleGlobal) || !STORAGE_DTYPES[storageType.name]) fail("persistent id names no accepted storage type");
        if (typeof key !== "string" || !/^\d+$/.test(key)) fail("storage key must be a decimal string");
        if (typeof numel !== "number" || !Number.isSafeInteger(numel) || numel < 0) fail("storage size must be a non-negative integer");
        stack.push(new PickleStorage(key as string, STORAGE_DTYPES[(storageType as PickleGlobal).name], numel as number));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop("REDUCE");
        const callable = pop("REDUCE");
        if (!(callable instanceof PickleGlobal)) return fail("REDUCE on something that is not an accepted global");
        if (!(args instanceof PickleTuple)) return fail("REDUCE arguments are not a tuple");
        if (callable.name === REBUILD_TENSOR) stack.push(rebuildTensor(args.items));
        else if (callable.name === ORDERED_DICT && args.items.length === 0) stack.push(new Map());
        else fail(`refused call to ${callable.name} with ${args.items.length} argument(s)`);
        break;
      }
      default:
        fail(`refused pickle opcode 0x${opcode.toString(16).padStart(2, "0")}${OPCODE_NAMES[opcode] ? ` (${OPCODE_NAMES[opcode]})` : ""} at byte ${position - 1}`);
    }
  }
}
