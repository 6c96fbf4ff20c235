import { OptionError, OptionReader } from "./options.js";

// Learning-rate schedules: functions of the 0-based step t (the number of updates already applied)
// returning η_t. They are pure, so a resumed run only needs the step counter.

/** A learning-rate schedule t ↦ η_t, t = 0, 1, 2, … */
export type Schedule = (step: number) => number;

/** η_t = η. */
export function constantSchedule(value: number): Schedule {
  checkFinite("constantSchedule", "value", value);
  return () => value;
}

/**
 * True when η(t) = C t^(−α) satisfies the Robbins–Monro conditions Σ η(t) = ∞ and Σ η(t)² < ∞,
 * i.e. ½ < α ≤ 1 (lecture 6, slide "Stochastic Gradient Descent: Rates"; Robbins & Monro, 1951; the
 * hyperharmonic series Σ t^(−p) converges iff p > 1).
 */
export function satisfiesRobbinsMonro(power: number): boolean {
  return power > 0.5 && power <= 1;
}

/** Options of {@link inversePowerSchedule}. */
export interface InversePowerOptions {
  /** C = η_0 > 0. */
  init: number;
  /** α > 0 (default 1). */
  power?: number;
  /** Called with a message when α is outside (½, 1]. */
  onWarning?: (message: string) => void;
}

/**
 * Inverse power decay η(t) = C (t + 1)^(−α): the lecture's η(t) = C t^(−α) with its 1-based t
 * (lecture 6, slide "Stochastic Gradient Descent: Rates"). Convergence of SGD on convex objectives
 * needs ½ < α ≤ 1 (see {@link satisfiesRobbinsMonro}); other α > 0 are accepted but reported through
 * `onWarning` (α = ½ is common in practice for the O(1/√t) rate with averaging).
 */
export function inversePowerSchedule(options: InversePowerOptions): Schedule {
  const r = new OptionReader("inversePowerSchedule", options);
  const init = r.requiredNumber("init", { above: 0 });
  const power = r.number("power", 1, { above: 0 });
  const onWarning = r.value("onWarning");
  r.done();
  if (!satisfiesRobbinsMonro(power) && typeof onWarning === "function") {
    onWarning(
      `inversePowerSchedule: power α = ${power} is outside (1/2, 1]: the Robbins–Monro conditions ` +
        `Σ η(t) = ∞, Σ η(t)² < ∞ ${power <= 0.5 ? "fail (Σ η² diverges)" : "fail (Σ η converges: the iterates can stall)"}`,
    );
  }
  return (t) => init * (t + 1) ** -power;
}

/** Options of {@link stepDecaySchedule}. */
export interface StepDecayOptions {
  /** η_0. */
  init: number;
  /** Multiply by `factor` every `every` steps (PyTorch's StepLR `step_size`). */
  every?: number;
  /** Or at each of these steps (PyTorch's MultiStepLR `milestones`, increasing). */
  milestones?: number[];
  /** γ ∈ (0, 1] (default 0.1, as in PyTorch). */
  factor?: number;
}

/** Step decay: η_t = η_0 γ^⌊t/every⌋, or η_0 γ^#{milestones ≤ t} (torch.optim.lr_scheduler.StepLR / MultiStepLR). */
export function stepDecaySchedule(options: StepDecayOptions): Schedule {
  const r = new OptionReader("stepDecaySchedule", options);
  const init = r.requiredNumber("init", { min: 0 });
  const every = r.number("every", undefined, { min: 1, integer: true });
  const milestones = r.numbers("milestones", undefined, { min: 0, integer: true });
  const factor = r.number("factor", 0.1, { above: 0 });
  r.done();
  if ((every === undefined) === (milestones === undefined)) r.fail("every", "give exactly one of every and milestones");
  if (milestones) {
    for (let i = 1; i < milestones.length; i++) if (milestones[i] <= milestones[i - 1]) r.fail("milestones", "must be increasing");
    return (t) => {
      let k = 0;
      while (k < milestones.length && milestones[k] <= t) k++;
      return init * factor ** k;
    };
  }
  const e = every as number;
  return (t) => init * factor ** Math.floor(t / e);
}

