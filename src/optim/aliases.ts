import type { FloatArray } from "../core/dtype.js";
import { NATIVE_MIN_LENGTH, sameKind } from "../core/kernels.js";
import { scaleByAdam, scaleByRms, scaleByRss } from "./adaptive.js";
import { clipByGlobalNorm, clipByValue } from "./clipping.js";
import { emaMomentum, type TraceState, traceMomentum } from "./momentum.js";
import { OptionError, OptionReader } from "./options.js";
import type { Schedule } from "./schedules.js";
import {
  type ChainState,
  chain,
  type GradientTransformation,
  type LearningRate,
  learningRateAt,
  scaleByLearningRate,
  type UpdateContext,
} from "./transform.js";
import { addCoupledWeightDecay, addDecayedWeights } from "./weight-decay.js";

// Ready-made optimizers (Optax's aliases), each a chain of transformations reproducing the
// corresponding torch.optim class of PyTorch 1.13 step for step (checked against PyTorch in
// test/optim.test.ts). Defaults follow torch.optim; where PyTorch requires lr (SGD), 0.01 is used.

/** Options shared by every optimizer. */
export interface CommonOptimizerOptions {
  /** Learning rate η or schedule t ↦ η_t. */
  lr?: LearningRate;
  /** Weight decay λ ≥ 0: coupled (L2, added to the gradient) except for adamw, where it is decoupled. */
  weightDecay?: number;
  /** Clip the gradient to this global norm first (before weight decay, as torch's clip_grad_norm_ before step()). */
  clipNorm?: number;
  /** Clip each gradient entry to [−clipValue, clipValue] first. */
  clipValue?: number;
}

export interface SgdOptions extends CommonOptimizerOptions {
  /** Heavy-ball momentum μ (default 0: plain SGD). */
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
}

export interface MomentumOptions extends CommonOptimizerOptions {
  /** μ (pytorch form) or α (ema form) (default 0.9). */
  momentum?: number;
  /** Dampening (pytorch form only; default 0). */
  dampening?: number;
  /** `pytorch`: v ← μv + g, θ ← θ − ηv; `ema`: the lecture's bias-corrected moving average (default pytorch). */
  form?: "pytorch" | "ema";
}

export interface NesterovOptions extends CommonOptimizerOptions {
  /** μ (default 0.9). */
  momentum?: number;
}

export interface AdagradOptions extends CommonOptimizerOptions {
  /** η_t = η/(1 + t·lrDecay) (PyTorch's lr_decay; default 0). */
  lrDecay?: number;
  initialAccumulatorValue?: number;
  /** δ (default 1e-10). */
  eps?: number;
}

export interface RmspropOptions extends CommonOptimizerOptions {
  /** ρ (default 0.99). */
  alpha?: number;
  /** Default 1e-8. */
  eps?: number;
  /** Momentum on the scaled gradient (default 0). */
  momentum?: number;
  centered?: boolean;
}

export interface AdamOptions extends CommonOptimizerOptions {
  b1?: number;
  b2?: number;
  eps?: number;
  amsgrad?: boolean;
}

/** An optimizer: a gradient transformation whose state is the chain's array of states. */
export type Optimizer = GradientTransformation<ChainState>;

/** Reads lr, weightDecay, clipNorm, clipValue. */
function readCommon(r: OptionReader, defaultLr: number, defaultDecay = 0) {
  const lrRaw = r.value("lr");
  let lr: LearningRate = defaultLr;
  if (typeof lrRaw === "function") lr = lrRaw as Schedule;
  else if (lrRaw !== undefined) {
    if (typeof lrRaw !== "number" || !Number.isFinite(lrRaw) || lrRaw <= 0) {
      r.fail("lr", `must be a finite number > 0 or a schedule, got ${typeof lrRaw === "string" ? JSON.stringify(lrRaw) : String(lrRaw)}`);
    }
    lr = lrRaw;
  }
  const weightDecay = r.number("weightDecay", defaultDecay, { min: 0 });
  const clipNorm = r.number("clipNorm", undefined, { above: 0 });
  const clipValue = r.number("clipValue", undefined, { above: 0 });
  const pre: GradientTransformation[] = [];
  if (clipValue !== undefined) pre.push(clipByValue(clipValue));
  if (clipNorm !== undefined) pre.push(clipByGlobalNorm(clipNorm));
  return { lr, weightDecay, pre };
}

function build(r: OptionReader, parts: (GradientTransformation | null)[], applyFused?: Optimizer["applyFused"]): Optimizer {
  r.done();
  const opt = chain(...parts.filter((p): p is GradientTransformation => p !== null));
  return applyFused ? { ...opt, name: r.owner, applyFused } : { ...opt, name: r.owner };
}

