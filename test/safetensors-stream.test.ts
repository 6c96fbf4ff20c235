import assert from "node:assert/strict";
import { closeSync, ftruncateSync, mkdtempSync, openSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { encodeSafetensors, readSafetensors, readSafetensorsHeader, SafetensorsError } from "../src/node/safetensors.js";

// The safetensors reader reads the 8-byte length and the header first, validates it against the
// file's size, then reads the tensors by offset through a file handle (no whole-file buffer).

const dir = mkdtempSync(join(tmpdir(), "chainopt-st-"));

describe("safetensors reader: header first, tensors by offset", () => {
  it("reads a file over 2 GiB (sparse) without loading it whole", () => {
    // A 16-byte F32 tensor, then a U8 tensor of 2.5 GiB that is never read (a sparse file).
    const big = 2.5 * 1024 ** 3;
    const header = Buffer.from(
      JSON.stringify({
        small: { dtype: "F32", shape: [4], data_offsets: [0, 16] },
        big: { dtype: "U8", shape: [big], data_offsets: [16, 16 + big] },
      }),
    );
    const file = join(dir, "big.safetensors");
    const fd = openSync(file, "w");
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    writeSync(fd, len, 0, 8, 0);
    writeSync(fd, header, 0, header.length, 8);
    writeSync(fd, Buffer.from(new Float32Array([1, 2, 3, 4]).buffer), 0, 16, 8 + header.length);
    ftruncateSync(fd, 8 + header.length + 16 + big);
    closeSync(fd);
    const h = readSafetensorsHeader(file);
    assert.deepEqual(
      h.entries.map((e) => [e.name, e.end - e.begin]),
      [
        ["small", 16],
        ["big", big],
      ],
    );
    const { tensors } = readSafetensors(file, { names: ["small"] });
    assert.deepEqual(Array.from((tensors.get("small")?.data ?? new Float32Array(0)) as Float32Array), [1, 2, 3, 4]);
    assert.equal(tensors.has("big"), false);
  });

  it("reports a corrupt header naming the file, before reading tensors", () => {
    const bytes = Buffer.from(encodeSafetensors({ a: { data: new Float32Array([1, 2]) } }));
    bytes.write("#", 8);
    const file = join(dir, "corrupt.safetensors");
    writeFileSync(file, bytes);
    assert.throws(
      () => readSafetensors(file),
      (e: unknown) => e instanceof SafetensorsError && e.message.startsWith(`${file}: `) && /does not start with/.test(e.message),
    );
    const huge = Buffer.alloc(16);
    huge.writeBigUInt64LE(10n ** 15n);
    writeFileSync(join(dir, "huge.safetensors"), huge);
    assert.throws(() => readSafetensorsHeader(join(dir, "huge.safetensors")), /exceeds the limit/);
  });

  it("reports a truncated file naming the file and the tensor", () => {
    const bytes = encodeSafetensors({ a: { data: new Float32Array([1, 2, 3, 4]) }, b: { data: new Float64Array([5, 6]) } });
    const file = join(dir, "truncated.safetensors");
    writeFileSync(file, bytes.subarray(0, bytes.length - 5));
    assert.throws(
      () => readSafetensors(file),
      (e: unknown) =>
        e instanceof SafetensorsError && e.message.startsWith(`${file}: `) && /run past the end of the data.*truncated/.test(e.message),
    );
    writeFileSync(file, bytes.subarray(0, 12));
    assert.throws(() => readSafetensors(file), /header length \d+ runs past the end of the file/);
  });
});
