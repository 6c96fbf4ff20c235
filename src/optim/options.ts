// Validation of user-supplied options (optimizers, schedules) with errors that name the field,
// so that a typo on the command line or in a JSON config is reported precisely.

/** An invalid option: `owner` is the optimizer or schedule, `field` the offending option. */
export class OptionError extends Error {
  readonly owner: string;
  readonly field: string;
  constructor(owner: string, field: string, message: string) {
    super(`${owner}: option "${field}" ${message}`);
    this.name = "OptionError";
    this.owner = owner;
    this.field = field;
  }
}

/** Bounds of a numeric option. */
export interface NumberBounds {
  /** Inclusive lower bound. */
  min?: number;
  /** Exclusive lower bound. */
  above?: number;
  /** Inclusive upper bound. */
  max?: number;
  /** Exclusive upper bound. */
  below?: number;
  /** Must be an integer. */
  integer?: boolean;
}

function describeValue(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "function") return "a function";
  if (Array.isArray(v)) return "an array";
  if (v === null) return "null";
  return String(v);
}

/** A reader of one options object that checks each field it is asked for. */
export class OptionReader {
  private readonly options: Record<string, unknown>;
  private readonly seen = new Set<string>();

  constructor(
    readonly owner: string,
    options: object | undefined,
  ) {
    if (options !== undefined && (typeof options !== "object" || options === null || Array.isArray(options))) {
      throw new OptionError(owner, "(options)", `must be an object, got ${describeValue(options)}`);
    }
    this.options = (options ?? {}) as Record<string, unknown>;
  }

  /** Throws when the options hold a field that was never read (a typo, or an option of another method). */
  done(): void {
    const unknown = Object.keys(this.options).filter((k) => !this.seen.has(k) && this.options[k] !== undefined);
    if (unknown.length > 0) {
      const known = [...this.seen].sort().join(", ");
      throw new OptionError(this.owner, unknown[0], `is not an option here (known: ${known || "none"})`);
    }
  }

  private raw(field: string): unknown {
    this.seen.add(field);
    return this.options[field];
  }

  fail(field: string, message: string): never {
    throw new OptionError(this.owner, field, message);
  }

  /** A finite number within bounds, or `fallback` when absent. */
  number(field: string, fallback: number, bounds?: NumberBounds): number;
  number(field: string, fallback: undefined, bounds?: NumberBounds): number | undefined;
  number(field: string, fallback: number | undefined, bounds: NumberBounds = {}): number | undefined {
    const v = this.raw(field);
    if (v === undefined) return fallback;
    if (typeof v !== "number" || !Number.isFinite(v)) this.fail(field, `must be a finite number, got ${describeValue(v)}`);
    checkBounds(this, field, v, bounds);
    return v;
  }

  /** A required finite number within bounds. */
  requiredNumber(field: string, bounds: NumberBounds = {}): number {
    const v = this.number(field, undefined, bounds);
    if (v === undefined) this.fail(field, "is required");
    return v;
  }

  boolean(field: string, fallback: boolean): boolean {
    const v = this.raw(field);
    if (v === undefined) return fallback;
    if (typeof v !== "boolean") this.fail(field, `must be true or false, got ${describeValue(v)}`);
    return v;
  }

  choice<T extends string>(field: string, choices: readonly T[], fallback: T): T {
    const v = this.raw(field);
    if (v === undefined) return fallback;
    if (typeof v !== "string" || !(choices as readonly string[]).includes(v)) {
      this.fail(field, `must be one of ${choices.join(" | ")}, got ${describeValue(v)}`);
    }
    return v as T;
  }

  /** An array of finite numbers (each within bounds), or `fallback`. */
  numbers(field: string, fallback: number[] | undefined, bounds: NumberBounds = {}): number[] | undefined {
    const v = this.raw(field);
    if (v === undefined) return fallback;
    if (!Array.isArray(v)) this.fail(field, `must be an array of numbers, got ${describeValue(v)}`);
    return v.map((x, i) => {
      if (typeof x !== "number" || !Number.isFinite(x)) this.fail(field, `entry ${i} must be a finite number, got ${describeValue(x)}`);
      checkBounds(this, `${field}[${i}]`, x, bounds);
      return x;
    });
  }

  /** Any value, unchecked (the caller checks it). */
  value(field: string): unknown {
    return this.raw(field);
  }
}

function checkBounds(reader: OptionReader, field: string, v: number, b: NumberBounds): void {
  if (b.integer && !Number.isInteger(v)) reader.fail(field, `must be an integer, got ${v}`);
  const parts: string[] = [];
  if (b.min !== undefined) parts.push(`≥ ${b.min}`);
  if (b.above !== undefined) parts.push(`> ${b.above}`);
  if (b.max !== undefined) parts.push(`≤ ${b.max}`);
  if (b.below !== undefined) parts.push(`< ${b.below}`);
  const ok =
    (b.min === undefined || v >= b.min) &&
    (b.above === undefined || v > b.above) &&
    (b.max === undefined || v <= b.max) &&
    (b.below === undefined || v < b.below);
  if (!ok) reader.fail(field, `must be ${parts.join(" and ")}, got ${v}`);
}
