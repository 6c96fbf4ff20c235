// Automatic smoothing of non-smooth chains with a certificate (issue 6): Algorithm 2 of
// smoothing-net.pdf and witnesses of the smoothing error.
export * from "./smooth.js";
export * from "./witness.js";
