// Element types, the random generator and the portable backend (see src/index.ts for the namespaces).
export type {
  ActivationLayout,
  Backend,
  BatchNormGeometry,
  ConvGeometry,
  DnnPrimitives,
  ElementwiseKernels,
  PoolWindowGeometry,
} from "./backend.js";
export * from "./collective.js";
export * from "./dtype.js";
export { PortableBackend, portableBackend } from "./portable.js";
export * from "./rng.js";
