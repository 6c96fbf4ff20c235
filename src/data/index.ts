// Data sets in memory, mini-batches, standardization, sklearn CSV parsers and synthetic data.
export * from "./dataset.js";
export * from "./sklearn-csv.js";
export * from "./synthetic.js";
