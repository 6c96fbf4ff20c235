// Certified smoothness of chains and training objectives (docs/certificates.md): certificates and witnesses.
export * from "./certificate.js";
export * from "./projected-sgd.js";
export * from "./witness.js";
export * from "./witness-report.js";
