import type { SafetensorsDtype } from "./dtypes.js";

export interface SafetensorsTensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** [begin, end) relative to the data section, exactly as written in the file. */
  dataOffsets: [number, number];
  /** Absolute offset of the first byte in the file (dataStart + begin). */
  byteOffset: number;
  byteLength: number;
}

export interface SafetensorsHeader {
  path: string;
  fileSize: number;
  /** N, the header length announced by the 8-byte prefix (padding included). */
  headerLength: number;
  /** 8 + N: where the data section starts. */
  dataStart: number;
  /** Sorted by offset. */
  tensors: SafetensorsTensorInfo[];
  byName: Map<string, SafetensorsTensorInfo>;
  metadata?: Record<string, string>;
}

/** A tensor to write: `data` holds exactly numel × bits / 8 bytes, little-endian, row-major. */
export interface SerializableTensor {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  data: Uint8Array;
}
