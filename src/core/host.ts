// The two host services the portable core uses, reached through `globalThis` so that the core
// type-checks against the ECMAScript library alone (tsconfig.core.json) and runs in Node, browsers
// and workers alike.

interface HostGlobals {
  performance?: { now(): number };
  setTimeout?: (callback: () => void, ms: number) => unknown;
  /** Node's check-phase macrotask: runs after the pending I/O and signal callbacks, without the ≥ 1 ms of `setTimeout(…, 0)`. */
  setImmediate?: (callback: () => void) => unknown;
}

const host = globalThis as HostGlobals;

/** Milliseconds of a monotonic clock (`performance.now()`; `Date.now()` where there is none). */
export function now(): number {
  return host.performance ? host.performance.now() : Date.now();
}

/**
 * Resolves on a later turn of the host's event loop, so that timers, I/O callbacks and signal
 * handlers (Ctrl-C) run during a long computation: a `setImmediate` macrotask where the host has
 * one (Node: it runs right after that turn's I/O poll, where signals are delivered; a
 * `setTimeout(…, 0)` waits at least 1 ms, 2 % of a 50 ms slice of training), else a
 * `setTimeout(…, 0)` (browsers, workers). Where the host has no timers it resolves after the
 * pending microtasks.
 */
export function yieldToHost(): Promise<void> {
  return new Promise<void>((resolve) => {
    if (host.setImmediate) host.setImmediate(resolve);
    else if (host.setTimeout) host.setTimeout(resolve, 0);
    else void Promise.resolve().then(resolve);
  });
}
