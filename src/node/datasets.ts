// The data set readers live in src/node/datasets/ (one file per source); this module keeps the
// import path `./datasets.js` of the modules that use them.
export * from "./datasets/index.js";
