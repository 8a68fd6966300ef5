// Writes the seed corpora for the libFuzzer harnesses (our own vectors, no downloads):
//   node test/fuzz/make-seeds.mjs OUT_DIR   ->  OUT_DIR/validate_jobs/*, OUT_DIR/codec/*
// The validate_jobs seeds follow the byte layout that fuzz_validate_jobs.cpp decodes; the codec seeds are the
// values where rounding is delicate (ties, binade edges, overflow and underflow thresholds, NaN payloads).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const out = process.argv[2];
if (!out) {
  console.error("usage: node test/fuzz/make-seeds.mjs OUT_DIR");
  process.exit(2);
}

class Bytes {
  constructor() {
    this.parts = [];
  }
  u8(value) {
    this.parts.push(Buffer.from([value & 0xff]));
    return this;
  }
  u16(value) {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(value);
    this.parts.push(b);
    return this;
  }
  u32(value) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value >>> 0);
    this.parts.push(b);
    return this;
  }
  u64(value) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(value)));
    this.parts.push(b);
    return this;
  }
  f64(value) {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(value);
    this.parts.push(b);
    return this;
  }
  raw(buffer) {
    this.parts.push(Buffer.from(buffer));
    return this;
  }
  done() {
    return Buffer.concat(this.parts);
  }
}

// --- fuzz_validate_jobs: [file_size u16][count u8][threads u8][chunk u16] tensors... file bytes ---------------------
const DTYPE = { F64: 0, F32: 1, F16: 2, BF16: 3 };

/** A size field in "small" mode (mode byte 3 selects u16 % (limit + 1)). */
function small(bytes, value) {
  return bytes.u8(3).u16(value);
}

function tensor(bytes, { offset, rows, cols, dtype, axis, rank, alpha, normPreserving = false, basis = "unit", sizes }) {
  if (sizes) sizes(bytes);
  else {
    small(bytes, offset);
    small(bytes, rows);
    small(bytes, cols);
  }
  bytes.u8(DTYPE[dtype]);
  if (axis === 2) bytes.u8(0);
  else bytes.u8(1).u8(axis);
  if (rank === "u32") bytes.u8(0).u32(4096);
  else bytes.u8(1).u8(rank);
  if (alpha === undefined) bytes.u8(3); // α = 1
  else if (alpha === 2) bytes.u8(2);
  else bytes.u8(0).f64(alpha);
  bytes.u8(normPreserving ? 1 : 0);
  bytes.u8(1); // basis length: as the contract asks
  bytes.u8(basis === "unit" ? 1 : 0);
}

function fileBytes(size, fill) {
  const data = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4) data.writeFloatLE(fill(i / 4), i);
  return data;
}

