// A self-contained reader/writer for the safetensors format
// (https://github.com/huggingface/safetensors): 8-byte little-endian u64 header length N,
// N bytes of JSON header, then one byte buffer that every tensor's data_offsets index into.
// We parse it ourselves so loading a checkpoint never executes code and never copies weights.
import * as fs from "node:fs";
import * as path from "node:path";
import { randomBytes } from "node:crypto";
import { NerEngineError } from "../errors.js";
import { LIMITS, readBoundedFile } from "./bounded-read.js";
import { parseJsonText } from "./safe-json.js";

export type Dtype = "F32" | "F16" | "BF16" | "F64" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

/** Bytes per element of each supported dtype. */
export const DTYPE_SIZE: Readonly<Record<Dtype, number>> = {
  F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

/** One tensor of a parsed file. `data` is a view into the file's bytes, not a copy. */
export interface TensorView {
  name: string;
  dtype: Dtype;
  shape: number[];
  data: Uint8Array;
}

export interface ParsedSafetensors {
  tensors: Map<string, TensorView>;
  metadata: Record<string, string>;
}

/** Same limit as the reference Rust implementation: anything bigger is corruption, not a header. */
const MAX_HEADER_BYTES = 100_000_000;

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isDtype(x: unknown): x is Dtype {
  return typeof x === "string" && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, x);
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function describe(x: unknown): string {
  const s = JSON.stringify(x);
  return s === undefined ? String(x) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

export function numElements(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Parses a whole safetensors file held in memory. Every check a corrupt or hostile file
 * could fail is made here, so consumers can trust names, shapes and byte ranges.
 * `source` names the file in error messages.
 */
export function parseSafetensors(bytes: Uint8Array, source: string): ParsedSafetensors {
  if (bytes.byteLength < 8) {
    throw new NerEngineError(
      `truncated safetensors file: ${bytes.byteLength} bytes, fewer than the 8-byte header length`,
      source,
    );
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen64 = dv.getBigUint64(0, true);
  if (headerLen64 > BigInt(MAX_HEADER_BYTES)) {
    throw new NerEngineError(
      `safetensors header length ${headerLen64} exceeds ${MAX_HEADER_BYTES} bytes: not a safetensors file or corrupt`,
      source,
    );
  }
  const headerLen = Number(headerLen64);
  if (8 + headerLen > bytes.byteLength) {
    throw new NerEngineError(
      `truncated safetensors file: header length ${headerLen} runs beyond the file (${bytes.byteLength} bytes)`,
      source,
    );
  }

  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + headerLen));
  } catch {
    throw new NerEngineError("safetensors header is not valid UTF-8 JSON (bad UTF-8 bytes)", source);
  }
  // Checked before JSON.parse, which would quietly keep the last of two entries for one tensor name.
  const header = parseJsonText(text, source, { invalid: "safetensors header is not valid UTF-8 JSON", rejectDuplicateKeys: true });
  if (!isPlainObject(header)) {
    throw new NerEngineError(`safetensors header must be a JSON object, got ${describe(header)}`, source);
  }

  const dataStart = 8 + headerLen;
  const bufferLen = bytes.byteLength - dataStart;
  const tensors = new Map<string, TensorView>();
  const ranges: { name: string; begin: number; end: number }[] = [];
  let metadata: Record<string, string> = {};

  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = parseMetadata(entry, source);
      continue;
    }
    const where = `${source}: tensor "${name}"`;
    if (!isPlainObject(entry)) throw new NerEngineError(`entry must be an object, got ${describe(entry)}`, where);
    const { dtype, shape, data_offsets: offsets } = entry;
    if (!isDtype(dtype)) {
      throw new NerEngineError(
        `unknown dtype ${describe(dtype)} (supported: ${Object.keys(DTYPE_SIZE).join(", ")})`,
        where,
      );
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new NerEngineError(`shape must be an array of non-negative integers, got ${describe(shape)}`, where);
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]
    ) {
      throw new NerEngineError(
        `data_offsets must be [begin, end] with integers 0 <= begin <= end, got ${describe(offsets)}`,
        where,
      );
    }
    const [begin, end] = offsets as [number, number];
    if (end > bufferLen) {
      throw new NerEngineError(
        `data_offsets [${begin}, ${end}] run beyond the ${bufferLen}-byte data buffer (truncated file or offsets outside the file)`,
        where,
      );
    }
    const expectedBytes = numElements(shape as number[]) * DTYPE_SIZE[dtype];
    if (end - begin !== expectedBytes) {
      throw new NerEngineError(
        `holds ${end - begin} bytes but ${dtype} shape [${shape.join(", ")}] needs ${expectedBytes}`,
        where,
      );
    }
    ranges.push({ name, begin, end });
    tensors.set(name, {
      name,
      dtype,
      shape: [...(shape as number[])],
      data: bytes.subarray(dataStart + begin, dataStart + end),
    });
  }

  // Overlapping tensors would alias each other's weights: always a corrupt or crafted file.
  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < ranges.length; i++) {
    const prev = ranges[i - 1];
    const cur = ranges[i];
    if (cur.begin < prev.end) {
      throw new NerEngineError(
        `data_offsets [${cur.begin}, ${cur.end}] overlap tensor "${prev.name}" [${prev.begin}, ${prev.end}]`,
        `${source}: tensor "${cur.name}"`,
      );
    }
  }
  return { tensors, metadata };
}

