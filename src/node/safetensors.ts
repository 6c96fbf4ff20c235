import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { writeFileAtomic } from "./atomic.js";

/**
 * The safetensors format (https://github.com/huggingface/safetensors, "Format" section), the
 * tensor container of the PyTorch / Hugging Face ecosystem:
 *
 *   bytes 0..8        N, the header size, unsigned 64-bit little-endian
 *   bytes 8..8+N      a UTF-8 JSON object: for each tensor name
 *                     `{"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}`
 *                     (offsets relative to the data buffer), plus an optional
 *                     `"__metadata__": {string: string}` entry; it may be padded with spaces
 *   bytes 8+N..       the data buffer: each tensor's elements, row-major, little-endian
 *
 * Rules checked on read (as the reference implementation does): N within bounds (≤ 100 MB, inside
 * the file), the header a JSON object, every dtype known, every shape a list of non-negative
 * integers, `end − begin = (Π shape) × dtype size`, offsets inside the buffer, and the tensors
 * covering the buffer exactly (no overlap, no hole, nothing after the last one). The header is
 * read and checked first; tensors are then read at their offsets through a file handle (the file
 * is never loaded whole, so files over 2 GiB work).
 *
 * Alignment: the writer pads the header with spaces so that the data buffer starts at a multiple
 * of 8 bytes (as the reference writer does) and lays tensors out by decreasing element size, so
 * every tensor starts at a multiple of its element size and can be viewed without copying by
 * readers that memory-map the file. The reader here reads each tensor into a fresh (aligned) array.
 */

/** Element types of the format (F8 types are not supported). */
export type SafetensorsDType = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U64" | "U32" | "U16" | "U8" | "BOOL";

/** Typed arrays that hold a tensor's elements. F16 and BF16 are decoded to Float32Array. */
export type TensorData =
  | Float64Array
  | Float32Array
  | BigInt64Array
  | BigUint64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint32Array
  | Uint16Array
  | Uint8Array;

/** A tensor as read from a file. */
export interface Tensor {
  /** The dtype in the file (F16/BF16 data come back as float32 values). */
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly data: TensorData;
}

/** A tensor to write: `dtype` defaults from the array type, `shape` to `[data.length]`. */
export interface TensorInput {
  readonly data: TensorData;
  readonly shape?: readonly number[];
  readonly dtype?: SafetensorsDType;
}

/** Contents of a safetensors file: tensors in file order, plus the `__metadata__` map. */
export interface SafetensorsContents {
  readonly tensors: Map<string, Tensor>;
  readonly metadata: Record<string, string>;
}

/** An invalid or unreadable safetensors file; names the file and, where relevant, the tensor. */
export class SafetensorsError extends Error {
  constructor(
    readonly file: string,
    message: string,
    readonly tensor?: string,
  ) {
    super(`${file}: ${tensor === undefined ? "" : `tensor "${tensor}": `}${message}`);
    this.name = "SafetensorsError";
  }
}

const DTYPE_SIZE: Record<SafetensorsDType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

/** Bytes per element of a dtype. */
export function dtypeSize(dtype: SafetensorsDType): number {
  return DTYPE_SIZE[dtype];
}

/** Largest header accepted on read, as in the reference implementation. */
export const MAX_HEADER_SIZE = 100_000_000;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function inferDType(data: TensorData): SafetensorsDType {
  if (data instanceof Float64Array) return "F64";
  if (data instanceof Float32Array) return "F32";
  if (data instanceof BigInt64Array) return "I64";
  if (data instanceof BigUint64Array) return "U64";
  if (data instanceof Int32Array) return "I32";
  if (data instanceof Int16Array) return "I16";
  if (data instanceof Int8Array) return "I8";
  if (data instanceof Uint32Array) return "U32";
  if (data instanceof Uint16Array) return "U16";
  return "U8";
}

/** Whether an array type can hold a dtype's raw elements as written. */
function compatible(dtype: SafetensorsDType, data: TensorData): boolean {
  switch (dtype) {
    case "BOOL":
    case "U8":
      return data instanceof Uint8Array;
    case "F16":
    case "BF16":
      return data instanceof Uint16Array; // raw bit patterns
    default:
      return inferDType(data) === dtype;
  }
}

function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Bytes of a typed array in little-endian order (a copy on big-endian hosts). */
function littleEndianBytes(data: TensorData): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (LITTLE_ENDIAN || data.BYTES_PER_ELEMENT === 1) return bytes;
  return swapBytes(bytes, data.BYTES_PER_ELEMENT);
}