const floats = (i) => Math.sin(i + 1) * 0.1;
const seeds = {
  "one-linear-f32": () => {
    const b = new Bytes().u16(96).u8(1).u8(0).u16(64);
    tensor(b, { offset: 16, rows: 4, cols: 3, dtype: "F32", axis: 0, rank: 1 });
    return b.raw(fileBytes(96, floats)).done();
  },
  "rows-bf16-rank2-norm-preserving": () => {
    const b = new Bytes().u16(128).u8(1).u8(1).u16(7);
    tensor(b, { offset: 8, rows: 5, cols: 6, dtype: "BF16", axis: 1, rank: 2, normPreserving: true });
    return b.raw(fileBytes(128, floats)).done();
  },
  "two-tensors-with-gap": () => {
    const b = new Bytes().u16(256).u8(2).u8(1).u16(32);
    tensor(b, { offset: 0, rows: 3, cols: 4, dtype: "F16", axis: 0, rank: 2 });
    tensor(b, { offset: 100, rows: 6, cols: 2, dtype: "F64", axis: 1, rank: 1, alpha: 2 });
    return b.raw(fileBytes(256, floats)).done();
  },
  "overlap": () => {
    const b = new Bytes().u16(128).u8(2).u8(0).u16(64);
    tensor(b, { offset: 0, rows: 4, cols: 4, dtype: "F32", axis: 0, rank: 1 });
    tensor(b, { offset: 8, rows: 2, cols: 2, dtype: "F32", axis: 1, rank: 1 });
    return b.raw(fileBytes(128, floats)).done();
  },
  "past-the-end": () => {
    const b = new Bytes().u16(64).u8(1).u8(0).u16(64);
    tensor(b, { offset: 60, rows: 2, cols: 2, dtype: "F32", axis: 0, rank: 1 });
    return b.raw(fileBytes(64, floats)).done();
  },
  "nan-alpha": () => {
    const b = new Bytes().u16(64).u8(1).u8(0).u16(64);
    tensor(b, { offset: 0, rows: 2, cols: 2, dtype: "F32", axis: 0, rank: 1, alpha: NaN });
    return b.raw(fileBytes(64, floats)).done();
  },
  "rank-times-d-model-wraps": () => {
    // rows = 2^52 (power-of-two mode, 32 + 20), cols = 0, rank = 4096: rank × d_model = 2^64.
    const b = new Bytes().u16(64).u8(1).u8(0).u16(64);
    tensor(b, { dtype: "F32", axis: 0, rank: "u32", sizes: (bytes) => bytes.u8(3).u16(0).u8(2).u8(20).u8(3).u16(0) });
    return b.raw(fileBytes(64, floats)).done();
  },
  "hostile-offset": () => {
    const b = new Bytes().u16(64).u8(1).u8(0).u16(64);
    tensor(b, { dtype: "F32", axis: 0, rank: 1, sizes: (bytes) => bytes.u8(0).u64(-4n).u8(3).u16(2).u8(3).u16(2) });
    return b.raw(fileBytes(64, floats)).done();
  },
  "zero-sized": () => {
    const b = new Bytes().u16(32).u8(1).u8(0).u16(64);
    tensor(b, { offset: 32, rows: 0, cols: 5, dtype: "F16", axis: 1, rank: 1 });
    return b.raw(fileBytes(32, floats)).done();
  },
  "empty-list": () => new Bytes().u16(16).u8(0).u8(0).u16(1).raw(Buffer.alloc(16, 7)).done(),
};

mkdirSync(join(out, "validate_jobs"), { recursive: true });
for (const [name, make] of Object.entries(seeds)) writeFileSync(join(out, "validate_jobs", name), make());

// --- fuzz_codec: raw bytes, read both as elements of each dtype and as doubles ---------------------------------------
const doubles = (...values) => new Bytes().raw(Buffer.concat(values.map((v) => new Bytes().f64(v).done()))).done();
const codecSeeds = {
  "specials": doubles(0, -0, 1, -1, Infinity, -Infinity, NaN, Number.MIN_VALUE, -Number.MAX_VALUE),
  "f32-ties": doubles(1 + 2 ** -24, 1 + 3 * 2 ** -24, 1 - 2 ** -25, 2 ** 128 - 2 ** 103, 2 ** 128 - 2 ** 104, 2 ** -149, 2 ** -150, 3 * 2 ** -151),
  "f16-ties": doubles(1 + 2 ** -11, 1 + 3 * 2 ** -11, 65504, 65519.99, 65520, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 6.1e-5),
  "bf16-ties": doubles(1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.3895313892515355e38, 3.39e38, 2 ** -133, 2 ** -134, 1e-40),
  "nan-payloads": new Bytes().u64(0x7ff0000000000001n).u64(0xfff8000000000000n).u64(0x7ff4000000000000n).u32(0x7f800001).u32(0xffc00000).u16(0x7c01).u16(0xfe00).u16(0x7f81).u16(0xff80).done(),
  "subnormal-patterns": new Bytes().u32(0x00000001).u32(0x807fffff).u16(0x0001).u16(0x83ff).u16(0x0080).u16(0x807f).u64(1n).done(),
};
mkdirSync(join(out, "codec"), { recursive: true });
for (const [name, bytes] of Object.entries(codecSeeds)) writeFileSync(join(out, "codec", name), bytes);
console.log(`seeds: ${Object.keys(seeds).length} validate_jobs, ${Object.keys(codecSeeds).length} codec -> ${out}`);
