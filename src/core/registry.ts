import type { Backend } from "./backend.js";
import { portableBackend } from "./portable.js";

let defaultBackend: Backend = portableBackend;

/**
 * The backend new chains compute with unless told otherwise. The portable backend until the
 * Node edge (`chainopt/node`) registers the native one.
 */
export function getDefaultBackend(): Backend {
  return defaultBackend;
}

/** Makes `backend` the default of chains created from now on. */
export function setDefaultBackend(backend: Backend): void {
  defaultBackend = backend;
}
