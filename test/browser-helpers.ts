// Debian's Chromium driven by playwright-core (which downloads no browser of its own), shared by the
// browser tests: where it is, why a test skips without it, and one way to launch it.
import { existsSync } from "node:fs";
import type { Browser } from "playwright-core";

/** The Chromium binary (`CHAINOPT_CHROMIUM` overrides Debian's `/usr/bin/chromium`). */
export const CHROMIUM = process.env.CHAINOPT_CHROMIUM ?? "/usr/bin/chromium";

/** `false` when Chromium is present, else the reason a browser test skips. */
export const chromiumSkip: false | string = existsSync(CHROMIUM)
  ? false
  : `Chromium not found at ${CHROMIUM} (apt-get install -y chromium; or set CHAINOPT_CHROMIUM)`;

/** Launches headless Chromium without background traffic (no update, sync or first-run requests). */
export async function launchChromium(): Promise<Browser> {
  const playwright = await import("playwright-core");
  return playwright.chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
}