function swapBytes(bytes: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += size) for (let j = 0; j < size; j++) out[i + j] = bytes[i + size - 1 - j];
  return out;
}

/**
 * Serializes tensors (written in insertion order within each element size, larger sizes first,
 * see the alignment note above) and string metadata into safetensors bytes.
 */
export function encodeSafetensors(
  tensors: Record<string, TensorInput> | Map<string, TensorInput>,
  metadata: Record<string, string> = {},
  file = "<safetensors>",
): Uint8Array {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const prepared = entries.map(([name, t], index) => {
    if (name === "__metadata__") throw new SafetensorsError(file, "the name __metadata__ is reserved", name);
    const dtype = t.dtype ?? inferDType(t.data);
    if (!(dtype in DTYPE_SIZE)) throw new SafetensorsError(file, `unknown dtype ${dtype}`, name);
    if (!compatible(dtype, t.data)) throw new SafetensorsError(file, `dtype ${dtype} does not match a ${t.data.constructor.name}`, name);
    const shape = [...(t.shape ?? [t.data.length])];
    for (const d of shape) if (!Number.isInteger(d) || d < 0) throw new SafetensorsError(file, `invalid shape [${shape.join(", ")}]`, name);
    if (elementCount(shape) !== t.data.length) {
      throw new SafetensorsError(file, `shape [${shape.join(", ")}] has ${elementCount(shape)} elements, data has ${t.data.length}`, name);
    }
    return { name, dtype, shape, data: t.data, index };
  });
  // Larger elements first (stable): every tensor then starts at a multiple of its element size.
  prepared.sort((a, b) => DTYPE_SIZE[b.dtype] - DTYPE_SIZE[a.dtype] || a.index - b.index);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== "string") throw new SafetensorsError(file, `metadata "${k}" must be a string`);
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const t of prepared) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let headerBytes = Buffer.from(JSON.stringify(header), "utf8");
  const pad = (8 - (headerBytes.length % 8)) % 8;
  if (pad > 0) headerBytes = Buffer.concat([headerBytes, Buffer.alloc(pad, 0x20)]);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let p = 8 + headerBytes.length;
  for (const t of prepared) {
    out.set(littleEndianBytes(t.data), p);
    p += t.data.byteLength;
  }
  return out;
}

/** Writes a safetensors file atomically (temporary file, fsync, rename). */
export function writeSafetensors(
  path: string,
  tensors: Record<string, TensorInput> | Map<string, TensorInput>,
  metadata: Record<string, string> = {},
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata, path));
}

/** A tensor's entry in the header: dtype, shape and byte range in the data buffer. */
export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Offsets relative to the data buffer. */
  begin: number;
  end: number;
}

/** A validated header: entries in file order, `__metadata__`, and where the data buffer starts. */
export interface SafetensorsHeader {
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  /** Byte offset of the data buffer in the file (8 + header length). */
  dataStart: number;
  /** Size of the file in bytes. */
  fileSize: number;
}

/** Checks the 8-byte header length against the limit and the file size; returns it. */
function checkHeaderLength(n64: bigint, fileSize: number, file: string): number {
  if (n64 > BigInt(MAX_HEADER_SIZE)) throw new SafetensorsError(file, `header length ${n64} exceeds the limit of ${MAX_HEADER_SIZE} bytes`);
  const n = Number(n64);
  if (n < 2) throw new SafetensorsError(file, `header length ${n} is too small for a JSON object`);
  if (8 + n > fileSize)
    throw new SafetensorsError(file, `header length ${n} runs past the end of the file (${fileSize} bytes): truncated?`);
  return n;
}

/**
 * Reads and validates only the header of a safetensors file (the 8-byte length, then the JSON),
 * checking every entry against the file's size: a corrupt header or a truncated file is reported
 * without reading the tensors.
 */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    throw new SafetensorsError(path, `cannot read: ${(error as Error).message}`);
  }
  try {
    return readHeaderFromFd(fd, path);
  } finally {
    closeSync(fd);
  }
}

function readHeaderFromFd(fd: number, path: string): SafetensorsHeader {
  const fileSize = fstatSync(fd).size;
  if (fileSize < 8) throw new SafetensorsError(path, `file too short (${fileSize} bytes): no 8-byte header length`);
  const head = Buffer.alloc(8);
  readFully(fd, head, 0, path);
  const n = checkHeaderLength(head.readBigUInt64LE(0), fileSize, path);
  const header = Buffer.alloc(n);
  readFully(fd, header, 8, path);
  return parseSafetensorsHeader(header, fileSize, path);
}