/**
 * The fused step of the chain [traceMomentum(μ, d, nesterov)?, scaleByLearningRate(η)] (state
 * [TraceState, {}] or [{}]) on a backend with the `sgdApply` kernel: momentum, scaling and
 * w ← w + u in one pass with the roundings of the native passes it replaces (the momentum kernel,
 * BLAS scal, the apply-and-check), so the parameters and state are the same bit for bit. Null
 * (use the chain) without the kernel, below the length from which the chain uses BLAS scal, or
 * with mixed precisions.
 */
function fusedSgd(
  momentum: { mu: number; keep: number; nesterov: boolean } | null,
  lr: LearningRate,
): NonNullable<Optimizer["applyFused"]> {
  return (g: FloatArray, state: ChainState, w: FloatArray, ctx: UpdateContext) => {
    const b = ctx.backend;
    const kernel = b.kernels?.sgdApply;
    const n = w.length;
    if (!kernel || !b.scal || n < NATIVE_MIN_LENGTH || g.length !== n || !sameKind(g, w)) return null;
    const alpha = -learningRateAt(lr, ctx.step);
    if (!momentum) return kernel(n, w, g, null, 0, 1, false, false, alpha);
    const s = state[0] as TraceState;
    if (!sameKind(s.trace, w)) return null;
    const finite = kernel(n, w, g, s.trace, momentum.mu, momentum.keep, s.count === 0, momentum.nesterov, alpha);
    s.count++;
    return finite;
  };
}

/**
 * SGD, θ ← θ − η_t (g + λθ) (lecture 6, "Stochastic Gradient Descent"; torch.optim.SGD), with
 * optional heavy-ball or Nesterov momentum in PyTorch's form ({@link traceMomentum}).
 */
export function sgd(options: SgdOptions = {}): Optimizer {
  const r = new OptionReader("sgd", options);
  const { lr, weightDecay, pre } = readCommon(r, 0.01);
  const mu = r.number("momentum", 0, { min: 0, below: 1 });
  const dampening = r.number("dampening", 0, { min: 0, below: 1 });
  const nesterov = r.boolean("nesterov", false);
  if (nesterov && (mu === 0 || dampening !== 0)) r.fail("nesterov", "requires momentum > 0 and dampening 0 (as in PyTorch)");
  return build(
    r,
    [
      ...pre,
      weightDecay > 0 ? addCoupledWeightDecay(weightDecay) : null,
      mu > 0 ? traceMomentum({ decay: mu, dampening, nesterov }) : null,
      scaleByLearningRate(lr),
    ],
    pre.length === 0 && weightDecay === 0 ? fusedSgd(mu > 0 ? { mu, keep: 1 - dampening, nesterov } : null, lr) : undefined,
  );
}

/**
 * Heavy-ball momentum in either form: `pytorch` (default; v ← μv + g, θ ← θ − ηv, torch.optim.SGD
 * with momentum) or `ema` (the lecture's m ← αm + (1 − α)g, m̂ = m/(1 − α^t), θ ← θ − η m̂; see
 * {@link emaMomentum}).
 */
export function momentum(options: MomentumOptions = {}): Optimizer {
  const r = new OptionReader("momentum", options);
  const { lr, weightDecay, pre } = readCommon(r, 0.01);
  const mu = r.number("momentum", 0.9, { min: 0, below: 1 });
  const form = r.choice("form", ["pytorch", "ema"] as const, "pytorch");
  const dampening = r.number("dampening", 0, { min: 0, below: 1 });
  if (form === "ema" && dampening !== 0) r.fail("dampening", "applies to the pytorch form only");
  return build(
    r,
    [
      ...pre,
      weightDecay > 0 ? addCoupledWeightDecay(weightDecay) : null,
      form === "ema" ? emaMomentum({ decay: mu }) : traceMomentum({ decay: mu, dampening }),
      scaleByLearningRate(lr),
    ],
    pre.length === 0 && weightDecay === 0 && form === "pytorch" ? fusedSgd({ mu, keep: 1 - dampening, nesterov: false }, lr) : undefined,
  );
}

/** Nesterov momentum, PyTorch form: θ ← θ − η (g + μv) with v ← μv + g (torch.optim.SGD, nesterov=True). */
export function nesterov(options: NesterovOptions = {}): Optimizer {
  const r = new OptionReader("nesterov", options);
  const { lr, weightDecay, pre } = readCommon(r, 0.01);
  const mu = r.number("momentum", 0.9, { above: 0, below: 1 });
  return build(
    r,
    [
      ...pre,
      weightDecay > 0 ? addCoupledWeightDecay(weightDecay) : null,
      traceMomentum({ decay: mu, nesterov: true }),
      scaleByLearningRate(lr),
    ],
    pre.length === 0 && weightDecay === 0 ? fusedSgd({ mu, keep: 1, nesterov: true }, lr) : undefined,
  );
}

