/**
 * Reads the entries of a zip archive held in memory, without a dependency: end-of-central-directory record
 * (with its ZIP64 form), central directory, local headers. Only stored (method 0) entries are accepted, which is
 * what torch.save writes; a compressed or encrypted entry is refused by name. Every offset and length is
 * bounds-checked, names must be unique, and every entry's CRC-32 is verified.
 */
import { crc32 } from "node:zlib";
import { AbliterateError, ErrorCodes } from "../errors.js";

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;

export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}

export function readStoredZip(bytes: Uint8Array, path: string): Map<string, Uint8Array> {
  const fail = (message: string): never => {
    throw new AbliterateError(ErrorCodes.DIRECTION_INVALID, `zip archive: ${message}`, { file: path });
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (offset: number, length: number, what: string) => {
    if (offset < 0 || length < 0 || offset + length > bytes.length) fail(`${what} at byte ${offset} (+${length}) lies outside the ${bytes.length}-byte file (truncated?)`);
  };
  const u16 = (offset: number) => view.getUint16(offset, true);
  const u32 = (offset: number) => view.getUint32(offset, true);
  const u64 = (offset: number, what: string) => {
    const value = view.getBigUint64(offset, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) fail(`${what} is ${value}, beyond any real file`);
    return Number(value);
  };

  // The record ends the file, followed only by its comment; search backwards and require that exact fit.
  let eocd = -1;
  for (let offset = bytes.length - EOCD_SIZE; offset >= Math.max(0, bytes.length - EOCD_SIZE - MAX_COMMENT); offset -= 1) {
    if (u32(offset) === EOCD_SIGNATURE && offset + EOCD_SIZE + u16(offset + 20) === bytes.length) {
      eocd = offset;
      break;
    }
  }
  if (eocd < 0) fail("no end-of-central-directory record (the file is truncated or not a zip)");
  if (u16(eocd + 4) !== 0 || u16(eocd + 6) !== 0) fail("multi-disk archives are not supported");
  let entryCount = u16(eocd + 10);
  let directorySize = u32(eocd + 12);
  let directoryOffset = u32(eocd + 16);
  if (entryCount === 0xffff || directorySize === 0xffffffff || directoryOffset === 0xffffffff) {
    const locator = eocd - 20;
    need(locator, 20, "ZIP64 locator");
    if (u32(locator) !== ZIP64_LOCATOR_SIGNATURE) fail("ZIP64 fields without a ZIP64 locator");
    const record = u64(locator + 8, "ZIP64 record offset");
    need(record, 56, "ZIP64 end-of-central-directory record");
    if (u32(record) !== ZIP64_EOCD_SIGNATURE) fail("the ZIP64 locator does not point at a ZIP64 record");
    entryCount = u64(record + 32, "ZIP64 entry count");
    directorySize = u64(record + 40, "ZIP64 directory size");
    directoryOffset = u64(record + 48, "ZIP64 directory offset");
  }
  need(directoryOffset, directorySize, "central directory");
  if (entryCount > directorySize / 46) fail(`announces ${entryCount} entries, more than its ${directorySize}-byte directory can hold`);

  const entries = new Map<string, Uint8Array>();
  let cursor = directoryOffset;
  for (let index = 0; index < entryCount; index += 1) {
    need(cursor, 46, `central directory entry ${index}`);
    if (u32(cursor) !== CENTRAL_SIGNATURE) fail(`central directory entry ${index} has a bad signature`);
    const flags = u16(cursor + 8);
    const method = u16(cursor + 10);
    const crc = u32(cursor + 16);
    let compressedSize = u32(cursor + 20);
    let size = u32(cursor + 24);
    const nameLength = u16(cursor + 28);
    const extraLength = u16(cursor + 30);
    const commentLength = u16(cursor + 32);
    let localOffset = u32(cursor + 42);
    need(cursor + 46, nameLength + extraLength + commentLength, `central directory entry ${index}`);
    const name = new TextDecoder("utf-8").decode(bytes.subarray(cursor + 46, cursor + 46 + nameLength));
    // ZIP64 extended information: the 8-byte values replace, in this order, whichever fields were saturated.
    let extra = cursor + 46 + nameLength;
    const extraEnd = extra + extraLength;
    while (extra + 4 <= extraEnd) {
      const id = u16(extra);
      const length = u16(extra + 2);
      if (extra + 4 + length > extraEnd) fail(`entry "${name}" has a malformed extra field`);
      if (id === 0x0001) {
        let field = extra + 4;
        const take = (what: string) => {
          if (field + 8 > extra + 4 + length) fail(`entry "${name}" has a short ZIP64 field`);
          const value = u64(field, what);
          field += 8;
          return value;
        };
        if (size === 0xffffffff) size = take("size");
        if (compressedSize === 0xffffffff) compressedSize = take("compressed size");
        if (localOffset === 0xffffffff) localOffset = take("local header offset");
      }
      extra += 4 + length;
    }
    cursor = extraEnd + commentLength;
    if (flags & 0x1) fail(`entry "${name}" is encrypted`);
    if (method !== 0) fail(`entry "${name}" is compressed (method ${method}); only stored entries (method 0, as torch.save writes) are read`);
    if (compressedSize !== size) fail(`entry "${name}" is stored but its compressed size ${compressedSize} differs from its size ${size}`);
    if (entries.has(name)) fail(`entry "${name}" appears twice`);
    need(localOffset, 30, `local header of "${name}"`);
    if (u32(localOffset) !== LOCAL_SIGNATURE) fail(`local header of "${name}" has a bad signature`);
    const dataStart = localOffset + 30 + u16(localOffset + 26) + u16(localOffset + 28);
    need(dataStart, size, `data of "${name}"`);
    const data = bytes.subarray(dataStart, dataStart + size);
    if (crc32(data) >>> 0 !== crc) fail(`entry "${name}" fails its CRC-32 check (corrupted)`);
    entries.set(name, data);
  }
  return entries;
}