/** Options of {@link exponentialSchedule}. */
export interface ExponentialOptions {
  /** η_0. */
  init: number;
  /** Decay rate γ > 0 per `transitionSteps` steps. */
  rate: number;
  /** Default 1. */
  transitionSteps?: number;
  /** Decay in whole periods (⌊t/transitionSteps⌋; default false). */
  staircase?: boolean;
  /** Bound below (for γ < 1) or above (for γ > 1) (default none). */
  end?: number;
}

/** Exponential decay η_t = η_0 γ^(t/T) (Optax's `exponential_decay`; T = 1 is PyTorch's ExponentialLR). */
export function exponentialSchedule(options: ExponentialOptions): Schedule {
  const r = new OptionReader("exponentialSchedule", options);
  const init = r.requiredNumber("init", { min: 0 });
  const rate = r.requiredNumber("rate", { above: 0 });
  const period = r.number("transitionSteps", 1, { above: 0 });
  const staircase = r.boolean("staircase", false);
  const end = r.number("end", undefined, { min: 0 });
  r.done();
  return (t) => {
    const p = staircase ? Math.floor(t / period) : t / period;
    const v = init * rate ** p;
    if (end === undefined) return v;
    return rate < 1 ? Math.max(v, end) : Math.min(v, end);
  };
}

/** Options of {@link cosineSchedule}. */
export interface CosineOptions {
  /** η_0. */
  init: number;
  /** T: the step at which the final value is reached (held afterwards). */
  totalSteps: number;
  /** η_T (default 0). */
  final?: number;
}

/**
 * Cosine decay (Loshchilov & Hutter, "SGDR", ICLR 2017, eq. 5, without restarts; Optax's
 * `cosine_decay_schedule`): η_t = η_T + (η_0 − η_T)(1 + cos(π min(t, T)/T))/2.
 */
export function cosineSchedule(options: CosineOptions): Schedule {
  const r = new OptionReader("cosineSchedule", options);
  const init = r.requiredNumber("init", { min: 0 });
  const total = r.requiredNumber("totalSteps", { min: 1, integer: true });
  const final = r.number("final", 0, { min: 0 });
  r.done();
  return (t) => final + ((init - final) * (1 + Math.cos((Math.PI * Math.min(t, total)) / total))) / 2;
}

/** η_t linear from `init` (t = 0) to `end` (t ≥ steps) (Optax's `linear_schedule`). */
export function linearSchedule(options: { init: number; end: number; steps: number }): Schedule {
  const r = new OptionReader("linearSchedule", options);
  const init = r.requiredNumber("init");
  const end = r.requiredNumber("end");
  const steps = r.requiredNumber("steps", { min: 1, integer: true });
  r.done();
  return (t) => init + ((end - init) * Math.min(t, steps)) / steps;
}

/**
 * Joins schedules (Optax's `join_schedules`): schedule i + 1 takes over at `boundaries[i]`, and is
 * evaluated at t − boundaries[i] (its own clock starts at 0).
 */
export function joinSchedules(schedules: readonly Schedule[], boundaries: readonly number[]): Schedule {
  if (schedules.length !== boundaries.length + 1) {
    throw new OptionError("joinSchedules", "boundaries", `must have ${schedules.length - 1} entries for ${schedules.length} schedules`);
  }
  boundaries.forEach((b, i) => {
    if (!Number.isInteger(b) || b < 0 || (i > 0 && b <= boundaries[i - 1])) {
      throw new OptionError("joinSchedules", "boundaries", "must be increasing integers ≥ 0");
    }
  });
  return (t) => {
    let k = 0;
    while (k < boundaries.length && t >= boundaries[k]) k++;
    return schedules[k](k === 0 ? t : t - boundaries[k - 1]);
  };
}

/**
 * Linear warm-up before `base`: η_t = start + (base(0) − start)·t/W for t < W, then base(t − W)
 * (Goyal et al., "Accurate, large minibatch SGD", 2017, Sec. 2.2; Optax's `warmup_*` schedules).
 * With the default start 0 the first update is zero.
 */
export function linearWarmup(base: Schedule, options: { steps: number; start?: number }): Schedule {
  const r = new OptionReader("linearWarmup", options);
  const steps = r.requiredNumber("steps", { min: 0, integer: true });
  const start = r.number("start", 0, { min: 0 });
  r.done();
  if (steps === 0) return base;
  return joinSchedules([linearSchedule({ init: start, end: base(0), steps }), base], [steps]);
}

