// Automatic smoothing of non-smooth chains with a certificate (docs/smoothing.md): Algorithm 2 of
// Roulet & Harchaoui, "On the Smoothing of Deep Networks" (CISS 2021) and witnesses of the smoothing error.
export * from "./smooth.js";
export * from "./witness.js";
