import { createDataset, type Dataset } from "./dataset.js";

// Parsers of the small data sets shipped with scikit-learn (sklearn/datasets/data/, Debian
// package python3-sklearn 1.2.1). Portable: they take text; src/node/datasets.ts reads (and
// gunzips) the files. Formats, as read by sklearn.datasets._base:
// - iris.csv, wine_data.csv, breast_cancer.csv (`load_csv_data`): a header line
//   `n_samples,n_features,<target names…>`, then rows `features…,class`.
// - boston_house_prices.csv: header `506,13,,,…`, a line of quoted column names, then rows
//   `13 features,MEDV` (the regression target, in $1000s).
// - diabetes_data_raw.csv.gz: 442 rows of 10 space-separated raw features (age, sex, bmi, bp,
//   s1…s6; *not* the scaled version load_diabetes returns by default); diabetes_target.csv.gz:
//   one target per line.
// - digits.csv.gz: 1797 rows of 64 pixel values in 0..16 (8 × 8 image, row-major) then the digit.

/** Error naming the file and line of a malformed CSV. */
export class CsvError extends Error {
  override name = "CsvError";
}

function lines(text: string): string[] {
  const out = text.split(/\r?\n/);
  while (out.length > 0 && out[out.length - 1].trim() === "") out.pop();
  return out;
}

function parseRow(line: string, file: string, lineNo: number, separator: RegExp | string, expected: number): number[] {
  const fields = line.trim().split(separator);
  if (fields.length !== expected) throw new CsvError(`${file}:${lineNo}: expected ${expected} fields, got ${fields.length}`);
  return fields.map((f, k) => {
    const v = Number(f.trim());
    if (f.trim() === "" || !Number.isFinite(v))
      throw new CsvError(`${file}:${lineNo}: field ${k + 1} ${JSON.stringify(f)} is not a finite number`);
    return v;
  });
}

/**
 * A sklearn CSV with the `n_samples,n_features,…` header: classification (iris, wine,
 * breast-cancer: integer class in the last column, classes = the target names of the header) or
 * regression (boston: real target, and a line of column names after the header).
 */
export function parseSklearnCsv(text: string, file: string, name: string, task: "classification" | "regression"): Dataset {
  const rows = lines(text);
  if (rows.length === 0) throw new CsvError(`${file}: empty file`);
  const header = rows[0].split(",").map((s) => s.trim());
  const n = Number(header[0]);
  const d = Number(header[1]);
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(d) || d < 1) {
    throw new CsvError(`${file}:1: header must start with n_samples,n_features, got ${JSON.stringify(rows[0].slice(0, 80))}`);
  }
  let first = 1;
  // Boston has a line of (quoted) column names after the counts.
  if (rows.length === n + 2 && /[A-Za-z"]/.test(rows[1])) first = 2;
  const classNames = header.slice(2).filter((s) => s !== "");
  if (task === "classification" && classNames.length < 2)
    throw new CsvError(`${file}:1: classification header lists ${classNames.length} class names`);
  const body = rows.length - first;
  if (body !== n) throw new CsvError(`${file}: header announces ${n} samples, found ${body} rows`);
  const x = new Float32Array(n * d);
  const labels = task === "classification" ? new Int32Array(n) : undefined;
  const targets = task === "regression" ? new Float32Array(n) : undefined;
  for (let i = 0; i < n; i++) {
    const lineNo = first + i + 1;
    const v = parseRow(rows[first + i], file, lineNo, ",", d + 1);
    for (let j = 0; j < d; j++) x[i * d + j] = v[j];
    const y = v[d];
    if (labels) {
      if (!Number.isInteger(y) || y < 0 || y >= classNames.length)
        throw new CsvError(`${file}:${lineNo}: class ${y} outside 0..${classNames.length - 1}`);
      labels[i] = y;
    } else targets![i] = y;
  }
  return labels
    ? createDataset({ name, inputShape: [d], x, labels, classes: classNames.length })
    : createDataset({ name, inputShape: [d], x, targets: targets!, targetSize: 1 });
}

/** Diabetes: raw features (whitespace-separated, 10 columns) and targets in separate files. */
export function parseDiabetes(dataText: string, targetText: string, files: { data: string; target: string }): Dataset {
  const rows = lines(dataText);
  const t = lines(targetText);
  if (rows.length === 0) throw new CsvError(`${files.data}: empty file`);
  if (t.length !== rows.length) throw new CsvError(`${files.target}: ${t.length} targets for ${rows.length} rows of ${files.data}`);
  const d = rows[0].trim().split(/\s+/).length;
  const n = rows.length;
  const x = new Float32Array(n * d);
  const targets = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = parseRow(rows[i], files.data, i + 1, /\s+/, d);
    for (let j = 0; j < d; j++) x[i * d + j] = v[j];
    targets[i] = parseRow(t[i], files.target, i + 1, /\s+/, 1)[0];
  }
  return createDataset({ name: "diabetes", inputShape: [d], x, targets, targetSize: 1 });
}

/** Digits: rows of 64 pixels in 0..16 then the digit; pixels scaled to [0, 1] (÷ 16), shape [1, 8, 8]. */
export function parseDigits(text: string, file: string): Dataset {
  const rows = lines(text);
  const n = rows.length;
  if (n === 0) throw new CsvError(`${file}: empty file`);
  const x = new Float32Array(n * 64);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = parseRow(rows[i], file, i + 1, ",", 65);
    for (let j = 0; j < 64; j++) {
      if (v[j] < 0 || v[j] > 16) throw new CsvError(`${file}:${i + 1}: pixel ${v[j]} outside 0..16`);
      x[i * 64 + j] = v[j] / 16;
    }
    if (!Number.isInteger(v[64]) || v[64] < 0 || v[64] > 9) throw new CsvError(`${file}:${i + 1}: digit ${v[64]} outside 0..9`);
    labels[i] = v[64];
  }
  return createDataset({ name: "digits", inputShape: [1, 8, 8], x, labels, classes: 10 });
}