function parseMetadata(entry: unknown, source: string): Record<string, string> {
  if (!isPlainObject(entry)) {
    throw new NerEngineError(`__metadata__ must be an object of strings, got ${describe(entry)}`, source);
  }
  for (const [k, v] of Object.entries(entry)) {
    if (typeof v !== "string") {
      throw new NerEngineError(`__metadata__ value for "${k}" must be a string, got ${describe(v)}`, source);
    }
  }
  return { ...(entry as Record<string, string>) };
}

/** Reads and parses a .safetensors file; the returned views share one buffer with the file contents. */
export function readSafetensorsFile(filePath: string): ParsedSafetensors & { bytes: Uint8Array } {
  // A regular file only (never /dev/zero or a FIFO), no bigger than one buffer, and its header length
  // checked against MAX_HEADER_BYTES and the file size before the rest is read.
  const buf = readBoundedFile(filePath, {
    maxBytes: LIMITS.safetensors,
    what: "safetensors file",
    head: {
      bytes: 8,
      check: (head, size) => {
        if (head.byteLength < 8) return; // parseSafetensors reports the truncation
        const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
        if (n > BigInt(MAX_HEADER_BYTES)) {
          throw new NerEngineError(`safetensors header length ${n} exceeds ${MAX_HEADER_BYTES} bytes: not a safetensors file or corrupt`, filePath);
        }
        if (8 + Number(n) > size) {
          throw new NerEngineError(`truncated safetensors file: header length ${n} runs beyond the file (${size} bytes)`, filePath);
        }
      },
    },
  });
  // Hand out plain Uint8Array views rather than Buffer ones: same memory, simpler type.
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  return { ...parseSafetensors(bytes, filePath), bytes };
}

/** IEEE half -> float, exact (every f16 value is representable in f32). */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero / subnormal
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * Converts a floating tensor to Float32Array. F32 data that is 4-byte aligned is returned as a
 * zero-copy view (so writing to it writes into the file buffer); everything else is copied.
 */
export function toFloat32(view: TensorView): Float32Array {
  const n = numElements(view.shape);
  const { data } = view;
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const out = (): Float32Array => new Float32Array(n);
  switch (view.dtype) {
    case "F32": {
      if (HOST_LITTLE_ENDIAN && data.byteOffset % 4 === 0) return new Float32Array(data.buffer, data.byteOffset, n);
      const r = out();
      for (let i = 0; i < n; i++) r[i] = dv.getFloat32(i * 4, true);
      return r;
    }
    case "F16": {
      const r = out();
      for (let i = 0; i < n; i++) r[i] = halfToFloat(dv.getUint16(i * 2, true));
      return r;
    }
    case "BF16": {
      // bf16 is the top half of an f32: shift its bits into place.
      const r = out();
      const bits = new Uint32Array(r.buffer); // same host byte order as r, so this is endian-safe
      for (let i = 0; i < n; i++) bits[i] = dv.getUint16(i * 2, true) << 16;
      return r;
    }
    case "F64": {
      const r = out();
      for (let i = 0; i < n; i++) r[i] = dv.getFloat64(i * 8, true);
      return r;
    }
    default:
      throw new NerEngineError(`cannot convert ${view.dtype} tensor to float32: not a floating dtype`, `tensor "${view.name}"`);
  }
}

export type TensorData =
  | Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint16Array | Uint8Array;

/** A tensor to write. Uint8Array data is taken as raw little-endian bytes of any dtype. */
export interface TensorToWrite {
  name: string;
  dtype: Dtype;
  shape: number[];
  data: TensorData;
}