/** Names accepted by {@link createSchedule}. */
export const SCHEDULE_NAMES = ["constant", "inverse-power", "step", "exponential", "cosine"] as const;
export type ScheduleName = (typeof SCHEDULE_NAMES)[number];

/** Options of {@link createSchedule} (those of the named schedule, plus warm-up). */
export interface CreateScheduleOptions {
  /** η_0, the base learning rate (required). */
  lr: number;
  /** inverse-power: α (default 1). */
  power?: number;
  /** step: decay every this many steps. */
  every?: number;
  /** step: or at these steps. */
  milestones?: number[];
  /** step: γ (default 0.1). */
  factor?: number;
  /** exponential: γ per transitionSteps. */
  rate?: number;
  transitionSteps?: number;
  staircase?: boolean;
  /** exponential: bound. */
  end?: number;
  /**
   * cosine: the step at which `final` is reached, counted from step 0 with the warm-up included
   * (the cosine itself spans totalSteps − warmupSteps steps); required for cosine.
   */
  totalSteps?: number;
  /** cosine: η_T (default 0). */
  final?: number;
  /** Linear warm-up over this many steps before the schedule (default 0). */
  warmupSteps?: number;
  /** Warm-up start value (default 0). */
  warmupStart?: number;
  /** Receives warnings (e.g. the Robbins–Monro check of inverse-power). */
  onWarning?: (message: string) => void;
}

/**
 * A schedule by name (`constant | inverse-power | step | exponential | cosine`), as selected on the
 * command line; `warmupSteps` prepends a linear warm-up. Throws {@link OptionError} naming the field
 * on invalid or unknown options.
 */
export function createSchedule(name: string, options: CreateScheduleOptions): Schedule {
  if (!(SCHEDULE_NAMES as readonly string[]).includes(name)) {
    throw new OptionError("createSchedule", "name", `must be one of ${SCHEDULE_NAMES.join(" | ")}, got ${JSON.stringify(name)}`);
  }
  const owner = `schedule ${name}`;
  const r = new OptionReader(owner, options);
  const lr = r.requiredNumber("lr", { min: 0 });
  const warmupSteps = r.number("warmupSteps", 0, { min: 0, integer: true });
  const warmupStart = r.number("warmupStart", 0, { min: 0 });
  const onWarning = r.value("onWarning") as ((m: string) => void) | undefined;
  if (onWarning !== undefined && typeof onWarning !== "function") r.fail("onWarning", "must be a function");
  let base: Schedule;
  const wrap = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof OptionError)
        throw new OptionError(owner, e.field === "init" ? "lr" : e.field, e.message.replace(/^[^:]*: option "[^"]*" /, ""));
      throw e;
    }
  };
  switch (name as ScheduleName) {
    case "constant":
      base = constantSchedule(lr);
      break;
    case "inverse-power": {
      const power = r.number("power", 1, { above: 0 });
      base = wrap(() => inversePowerSchedule({ init: lr, power, onWarning }));
      break;
    }
    case "step": {
      const every = r.number("every", undefined, { min: 1, integer: true });
      const milestones = r.numbers("milestones", undefined, { min: 0, integer: true });
      const factor = r.number("factor", 0.1, { above: 0 });
      if (every === undefined && milestones === undefined) r.fail("every", "is required (or milestones)");
      base = wrap(() => stepDecaySchedule({ init: lr, every, milestones, factor }));
      break;
    }
    case "exponential": {
      const rate = r.requiredNumber("rate", { above: 0 });
      const transitionSteps = r.number("transitionSteps", 1, { above: 0 });
      const staircase = r.boolean("staircase", false);
      const end = r.number("end", undefined, { min: 0 });
      base = exponentialSchedule({ init: lr, rate, transitionSteps, staircase, end });
      break;
    }
    case "cosine": {
      const totalSteps = r.requiredNumber("totalSteps", { min: 1, integer: true });
      const final = r.number("final", 0, { min: 0 });
      base = cosineSchedule({ init: lr, totalSteps: Math.max(1, totalSteps - warmupSteps), final });
      break;
    }
  }
  r.done();
  return warmupSteps > 0 ? linearWarmup(base, { steps: warmupSteps, start: warmupStart }) : base;
}

function checkFinite(owner: string, field: string, v: number): void {
  if (typeof v !== "number" || !Number.isFinite(v)) throw new OptionError(owner, field, `must be a finite number, got ${String(v)}`);
}
