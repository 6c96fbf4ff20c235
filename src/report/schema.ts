/**
 * Data of run directories as the report reads them (portable: no file access here; see
 * src/node/report.ts for loading and rendering).
 *
 * ## metrics.jsonl
 * One JSON object per line; see `MetricRecord` in src/node/run-dir.ts. The report uses:
 *   - `type: "step"` records: `step`, `epoch`, `wall`, `loss`, `lr`, `grad_norm`;
 *   - `type: "epoch"` records: `epoch`, `step`, `wall`, `lr`, `grad_norm`, and evaluations named
 *     `<split>_<metric>` with split ∈ train | validation | test and metric ∈ loss | accuracy;
 *     any other numeric key of epoch records is drawn as an extra curve against the epoch.
 *   Numbers may be the strings "NaN", "Infinity", "-Infinity" (non-finite values); they are
 *   left out of plots.
 *
 * ## certificate.json and smoothing.json (optional, per-layer results)
 * ```json
 * { "title": "Smoothness certificate",
 *   "layers": ["1 dense", "3 dense", "5 dense"],
 *   "quantities": { "lipschitz": [1.2, 3.4, 0.9], "smoothness": [2.0, 5.1, null] },
 *   "log": true }
 * ```
 * `layers` labels the layers (default "1", "2", …); each entry of `quantities` is one number per
 * layer (null when unknown) and becomes one bar chart comparing the runs layer by layer; `log`
 * asks for a logarithmic value axis. Any other `<name>.json` with this schema can be added to the
 * report through `perLayerFiles`.
 */

/** A per-layer result file (certificate.json, smoothing.json). */
export interface PerLayerRecord {
  title?: string;
  layers?: string[];
  quantities: Record<string, (number | null)[]>;
  log?: boolean;
}

/** One metrics.jsonl record as read (values may be non-finite markers). */
export type MetricRow = { type?: string; step?: number; epoch?: number; wall?: number } & Record<string, unknown>;

/** One run, loaded. */
export interface RunData {
  /** Display name (unique among the runs of one report). */
  name: string;
  /** Where it was loaded from. */
  dir?: string;
  config?: Record<string, unknown>;
  metrics: MetricRow[];
  summary?: Record<string, unknown>;
  /** Per-layer files by base name (`certificate`, `smoothing`, …). */
  perLayer?: Record<string, PerLayerRecord>;
}

/** Validates a parsed per-layer file; throws an Error naming `source` and the field at fault. */
export function parsePerLayerRecord(value: unknown, source: string): PerLayerRecord {
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error(`${source}: expected a JSON object`);
  const v = value as Record<string, unknown>;
  const q = v.quantities;
  if (q === null || typeof q !== "object" || Array.isArray(q))
    throw new Error(`${source}: "quantities" must be an object of per-layer number arrays`);
  const quantities: Record<string, (number | null)[]> = {};
  let n = -1;
  for (const [k, arr] of Object.entries(q as Record<string, unknown>)) {
    if (!Array.isArray(arr) || !arr.every((x) => x === null || typeof x === "number" || typeof x === "string")) {
      throw new Error(`${source}: quantities.${k} must be an array of numbers (or null)`);
    }
    if (n >= 0 && arr.length !== n) throw new Error(`${source}: quantities.${k} has ${arr.length} entries, expected ${n} (one per layer)`);
    n = arr.length;
    quantities[k] = arr.map((x) => (x === null ? null : toNumber(x)));
  }
  let layers: string[] | undefined;
  if (v.layers !== undefined) {
    if (!Array.isArray(v.layers)) throw new Error(`${source}: "layers" must be an array of labels`);
    layers = v.layers.map(String);
    if (n >= 0 && layers.length !== n) throw new Error(`${source}: "layers" has ${layers.length} labels, quantities have ${n} entries`);
  }
  return { title: typeof v.title === "string" ? v.title : undefined, layers, quantities, log: v.log === true };
}

/** A metric value as a finite number, or null (missing, non-numeric or non-finite). */
export function toNumber(x: unknown): number | null {
  const n = typeof x === "number" ? x : typeof x === "string" ? Number(x) : Number.NaN;
  return Number.isFinite(n) ? n : null;
}