/** Which dtypes each typed array may carry, so e.g. a Float32Array is never mislabelled as F16. */
function arrayFitsDtype(data: TensorData, dtype: Dtype): boolean {
  if (data instanceof Uint8Array) return true;
  if (data instanceof Float32Array) return dtype === "F32";
  if (data instanceof Float64Array) return dtype === "F64";
  if (data instanceof BigInt64Array) return dtype === "I64";
  if (data instanceof Int32Array) return dtype === "I32";
  if (data instanceof Int16Array) return dtype === "I16";
  if (data instanceof Int8Array) return dtype === "I8";
  return dtype === "F16" || dtype === "BF16"; // Uint16Array: raw half-precision bits
}

/**
 * Serialises tensors into safetensors bytes. Tensors are laid out widest dtype first, then by
 * name (the order the reference library uses), so with the 8-byte-padded header every tensor
 * starts aligned to its element size and F32 reads stay zero-copy. Metadata defaults to
 * {"format":"pt"}, which HF transformers expects.
 */
export function serializeSafetensors(
  tensors: readonly TensorToWrite[],
  metadata: Record<string, string> = {},
): Buffer {
  if (!HOST_LITTLE_ENDIAN) throw new NerEngineError("writing safetensors needs a little-endian host");
  const meta: Record<string, string> = { format: "pt", ...metadata };
  for (const [k, v] of Object.entries(meta)) {
    if (typeof v !== "string") throw new NerEngineError(`metadata value for "${k}" must be a string`);
  }
  const seen = new Set<string>();
  for (const t of tensors) {
    const where = `tensor "${t.name}"`;
    if (t.name === "__metadata__" || t.name === "") throw new NerEngineError("reserved or empty tensor name", where);
    if (seen.has(t.name)) throw new NerEngineError("duplicate tensor name", where);
    seen.add(t.name);
    if (!isDtype(t.dtype)) throw new NerEngineError(`unknown dtype ${describe(t.dtype)}`, where);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new NerEngineError(`shape must be non-negative integers, got ${describe(t.shape)}`, where);
    }
    if (!arrayFitsDtype(t.data, t.dtype)) {
      throw new NerEngineError(`${t.data.constructor.name} data cannot be written as ${t.dtype}`, where);
    }
    const expected = numElements(t.shape) * DTYPE_SIZE[t.dtype];
    if (t.data.byteLength !== expected) {
      throw new NerEngineError(
        `data has ${t.data.byteLength} bytes but ${t.dtype} shape [${t.shape.join(", ")}] needs ${expected}`,
        where,
      );
    }
  }

  const ordered = [...tensors].sort(
    (a, b) => DTYPE_SIZE[b.dtype] - DTYPE_SIZE[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  const header: Record<string, unknown> = { __metadata__: meta };
  let offset = 0;
  for (const t of ordered) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let headerBytes = Buffer.from(JSON.stringify(header), "utf8");
  const padded = Math.ceil(headerBytes.length / 8) * 8;
  if (padded !== headerBytes.length) {
    headerBytes = Buffer.concat([headerBytes, Buffer.alloc(padded - headerBytes.length, 0x20)]);
  }

  // Unpooled, so byteOffset is 0 and the alignment above holds in memory too.
  const out = Buffer.allocUnsafeSlow(8 + padded + offset);
  out.writeBigUInt64LE(BigInt(padded), 0);
  headerBytes.copy(out, 8);
  let pos = 8 + padded;
  for (const t of ordered) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}

/**
 * Writes `data` so that `target` holds either its old contents or the complete new ones, never
 * a torn file: write a temp file in the same directory (same filesystem, so rename is atomic),
 * fsync it, rename it over the target, then fsync the directory so the rename itself survives.
 */
export function writeFileAtomic(target: string, data: string | Uint8Array): void {
  const tmp = `${target}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`;
  const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, "wx");
    let written = 0;
    while (written < bytes.byteLength) {
      written += fs.writeSync(fd, bytes, written, bytes.byteLength - written);
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, target);
  } catch (e) {
    if (fd !== undefined) {
      try { fs.closeSync(fd); } catch { /* already failing */ }
    }
    try { fs.unlinkSync(tmp); } catch { /* may never have been created */ }
    throw new NerEngineError(`cannot write file (${(e as Error).message})`, target);
  }
  try {
    const dirFd = fs.openSync(path.dirname(path.resolve(target)), "r");
    try { fs.fsyncSync(dirFd); } finally { fs.closeSync(dirFd); }
  } catch {
    // Directory fsync is unsupported on some platforms (Windows); the data itself is synced.
  }
}