/** AdaGrad (torch.optim.Adagrad; see {@link scaleByRss}), default lr 0.01. */
export function adagrad(options: AdagradOptions = {}): Optimizer {
  const r = new OptionReader("adagrad", options);
  const { lr, weightDecay, pre } = readCommon(r, 0.01);
  const lrDecay = r.number("lrDecay", 0, { min: 0 });
  const initialAccumulatorValue = r.number("initialAccumulatorValue", 0, { min: 0 });
  const eps = r.number("eps", 1e-10, { min: 0 });
  // PyTorch: clr = lr / (1 + (step − 1)·lr_decay) with its 1-based step, i.e. η/(1 + t·lrDecay) here.
  const rate: LearningRate =
    lrDecay === 0 ? lr : typeof lr === "number" ? (t: number) => lr / (1 + t * lrDecay) : (t: number) => lr(t) / (1 + t * lrDecay);
  return build(r, [
    ...pre,
    weightDecay > 0 ? addCoupledWeightDecay(weightDecay) : null,
    scaleByRss({ initialAccumulatorValue, eps }),
    scaleByLearningRate(rate),
  ]);
}

/** RMSprop (torch.optim.RMSprop; see {@link scaleByRms}), default lr 0.01, α 0.99, ε 1e-8. */
export function rmsprop(options: RmspropOptions = {}): Optimizer {
  const r = new OptionReader("rmsprop", options);
  const { lr, weightDecay, pre } = readCommon(r, 0.01);
  const alpha = r.number("alpha", 0.99, { min: 0, below: 1 });
  const eps = r.number("eps", 1e-8, { min: 0 });
  const mu = r.number("momentum", 0, { min: 0, below: 1 });
  const centered = r.boolean("centered", false);
  return build(r, [
    ...pre,
    weightDecay > 0 ? addCoupledWeightDecay(weightDecay) : null,
    scaleByRms({ decay: alpha, eps, centered }),
    // PyTorch: buf ← μ·buf + g/avg with buf = 0 initially, i.e. traceMomentum's first-step copy.
    mu > 0 ? traceMomentum({ decay: mu }) : null,
    scaleByLearningRate(lr),
  ]);
}

function adamFamily(owner: string, options: AdamOptions, decoupled: boolean, amsgradDefault: boolean): Optimizer {
  const r = new OptionReader(owner, options);
  const { lr, weightDecay, pre } = readCommon(r, 1e-3, decoupled ? 1e-2 : 0);
  const b1 = r.number("b1", 0.9, { min: 0, below: 1 });
  const b2 = r.number("b2", 0.999, { min: 0, below: 1 });
  const eps = r.number("eps", 1e-8, { min: 0 });
  const amsgrad = owner === "amsgrad" ? amsgradDefault : r.boolean("amsgrad", amsgradDefault);
  return build(r, [
    ...pre,
    !decoupled && weightDecay > 0 ? addCoupledWeightDecay(weightDecay) : null,
    scaleByAdam({ b1, b2, eps, amsgrad }),
    decoupled && weightDecay > 0 ? addDecayedWeights(weightDecay) : null,
    scaleByLearningRate(lr),
  ]);
}

/** Adam (torch.optim.Adam; see {@link scaleByAdam}); `weightDecay` is coupled (L2). Default lr 1e-3. */
export function adam(options: AdamOptions = {}): Optimizer {
  return adamFamily("adam", options, false, false);
}

/** AdamW: Adam with decoupled weight decay (torch.optim.AdamW; {@link addDecayedWeights}); default weightDecay 0.01. */
export function adamw(options: AdamOptions = {}): Optimizer {
  return adamFamily("adamw", options, true, false);
}

/** AMSGrad: Adam with the running maximum of the second moment (torch.optim.Adam, amsgrad=True). */
export function amsgrad(options: Omit<AdamOptions, "amsgrad"> = {}): Optimizer {
  return adamFamily("amsgrad", options, false, true);
}

/** Names accepted by {@link createOptimizer} (and the CLI's `--optimizer`). */
export const OPTIMIZER_NAMES = ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "amsgrad"] as const;
export type OptimizerName = (typeof OPTIMIZER_NAMES)[number];

const FACTORIES: Record<OptimizerName, (options: object) => Optimizer> = {
  sgd,
  momentum,
  nesterov,
  adagrad,
  rmsprop,
  adam,
  adamw,
  amsgrad,
};

/**
 * An optimizer by name, with options validated (unknown or invalid fields throw an
 * {@link OptionError} naming the field). `lr` may be a number or a schedule (see `createSchedule`).
 */
export function createOptimizer(name: string, options: object = {}): Optimizer {
  if (!(OPTIMIZER_NAMES as readonly string[]).includes(name)) {
    throw new OptionError("createOptimizer", "name", `must be one of ${OPTIMIZER_NAMES.join(" | ")}, got ${JSON.stringify(name)}`);
  }
  return FACTORIES[name as OptimizerName](options);
}