/** Largest single read(2) (Node refuses reads over 2 GiB). */
const READ_CHUNK = 1 << 30;

/** Fills `buf` from `fd` at `position` (chunked: works for tensors and files over 2 GiB). */
function readFully(fd: number, buf: Uint8Array, position: number, path: string): void {
  let done = 0;
  while (done < buf.length) {
    const want = Math.min(READ_CHUNK, buf.length - done);
    const got = readSync(fd, buf, done, want, position + done);
    if (got <= 0) throw new SafetensorsError(path, `unexpected end of file at byte ${position + done}: truncated?`);
    done += got;
  }
}

/**
 * Reads and validates a safetensors file: the header first ({@link readSafetensorsHeader}), then
 * each tensor at its offset through a file handle into its own array. The file is never held in
 * memory as a whole, so files over 2 GiB load and peak memory is the tensors themselves.
 * `names`: read only these tensors (the whole header is still validated; a missing name is an error).
 */
export function readSafetensors(path: string, options: { names?: readonly string[] } = {}): SafetensorsContents {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    throw new SafetensorsError(path, `cannot read: ${(error as Error).message}`);
  }
  try {
    const header = readHeaderFromFd(fd, path);
    const wanted = options.names ? new Set(options.names) : null;
    if (wanted) {
      const missing = [...wanted].filter((n) => !header.entries.some((e) => e.name === n));
      if (missing.length > 0) throw new SafetensorsError(path, `no tensor ${missing.map((m) => JSON.stringify(m)).join(", ")}`);
    }
    const tensors = new Map<string, Tensor>();
    for (const t of header.entries) {
      if (wanted && !wanted.has(t.name)) continue;
      const raw = new Uint8Array(t.end - t.begin);
      readFully(fd, raw, header.dataStart + t.begin, path);
      tensors.set(t.name, { dtype: t.dtype, shape: t.shape, data: toTypedArray(t.dtype, raw) });
    }
    return { tensors, metadata: header.metadata };
  } finally {
    closeSync(fd);
  }
}

/** Parses and validates safetensors bytes; `file` names the source in error messages. */
export function decodeSafetensors(bytes: Uint8Array, file = "<safetensors>"): SafetensorsContents {
  if (bytes.length < 8) throw new SafetensorsError(file, `file too short (${bytes.length} bytes): no 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = checkHeaderLength(view.getBigUint64(0, true), bytes.length, file);
  const header = parseSafetensorsHeader(bytes.subarray(8, 8 + n), bytes.length, file);
  const tensors = new Map<string, Tensor>();
  for (const t of header.entries) {
    const raw = bytes.subarray(header.dataStart + t.begin, header.dataStart + t.end);
    tensors.set(t.name, { dtype: t.dtype, shape: t.shape, data: toTypedArray(t.dtype, raw) });
  }
  return { tensors, metadata: header.metadata };
}

/**
 * Validates the JSON header (the bytes after the 8-byte length) of a file of `fileSize` bytes:
 * dtypes, shapes, offsets inside the data buffer, tensors tiling the buffer exactly.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, fileSize: number, file = "<safetensors>"): SafetensorsHeader {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(headerBytes);
  } catch {
    throw new SafetensorsError(file, "header is not valid UTF-8");
  }
  if (!text.startsWith("{")) throw new SafetensorsError(file, "header does not start with '{'");
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (error) {
    throw new SafetensorsError(file, `header is not valid JSON (${(error as Error).message})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header))
    throw new SafetensorsError(file, "header is not a JSON object");
  const dataStart = 8 + headerBytes.length;
  const dataLength = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const infos: SafetensorsEntry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new SafetensorsError(file, "__metadata__ is not an object");
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") throw new SafetensorsError(file, `__metadata__ entry "${k}" is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new SafetensorsError(file, "entry is not an object", name);
    const { dtype, shape, data_offsets: offsets } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dtype !== "string" || !(dtype in DTYPE_SIZE)) {
      throw new SafetensorsError(file, `unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(DTYPE_SIZE).join(", ")})`, name);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(file, `shape ${JSON.stringify(shape)} is not a list of non-negative integers`, name);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw new SafetensorsError(file, `data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`, name);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) throw new SafetensorsError(file, `data_offsets [${begin}, ${end}] end before they begin`, name);
    if (end > dataLength) {
      throw new SafetensorsError(
        file,
        `data_offsets [${begin}, ${end}] run past the end of the data (${dataLength} bytes): truncated?`,
        name,
      );
    }
    const expected = elementCount(shape) * DTYPE_SIZE[dtype as SafetensorsDType];
    if (end - begin !== expected) {
      throw new SafetensorsError(
        file,
        `shape [${shape.join(", ")}] × ${dtype} (${DTYPE_SIZE[dtype as SafetensorsDType]} bytes) needs ${expected} bytes, data_offsets give ${end - begin}`,
        name,
      );
    }
    infos.push({ name, dtype: dtype as SafetensorsDType, shape, begin, end });
  }
  // The tensors must tile the buffer: sorted by offset, each starts where the previous ends.
  const sorted = [...infos].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: string | undefined;
  for (const t of sorted) {
    if (t.begin < cursor)
      throw new SafetensorsError(file, `data overlaps tensor "${previous}" (starts at ${t.begin}, before ${cursor})`, t.name);
    if (t.begin > cursor)
      throw new SafetensorsError(file, `hole in the data buffer before this tensor (bytes ${cursor}..${t.begin} unused)`, t.name);
    cursor = t.end;
    previous = t.name;
  }
  if (cursor !== dataLength) {
    throw new SafetensorsError(
      file,
      `${dataLength - cursor} bytes after the last tensor: the data buffer is ${dataLength} bytes, tensors cover ${cursor}`,
    );
  }
  return { entries: infos, metadata, dataStart, fileSize };
}

