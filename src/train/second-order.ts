import type { Chain } from "../chain/chain.js";
import { allocate, type FloatArray } from "../core/dtype.js";
import { norm2Of } from "../core/kernels.js";
import type { Batch } from "../objectives/batch.js";
import type { Objective } from "../objectives/objective.js";
import { valueAndGradient } from "../oracles/first-order.js";
import {
  createSecondOrderStepper,
  type SecondOrderState,
  type SecondOrderStepper,
  type SecondOrderStepperOptions,
  type SecondOrderStepResult,
} from "../second-order/stepper.js";
import type { CustomStepper } from "./trainer.js";

// The second-order steppers (src/second-order/stepper.ts: Gauss-Newton, Gram-Gauss-Newton, Newton
// by dynamic programming) as the Trainer's CustomStepper (docs/second-order.md): one second-order step
// per mini-batch, the stepper's state (the current damping μ, λ for GGN, and counters) saved and
// restored with the trainer's snapshot, so that checkpoints resume bit-identically.

/** Options of {@link secondOrderTrainingStepper}. */
export interface SecondOrderTrainingOptions extends SecondOrderStepperOptions {
  /**
   * Compute ‖∇F(w)‖ before each step for the epoch records (one extra forward and backward pass;
   * default true). Without it `gradNorm` is NaN and the data loss comes from the stepper's F(w).
   * Chains with state (batch-norm) always take that pass: it updates the running statistics at w,
   * as a first-order step does.
   */
  gradNorm?: boolean;
}

/** Counters of a {@link SecondOrderCustomStepper}. */
export interface SecondOrderCounters {
  /** Steps whose every direction failed the Armijo test (w unchanged). */
  rejected: number;
  /** Directions computed in all (one per step without line search). */
  tries: number;
}

/** The CustomStepper of a second-order method, with its state exposed. */
export interface SecondOrderCustomStepper extends CustomStepper {
  readonly stepper: SecondOrderStepper;
  /** The damping the next step starts from, and the number of steps. */
  readonly state: SecondOrderState;
  readonly counters: SecondOrderCounters;
  /** The result of the last step (null before the first). */
  readonly last: SecondOrderStepResult | null;
}

/** Wraps {@link createSecondOrderStepper} for {@link Trainer}'s `stepper` option. */
export function secondOrderTrainingStepper(options: SecondOrderTrainingOptions): SecondOrderCustomStepper {
  const { gradNorm: wantGradNorm = true, ...stepperOptions } = options;
  const stepper = createSecondOrderStepper(stepperOptions);
  const state = stepper.initialState();
  const counters: SecondOrderCounters = { rejected: 0, tries: 0 };
  let grad: FloatArray | null = null;
  let last: SecondOrderStepResult | null = null;
  return {
    name: options.method,
    stepper,
    state,
    counters,
    get last() {
      return last;
    },
    step(chain: Chain, objective: Objective, w: FloatArray, batch: Batch, _stepIndex: number, trainerState?: FloatArray) {
      const withState = trainerState !== undefined && trainerState.length > 0;
      const computed = wantGradNorm || withState;
      let loss = Number.NaN;
      let gradNorm = Number.NaN;
      if (computed) {
        if (grad?.length !== chain.paramSize) grad = allocate(chain.dtype, chain.paramSize);
        const vg = valueAndGradient(chain, objective, w, batch, { grad, training: true, state: trainerState, updateState: withState });
        loss = vg.loss;
        gradNorm = wantGradNorm ? norm2Of(chain.backend, vg.grad.length, vg.grad) : Number.NaN;
      }
      // F(w) = f(ψ(w)) + (λ/2)‖w‖²: the data loss without the gradient pass.
      let r2 = 0;
      if (!computed) for (let i = 0; i < w.length; i++) r2 += w[i] * w[i];
      const r = stepper.step(chain, objective, w, batch, state);
      last = r;
      counters.tries += r.tries;
      if (!r.accepted) counters.rejected++;
      if (!computed) loss = r.value - 0.5 * objective.l2 * r2;
      return { value: r.value, loss, gradNorm };
    },
    saveState: () => ({ damping: state.damping, steps: state.steps, rejected: counters.rejected, tries: counters.tries }),
    restoreState(s: Record<string, number>) {
      for (const k of ["damping", "steps", "rejected", "tries"]) {
        if (typeof s[k] !== "number" || !Number.isFinite(s[k])) throw new Error(`checkpoint: second-order stepper state: ${k} is missing`);
      }
      state.damping = s.damping;
      state.steps = s.steps;
      counters.rejected = s.rejected;
      counters.tries = s.tries;
    },
  };
}
