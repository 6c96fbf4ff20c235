// The two host services the portable core uses, reached through `globalThis` so that the core
// type-checks against the ECMAScript library alone (tsconfig.core.json) and runs in Node, browsers
// and workers alike.

interface HostGlobals {
  performance?: { now(): number };
  setTimeout?: (callback: () => void, ms: number) => unknown;
  /** Node's: runs after the pending timers, I/O and signal callbacks, without setTimeout's ≥ 1 ms delay. */
  setImmediate?: (callback: () => void) => unknown;
}

const host = globalThis as HostGlobals;

/** Milliseconds of a monotonic clock (`performance.now()`; `Date.now()` where there is none). */
export function now(): number {
  return host.performance ? host.performance.now() : Date.now();
}

/**
 * Resolves on a later turn of the host's event loop (a `setImmediate` macrotask in Node, else
 * `setTimeout(…, 0)`), so that timers, I/O callbacks and signal handlers (Ctrl-C) run during a
 * long computation. `setImmediate` first: Node clamps `setTimeout(…, 0)` to 1 ms, which a loop of
 * thousands of tiny epochs (one yield each) would spend idle. Where the host has no timers it
 * resolves after the pending microtasks.
 */
export function yieldToHost(): Promise<void> {
  return new Promise<void>((resolve) => {
    if (host.setImmediate) host.setImmediate(resolve);
    else if (host.setTimeout) host.setTimeout(resolve, 0);
    else void Promise.resolve().then(resolve);
  });
}
