import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { gunzip } from "node:zlib";
import { type Dataset, splitDataset } from "../../data/dataset.js";
import { parseDiabetes, parseDigits, parseSklearnCsv } from "../../data/sklearn-csv.js";
import { dataCacheDir } from "./cache.js";
import { DataFileError, type LoadDatasetOptions, type LoadedDataset } from "./types.js";

// scikit-learn's CSVs (diabetes, boston, iris, wine, breast-cancer, digits), from Debian
// `python3-sklearn`: extracted with `apt-get download` + `dpkg-deb -x` into the data cache, or
// read from an installed python3-sklearn.

const gunzipAsync = promisify(gunzip);
const execFileAsync = promisify(execFile);

/** The sklearn data sets, each read from its CSV by {@link loadSklearn}. */
export const sklearnDatasetNames = ["diabetes", "boston", "iris", "wine", "breast-cancer", "digits"] as const;
export type SklearnDatasetName = (typeof sklearnDatasetNames)[number];

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

/** A sklearn set: all samples as train, or a seeded train/test split when `options.test` is set. */
export async function loadSklearn(name: SklearnDatasetName, options: LoadDatasetOptions): Promise<LoadedDataset> {
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