/** Copies little-endian bytes into a fresh typed array of the dtype (F16/BF16 decoded to float32). */
function toTypedArray(dtype: SafetensorsDType, raw: Uint8Array): TensorData {
  const size = DTYPE_SIZE[dtype];
  const copy = new Uint8Array(LITTLE_ENDIAN || size === 1 ? raw : swapBytes(raw, size));
  const buf = copy.buffer;
  switch (dtype) {
    case "F64":
      return new Float64Array(buf);
    case "F32":
      return new Float32Array(buf);
    case "I64":
      return new BigInt64Array(buf);
    case "U64":
      return new BigUint64Array(buf);
    case "I32":
      return new Int32Array(buf);
    case "U32":
      return new Uint32Array(buf);
    case "I16":
      return new Int16Array(buf);
    case "U16":
      return new Uint16Array(buf);
    case "I8":
      return new Int8Array(buf);
    case "U8":
    case "BOOL":
      return copy;
    case "F16":
      return decodeHalf(new Uint16Array(buf));
    case "BF16":
      return decodeBFloat16(new Uint16Array(buf));
  }
}

/** IEEE 754 binary16 → float32 (exact: every half value is a float32 value). */
function decodeHalf(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) out[i] = sign * frac * 2 ** -24;
    else if (exp === 31) out[i] = frac === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
    else out[i] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return out;
}

/** bfloat16 → float32: the upper 16 bits of a float32. */
function decodeBFloat16(bits: Uint16Array): Float32Array {
  const u = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i] << 16;
  return new Float32Array(u.buffer);
}

/**
 * A tensor's values as float64 or float32 numbers (float arrays and integer arrays converted; 64-bit
 * integers must be exactly representable). Used to load parameters and labels.
 */
export function tensorToNumbers(t: Tensor, dtype: "float32" | "float64", file = "<safetensors>", name = "?"): Float32Array | Float64Array {
  const out = dtype === "float32" ? new Float32Array(t.data.length) : new Float64Array(t.data.length);
  const d = t.data;
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) {
    for (let i = 0; i < d.length; i++) {
      const v = Number(d[i]);
      if (BigInt(v) !== d[i]) throw new SafetensorsError(file, `integer ${d[i]} is not exactly representable`, name);
      out[i] = v;
    }
  } else out.set(d);
  return out;
}

/** A tensor's values as Int32Array (for labels), checking range. */
export function tensorToInt32(t: Tensor, file = "<safetensors>", name = "?"): Int32Array {
  const out = new Int32Array(t.data.length);
  for (let i = 0; i < t.data.length; i++) {
    const v = Number(t.data[i]);
    if (!Number.isInteger(v) || v < -2147483648 || v > 2147483647)
      throw new SafetensorsError(file, `value ${t.data[i]} is not a 32-bit integer`, name);
    out[i] = v;
  }
  return out;
}
