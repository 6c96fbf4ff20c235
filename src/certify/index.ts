// Certified smoothness of chains and training objectives (issue 5): certificates and witnesses.
export * from "./certificate.js";
export * from "./witness.js";
export * from "./witness-report.js";
