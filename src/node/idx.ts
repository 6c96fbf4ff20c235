import { readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { gunzip } from "node:zlib";
import { writeFileAtomic } from "./atomic.js";

// IDX files (LeCun, Cortes & Burges, "THE MNIST DATABASE of handwritten digits", file formats
// section): a 4-byte magic number — two zero bytes, a data type code (0x08 unsigned byte, 0x09
// signed byte, 0x0B short, 0x0C int, 0x0D float, 0x0E double) and the number of dimensions — then
// one big-endian uint32 per dimension, then the data in row-major (C) order. Files may be gzipped
// (detected by the gzip magic 1f 8b, RFC 1952 Sec. 2.3.1).

const gunzipAsync = promisify(gunzip);

/** An IDX array of unsigned bytes. */
export interface IdxArray {
  readonly dims: readonly number[];
  readonly data: Uint8Array;
}

/** Error about an IDX file; the message names the file and what is wrong. */
export class IdxError extends Error {
  override name = "IdxError";
}

const TYPE_NAMES: Record<number, string> = { 8: "ubyte", 9: "byte", 11: "short", 12: "int", 13: "float", 14: "double" };

/** True when `bytes` starts with the gzip magic number 1f 8b. */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * Parses an uncompressed IDX buffer of unsigned bytes; `file` names it in errors. The returned
 * data is a view into `bytes` (no copy).
 */
export function parseIdx(bytes: Uint8Array, file: string): IdxArray {
  const fail = (what: string): never => {
    throw new IdxError(`${file}: ${what}`);
  };
  if (bytes.length < 4) fail(`truncated: ${bytes.length} bytes, shorter than the 4-byte magic number`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    fail(`bad magic number 0x${hex(bytes, 0, 4)}: an IDX file starts with two zero bytes, a type code and a dimension count`);
  }
  const type = bytes[2];
  if (type !== 0x08) {
    const known = TYPE_NAMES[type];
    fail(
      known
        ? `unsupported data type 0x${hex(bytes, 2, 1)} (${known}); only 0x08 (ubyte) is supported`
        : `invalid data type code 0x${hex(bytes, 2, 1)}`,
    );
  }
  const ndims = bytes[3];
  if (ndims === 0) fail("bad magic number: zero dimensions");
  const headerSize = 4 + 4 * ndims;
  if (bytes.length < headerSize) fail(`truncated header: ${bytes.length} bytes, need ${headerSize} for ${ndims} dimension sizes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let k = 0; k < ndims; k++) {
    const n = view.getUint32(4 + 4 * k, false);
    dims.push(n);
    count *= n;
  }
  const expected = headerSize + count;
  if (bytes.length < expected) fail(`truncated: ${bytes.length} bytes, expected ${expected} for dimensions [${dims.join(", ")}]`);
  if (bytes.length > expected)
    fail(`${bytes.length - expected} trailing bytes after the data of dimensions [${dims.join(", ")}] (expected ${expected} bytes)`);
  return { dims, data: bytes.subarray(headerSize, expected) };
}

/** Reads an IDX file, gunzipping it when it starts with the gzip magic. Errors name the file. */
export async function readIdx(file: string): Promise<IdxArray> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    throw new IdxError(e.code === "ENOENT" ? `${file}: file not found` : `${file}: cannot read (${e.message})`);
  }
  if (isGzip(bytes)) {
    try {
      bytes = await gunzipAsync(bytes);
    } catch (error) {
      throw new IdxError(`${file}: corrupt or truncated gzip stream (${(error as Error).message})`);
    }
  }
  return parseIdx(bytes, file);
}

/** Encodes unsigned bytes as an (uncompressed) IDX buffer. */
export function encodeIdx(dims: readonly number[], data: Uint8Array): Uint8Array {
  if (dims.length < 1 || dims.length > 255) throw new RangeError(`IDX: 1 to 255 dimensions, got ${dims.length}`);
  const count = dims.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new RangeError(`IDX: dimensions [${dims.join(", ")}] need ${count} bytes, got ${data.length}`);
  const header = 4 + 4 * dims.length;
  const out = new Uint8Array(header + count);
  const view = new DataView(out.buffer);
  out[2] = 0x08;
  out[3] = dims.length;
  dims.forEach((d, k) => {
    view.setUint32(4 + 4 * k, d, false);
  });
  out.set(data, header);
  return out;
}

/** Writes an uncompressed IDX file atomically (temporary file + rename). */
export function writeIdx(file: string, dims: readonly number[], data: Uint8Array): void {
  writeFileAtomic(file, encodeIdx(dims, data));
}

function hex(bytes: Uint8Array, start: number, n: number): string {
  let s = "";
  for (let i = start; i < start + n; i++) s += (bytes[i] ?? 0).toString(16).padStart(2, "0");
  return s;
}
