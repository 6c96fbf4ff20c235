// Per-layer report records (certificate.json, smoothing.json) and plot specifications.
export * from "./plots.js";
export * from "./schema.js";
