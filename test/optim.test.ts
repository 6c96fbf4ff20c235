import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import type { FloatArray } from "../src/core/dtype.js";
import { portableBackend } from "../src/core/portable.js";
import { Rng } from "../src/core/rng.js";
import {
  addDecayedWeights,
  applyUpdates,
  armijoStep,
  chain,
  clipByGlobalNorm,
  clipByValue,
  constantSchedule,
  cosineSchedule,
  createOptimizer,
  createSchedule,
  EarlyStopping,
  EmaAverage,
  emaMomentum,
  exponentialSchedule,
  GradientNormTracker,
  type GradientTransformation,
  globalNorm,
  inversePowerSchedule,
  joinSchedules,
  linearWarmup,
  OPTIMIZER_NAMES,
  OptionError,
  PolyakAverage,
  type StateTree,
  satisfiesRobbinsMonro,
  scaleByAdam,
  scaleByLearningRate,
  stateFromTensors,
  stateToTensors,
  stepDecaySchedule,
  traceMomentum,
} from "../src/optim/index.js";
import { relativeError } from "./helpers.js";

/** Runs `steps` updates of `opt` from `w0` with gradients from `gradAt(w, t)`; returns the iterates w_1…w_steps. */
function trajectory(
  opt: GradientTransformation,
  w0: ArrayLike<number>,
  gradAt: (w: Float64Array, t: number) => ArrayLike<number>,
  steps: number,
): Float64Array[] {
  const w = Float64Array.from(w0);
  const u = new Float64Array(w.length);
  let state = opt.init(w);
  const out: Float64Array[] = [];
  for (let t = 0; t < steps; t++) {
    u.set(gradAt(w, t));
    state = opt.update(u, state, w, { step: t, backend: portableBackend });
    applyUpdates(w, u, portableBackend);
    out.push(w.slice());
  }
  return out;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  const e = relativeError(actual, expected);
  assert.ok(e <= tol, `${what}: relative error ${e} > ${tol}\n  got      ${Array.from(actual)}\n  expected ${Array.from(expected)}`);
}

// ---------------------------------------------------------------------------------------------
// Textbook updates, written out per coordinate from the papers, on a 2-parameter fixture.

const W0 = [1, -2];
const G = [
  [0.5, -1],
  [-0.2, 0.4],
  [1, 1],
];
const fixedGrad = (_w: Float64Array, t: number) => G[t];

describe("optimizers: first 3 steps equal the textbook updates", () => {
  it("SGD: θ ← θ − η g (hand-computed)", () => {
    const traj = trajectory(createOptimizer("sgd", { lr: 0.1 }), W0, fixedGrad, 3);
    assertClose(traj[0], [0.95, -1.9], 1e-15, "step 1");
    assertClose(traj[1], [0.97, -1.94], 1e-15, "step 2");
    assertClose(traj[2], [0.87, -2.04], 1e-15, "step 3");
  });

  it("SGD with coupled weight decay: θ ← θ − η (g + λθ)", () => {
    const traj = trajectory(createOptimizer("sgd", { lr: 0.1, weightDecay: 0.5 }), W0, fixedGrad, 3);
    // step 1: 1 − 0.1(0.5 + 0.5) = 0.9;  −2 − 0.1(−1 − 1) = −1.8
    assertClose(traj[0], [0.9, -1.8], 1e-15, "step 1");
    // step 2: 0.9 − 0.1(−0.2 + 0.45) = 0.875;  −1.8 − 0.1(0.4 − 0.9) = −1.75
    assertClose(traj[1], [0.875, -1.75], 1e-15, "step 2");
    // step 3: 0.875 − 0.1(1 + 0.4375) = 0.73125;  −1.75 − 0.1(1 − 0.875) = −1.7625
    assertClose(traj[2], [0.73125, -1.7625], 1e-15, "step 3");
  });

  it("heavy ball, PyTorch form: v ← μv + g, θ ← θ − ηv (hand-computed)", () => {
    const traj = trajectory(createOptimizer("momentum", { lr: 0.1, momentum: 0.5 }), W0, fixedGrad, 3);
    // v1 = (0.5, −1); v2 = (0.25 − 0.2, −0.5 + 0.4) = (0.05, −0.1); v3 = (1.025, 0.95)
    assertClose(traj[0], [0.95, -1.9], 1e-15, "step 1");
    assertClose(traj[1], [0.945, -1.89], 1e-15, "step 2");
    assertClose(traj[2], [0.8425, -1.985], 1e-15, "step 3");
  });

  it("momentum, the lecture's form: m ← αm + (1 − α)g, m̂ = m/(1 − α^t), θ ← θ − η m̂", () => {
    const alpha = 0.5;
    const eta = 0.1;
    const traj = trajectory(createOptimizer("momentum", { lr: eta, momentum: alpha, form: "ema" }), W0, fixedGrad, 3);
    // Hand-computed: m1 = 0.5 g1, m̂1 = g1; m2 = 0.25 g1 + 0.5 g2, m̂2 = m2/0.75; m3 = 0.5 m2 + 0.5 g3, m̂3 = m3/0.875.
    const m1 = [0.25, -0.5];
    const m2 = [0.125 - 0.1, -0.25 + 0.2];
    const m3 = [0.5 * m2[0] + 0.5, 0.5 * m2[1] + 0.5];
    const w1 = [1 - eta * (m1[0] / 0.5), -2 - eta * (m1[1] / 0.5)];
    const w2 = [w1[0] - (eta * m2[0]) / 0.75, w1[1] - (eta * m2[1]) / 0.75];
    const w3 = [w2[0] - (eta * m3[0]) / 0.875, w2[1] - (eta * m3[1]) / 0.875];
    assertClose(traj[0], w1, 1e-15, "step 1");
    assertClose(traj[1], w2, 1e-15, "step 2");
    assertClose(traj[2], w3, 1e-15, "step 3");
    // The same through the transformation emaMomentum.
    assertClose(trajectory(chain(emaMomentum({ decay: alpha }), scaleByLearningRate(eta)), W0, fixedGrad, 3)[2], w3, 1e-15, "emaMomentum");
  });

  it("Nesterov, PyTorch form: v ← μv + g, θ ← θ − η(g + μv) (hand-computed)", () => {
    const traj = trajectory(createOptimizer("nesterov", { lr: 0.1, momentum: 0.5 }), W0, fixedGrad, 3);
    // v1 = (0.5, −1): step (0.75, −1.5); v2 = (0.05, −0.1): step (−0.175, 0.35); v3 = (1.025, 0.95): step (1.5125, 1.475)
    assertClose(traj[0], [0.925, -1.85], 1e-15, "step 1");
    assertClose(traj[1], [0.9425, -1.885], 1e-15, "step 2");
    assertClose(traj[2], [0.79125, -2.0325], 1e-15, "step 3");
  });

  it("AdaGrad: γ² ← γ² + g², θ ← θ − η g/(δ + γ) (lecture slide)", () => {
    const eta = 0.1;
    const delta = 1e-10;
    const traj = trajectory(createOptimizer("adagrad", { lr: eta }), W0, fixedGrad, 3);
    const w = [...W0];
    const s = [0, 0];
    for (let t = 0; t < 3; t++) {
      for (let i = 0; i < 2; i++) {
        s[i] += G[t][i] ** 2;
        w[i] -= (eta / (delta + Math.sqrt(s[i]))) * G[t][i];
      }
      assertClose(traj[t], w, 1e-15, `step ${t + 1}`);
    }
    // Hand-computed first step: θ − η·sign(g) (up to δ).
    assertClose(traj[0], [0.9, -1.9], 1e-9, "step 1 by hand");
  });

  it("RMSprop: ν ← ρν + (1 − ρ)g², θ ← θ − η g/(√ν + ε) (Tieleman & Hinton)", () => {
    const eta = 0.01;
    const rho = 0.9;
    const eps = 1e-8;
    const traj = trajectory(createOptimizer("rmsprop", { lr: eta, alpha: rho, eps }), W0, fixedGrad, 3);
    const w = [...W0];
    const nu = [0, 0];
    for (let t = 0; t < 3; t++) {
      for (let i = 0; i < 2; i++) {
        nu[i] = rho * nu[i] + (1 - rho) * G[t][i] ** 2;
        w[i] -= (eta * G[t][i]) / (Math.sqrt(nu[i]) + eps);
      }
      assertClose(traj[t], w, 1e-15, `step ${t + 1}`);
    }
    // First step by hand: g/√(0.1 g²) = sign(g)·√10.
    assertClose(traj[0], [1 - 0.01 * Math.sqrt(10), -2 + 0.01 * Math.sqrt(10)], 1e-8, "step 1 by hand");
  });

  for (const variant of ["adam", "adamw", "amsgrad"] as const) {
    it(`${variant}: Kingma & Ba Alg. 1${variant === "adamw" ? " + decoupled decay (Loshchilov & Hutter Alg. 2)" : ""}${variant === "amsgrad" ? " with v_max (Reddi et al.)" : ""}`, () => {
      const eta = 0.1;
      const [b1, b2, eps] = [0.9, 0.999, 1e-8];
      const lambda = variant === "adamw" ? 0.1 : 0;
      const options = variant === "adamw" ? { lr: eta, weightDecay: lambda } : { lr: eta };
      const traj = trajectory(createOptimizer(variant, options), W0, fixedGrad, 3);
      const w = [...W0];
      const m = [0, 0];
      const v = [0, 0];
      const vMax = [0, 0];
      for (let t = 1; t <= 3; t++) {
        for (let i = 0; i < 2; i++) {
          const g = G[t - 1][i];
          m[i] = b1 * m[i] + (1 - b1) * g;
          v[i] = b2 * v[i] + (1 - b2) * g * g;
          vMax[i] = Math.max(vMax[i], v[i]);
          const mHat = m[i] / (1 - b1 ** t);
          const vHat = (variant === "amsgrad" ? vMax[i] : v[i]) / (1 - b2 ** t);
          w[i] = w[i] - eta * lambda * w[i] - (eta * mHat) / (Math.sqrt(vHat) + eps);
        }
        assertClose(traj[t - 1], w, 1e-15, `step ${t}`);
      }
      // First step by hand: m̂ = g, v̂ = g², so θ₁ = θ₀(1 − ηλ) − η·sign(g).
      assertClose(traj[0], [1 - eta * lambda - eta, -2 + 2 * eta * lambda + eta], 1e-7, "step 1 by hand");
    });
  }
});

// ---------------------------------------------------------------------------------------------
// PyTorch reference trajectories (scripts/torch-fixtures/optim_fixture.py).

interface TorchFixture {
  torch: string;
  params0: number[];
  grads: number[][];
  cases: { name: string; optimizer: string; options: Record<string, unknown>; trajectory: number[][] }[];
}

const fixture = JSON.parse(readFileSync(new URL("../../test/fixtures/torch-optim.json", import.meta.url), "utf8")) as TorchFixture;

describe(`optimizers: equal torch.optim ${fixture.torch} (float64, 5 steps)`, () => {
  let maxRel = 0;
  let maxAbs = 0;
  for (const c of fixture.cases) {
    it(`${c.name}: createOptimizer(${JSON.stringify(c.optimizer)}, ${JSON.stringify(c.options)})`, (t) => {
      const traj = trajectory(createOptimizer(c.optimizer, c.options), fixture.params0, (_w, s) => fixture.grads[s], c.trajectory.length);
      let caseRel = 0;
      traj.forEach((w, s) => {
        const rel = relativeError(w, c.trajectory[s]);
        caseRel = Math.max(caseRel, rel);
        for (let i = 0; i < w.length; i++) maxAbs = Math.max(maxAbs, Math.abs(w[i] - c.trajectory[s][i]));
        assert.ok(rel <= 1e-12, `step ${s + 1}: relative error ${rel}`);
      });
      maxRel = Math.max(maxRel, caseRel);
      t.diagnostic(`max relative deviation ${caseRel.toExponential(2)}`);
    });
  }
  it("covers every optimizer name", (t) => {
    const names = new Set(fixture.cases.map((c) => c.optimizer));
    for (const n of OPTIMIZER_NAMES) assert.ok(names.has(n), `no PyTorch case for ${n}`);
    t.diagnostic(`max deviation from PyTorch over all cases: relative ${maxRel.toExponential(2)}, absolute ${maxAbs.toExponential(2)}`);
  });
});

// ---------------------------------------------------------------------------------------------
// Convergence.

/** A random rotation Q (Gram–Schmidt on a Gaussian matrix), row-major n×n. */
function randomRotation(n: number, rng: Rng): Float64Array {
  const q = new Float64Array(n * n);
  for (let i = 0; i < n * n; i++) q[i] = rng.normal();
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) {
      let d = 0;
      for (let k = 0; k < n; k++) d += q[i * n + k] * q[j * n + k];
      for (let k = 0; k < n; k++) q[i * n + k] -= d * q[j * n + k];
    }
    let s = 0;
    for (let k = 0; k < n; k++) s += q[i * n + k] ** 2;
    for (let k = 0; k < n; k++) q[i * n + k] /= Math.sqrt(s);
  }
  return q;
}

describe("gradient descent on a μ-strongly convex, L-smooth quadratic", () => {
  it("with step 1/L contracts at least as fast as (1 − μ/L)^t", () => {
    const n = 6;
    const rng = new Rng(3);
    const q = randomRotation(n, rng);
    const eig = [0.5, 0.8, 1.7, 3, 6, 10]; // μ = 0.5, L = 10
    const mu = 0.5;
    const L = 10;
    // A = Qᵀ diag(eig) Q, b random; f(w) = ½ wᵀAw − bᵀw, minimizer w* = A⁻¹b.
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < n; k++) s += q[k * n + i] * eig[k] * q[k * n + j];
        a[i * n + j] = s;
      }
    const wStar = Array.from({ length: n }, () => rng.normal());
    const b = new Float64Array(n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) b[i] += a[i * n + j] * wStar[j];
    const f = (w: ArrayLike<number>) => {
      let s = 0;
      for (let i = 0; i < n; i++) {
        let aw = 0;
        for (let j = 0; j < n; j++) aw += a[i * n + j] * w[j];
        s += 0.5 * w[i] * aw - b[i] * w[i];
      }
      return s;
    };
    const grad = (w: Float64Array) => {
      const g = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) g[i] += a[i * n + j] * w[j];
        g[i] -= b[i];
      }
      return g;
    };
    const fStar = f(wStar);
    const w0 = Array.from({ length: n }, () => 3 * rng.normal());
    const gap0 = f(w0) - fStar;
    const traj = trajectory(createOptimizer("sgd", { lr: 1 / L }), w0, grad, 60);
    traj.forEach((w, i) => {
      const t = i + 1;
      const bound = (1 - mu / L) ** t * gap0;
      assert.ok(f(w) - fStar <= bound * (1 + 1e-9) + 1e-13, `t = ${t}: gap ${f(w) - fStar} > bound ${bound}`);
    });
    assert.ok(f(traj[59]) - fStar < 1e-3 * gap0);
  });
});

const rosenbrock = (w: ArrayLike<number>) => (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2;
const rosenbrockGrad = (w: ArrayLike<number>) => [-2 * (1 - w[0]) - 400 * w[0] * (w[1] - w[0] ** 2), 200 * (w[1] - w[0] ** 2)];

describe("every optimizer decreases the Rosenbrock function from (−1.2, 1)", () => {
  const settings: Record<string, Record<string, unknown>> = {
    sgd: { lr: 5e-4 },
    momentum: { lr: 1e-4, momentum: 0.9 },
    nesterov: { lr: 1e-4, momentum: 0.9 },
    adagrad: { lr: 0.1 },
    rmsprop: { lr: 1e-2 },
    adam: { lr: 2e-2 },
    adamw: { lr: 2e-2, weightDecay: 1e-4 },
    amsgrad: { lr: 2e-2 },
  };
  for (const name of OPTIMIZER_NAMES) {
    it(`${name} ${JSON.stringify(settings[name])}`, () => {
      const start = [-1.2, 1];
      const f0 = rosenbrock(start); // 24.2
      const traj = trajectory(createOptimizer(name, settings[name]), start, (w) => rosenbrockGrad(w), 500);
      const last = rosenbrock(traj[traj.length - 1]);
      assert.ok(Number.isFinite(last) && last < 0.25 * f0, `${name}: f went from ${f0} to ${last}`);
    });
  }
  it("also the lecture's momentum form and a composed clip+adam+cosine chain", () => {
    const start = [-1.2, 1];
    const f0 = rosenbrock(start);
    const ema = trajectory(createOptimizer("momentum", { lr: 1e-3, momentum: 0.9, form: "ema" }), start, (w) => rosenbrockGrad(w), 500);
    assert.ok(rosenbrock(ema[499]) < 0.25 * f0);
    const composed = chain(
      clipByGlobalNorm(1),
      scaleByAdam({ b1: 0.9 }),
      scaleByLearningRate(cosineSchedule({ init: 0.05, totalSteps: 500 })),
    );
    const tr = trajectory(composed, start, (w) => rosenbrockGrad(w), 500);
    assert.ok(rosenbrock(tr[499]) < 0.25 * f0);
  });
});

// ---------------------------------------------------------------------------------------------
// Line search.

describe("Armijo backtracking line search", () => {
  it("accepted steps satisfy f(w − s∇f) ≤ f(w) − c s ‖∇f‖², and the previous trial did not", () => {
    const w = Float64Array.from([-1.2, 1]);
    let value = rosenbrock(w);
    const c = 1e-4;
    const shrink = 0.5;
    const initialStep = 1;
    const f0 = value;
    for (let k = 0; k < 200; k++) {
      const g = Float64Array.from(rosenbrockGrad(w));
      const before = w.slice();
      const r = armijoStep(rosenbrock, w, g, value, { initialStep, shrink, c });
      assert.ok(r.accepted, `iteration ${k}: no step accepted`);
      const g2 = globalNorm(g) ** 2;
      // The condition, recomputed from scratch at the new point.
      const fNew = rosenbrock(w);
      assert.equal(fNew, r.value);
      assert.ok(fNew <= value - c * r.step * g2, `iteration ${k}: Armijo condition fails`);
      for (let i = 0; i < 2; i++) assert.equal(w[i], before[i] - r.step * g[i]);
      // Backtracking accepts the first satisfying trial: the step twice as long failed.
      if (r.step < initialStep) {
        const longer = r.step / shrink;
        const fl = rosenbrock([before[0] - longer * g[0], before[1] - longer * g[1]]);
        assert.ok(!(fl <= value - c * longer * g2), `iteration ${k}: a longer step was acceptable`);
      }
      value = r.value;
    }
    assert.ok(value < 0.1 * f0, `f went from ${f0} to ${value}`);
  });

  it("on an L-smooth quadratic accepts a step ≥ β·2(1 − c)/L", () => {
    const L = 8;
    const f = (w: ArrayLike<number>) => 0.5 * (w[0] ** 2 + L * w[1] ** 2);
    const w = Float64Array.from([1, 1]);
    const g = [w[0], L * w[1]];
    const r = armijoStep(f, w, g, f(w), { initialStep: 1, shrink: 0.5, c: 0.1 });
    assert.ok(r.accepted && r.step >= (0.5 * 2 * (1 - 0.1)) / L);
  });

  it("refuses a non-descent direction and leaves params unchanged", () => {
    const w = Float64Array.from([1, 1]);
    const r = armijoStep(rosenbrock, w, [0, 0], rosenbrock(w));
    assert.equal(r.accepted, false);
    assert.deepEqual(Array.from(w), [1, 1]);
  });
});

// ---------------------------------------------------------------------------------------------
// Schedules.

describe("schedules", () => {
  it("constant, inverse power, step, exponential, cosine", () => {
    assert.equal(constantSchedule(0.3)(17), 0.3);
    const inv = inversePowerSchedule({ init: 2, power: 0.75 });
    assert.equal(inv(0), 2);
    assert.ok(Math.abs(inv(15) - 2 * 16 ** -0.75) < 1e-15 && Math.abs(inv(15) - 0.25) < 1e-15);
    const step = stepDecaySchedule({ init: 1, every: 10, factor: 0.5 });
    assert.deepEqual([0, 9, 10, 19, 20, 35].map(step), [1, 1, 0.5, 0.5, 0.25, 0.125]);
    const multi = stepDecaySchedule({ init: 1, milestones: [3, 7], factor: 0.1 });
    assert.deepEqual(
      [0, 2, 3, 6, 7, 100].map((t) => +multi(t).toPrecision(12)),
      [1, 1, 0.1, 0.1, 0.01, 0.01],
    );
    const exp = exponentialSchedule({ init: 1, rate: 0.5, transitionSteps: 2 });
    assert.deepEqual([0, 1, 2, 4].map(exp), [1, Math.SQRT1_2, 0.5, 0.25]);
    assert.deepEqual([0, 1, 2, 3].map(exponentialSchedule({ init: 1, rate: 0.5, transitionSteps: 2, staircase: true })), [1, 1, 0.5, 0.5]);
    assert.equal(exponentialSchedule({ init: 1, rate: 0.5, end: 0.2 })(10), 0.2);
    const cos = cosineSchedule({ init: 1, totalSteps: 100, final: 0.1 });
    assert.equal(cos(0), 1);
    assert.ok(Math.abs(cos(50) - 0.55) < 1e-15);
    assert.ok(Math.abs(cos(100) - 0.1) < 1e-15 && Math.abs(cos(1000) - 0.1) < 1e-15);
  });

  it("warm-up and joining", () => {
    const warm = linearWarmup(constantSchedule(0.8), { steps: 4 });
    assert.deepEqual([0, 1, 2, 3, 4, 9].map(warm), [0, 0.2, 0.4, 0.6000000000000001, 0.8, 0.8]);
    const warmCos = linearWarmup(cosineSchedule({ init: 1, totalSteps: 10 }), { steps: 5, start: 0.5 });
    assert.equal(warmCos(0), 0.5);
    assert.equal(warmCos(5), 1);
    assert.ok(Math.abs(warmCos(10) - 0.5) < 1e-15);
    const joined = joinSchedules([constantSchedule(1), inversePowerSchedule({ init: 1, power: 1 })], [10]);
    assert.deepEqual([9, 10, 11].map(joined), [1, 1, 0.5]);
  });

  it("the Robbins–Monro check of the inverse power schedule", () => {
    assert.ok(satisfiesRobbinsMonro(1) && satisfiesRobbinsMonro(0.6));
    assert.ok(!satisfiesRobbinsMonro(0.5) && !satisfiesRobbinsMonro(1.5));
    const warnings: string[] = [];
    inversePowerSchedule({ init: 1, power: 0.75, onWarning: (m) => warnings.push(m) });
    assert.equal(warnings.length, 0);
    createSchedule("inverse-power", { lr: 1, power: 0.4, onWarning: (m) => warnings.push(m) });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /Robbins–Monro/);
  });

  it("createSchedule builds by name and names the offending field", () => {
    const s = createSchedule("cosine", { lr: 0.1, totalSteps: 110, warmupSteps: 10 });
    assert.equal(s(0), 0);
    assert.equal(s(10), 0.1);
    assert.ok(Math.abs(s(110)) < 1e-17);
    assert.deepEqual([0, 5, 10].map(createSchedule("step", { lr: 1, every: 5, factor: 0.5 })), [1, 0.5, 0.25]);
    assert.throws(() => createSchedule("cosine", { lr: 0.1 }), /schedule cosine: option "totalSteps" is required/);
    assert.throws(() => createSchedule("linearly", { lr: 0.1 }), /option "name" must be one of constant/);
    assert.throws(() => createSchedule("step", { lr: 0.1, every: 0 }), /option "every" must be ≥ 1/);
    assert.throws(() => createSchedule("constant", { lr: 0.1, totalSteps: 5 } as never), /option "totalSteps" is not an option here/);
    assert.throws(
      () => createSchedule("exponential", { lr: -1, rate: 0.5 }),
      (e) => e instanceof OptionError && e.field === "lr",
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Options.

describe("createOptimizer validates options", () => {
  it("names the field of an invalid or unknown option", () => {
    assert.throws(() => createOptimizer("adam", { lr: -1 }), /adam: option "lr" must be a finite number > 0/);
    assert.throws(() => createOptimizer("adam", { betas: [0.9, 0.99] }), /adam: option "betas" is not an option here \(known: .*b1.*\)/);
    assert.throws(() => createOptimizer("adam", { b2: 1 }), /adam: option "b2" must be ≥ 0 and < 1, got 1/);
    assert.throws(() => createOptimizer("rmsprop", { centered: "yes" }), /rmsprop: option "centered" must be true or false/);
    assert.throws(() => createOptimizer("momentum", { form: "nag" }), /option "form" must be one of pytorch \| ema/);
    assert.throws(() => createOptimizer("sgd", { nesterov: true }), /option "nesterov" requires momentum > 0/);
    assert.throws(() => createOptimizer("lbfgs", {}), /option "name" must be one of sgd \| momentum/);
    assert.throws(
      () => createOptimizer("sgd", { lr: "0.1" }),
      (e) => e instanceof OptionError && e.field === "lr" && e.owner === "sgd",
    );
  });

  it("accepts a schedule as lr and every name with defaults", () => {
    for (const name of OPTIMIZER_NAMES) assert.ok(createOptimizer(name).init(new Float32Array(3)));
    const opt = createOptimizer("sgd", { lr: (t: number) => 0.1 / (t + 1) });
    const traj = trajectory(opt, [1], () => [1], 2);
    assertClose(traj[1], [1 - 0.1 - 0.05], 1e-15, "scheduled sgd");
  });
});

// ---------------------------------------------------------------------------------------------
// Clipping, averaging, early stopping.

describe("clipping and gradient norms", () => {
  it("clipByGlobalNorm projects onto the ball, clipByValue clamps", () => {
    const u = Float64Array.from([3, 4]);
    clipByGlobalNorm(1).update(u, {}, u, { step: 0, backend: portableBackend });
    assertClose(u, [0.6, 0.8], 1e-15, "clipped");
    const v = Float64Array.from([0.3, 0.4]);
    clipByGlobalNorm(1).update(v, {}, v, { step: 0, backend: portableBackend });
    assert.deepEqual(Array.from(v), [0.3, 0.4]);
    const x = Float64Array.from([-3, 0.5, 2]);
    clipByValue(1).update(x, {}, x, { step: 0, backend: portableBackend });
    assert.deepEqual(Array.from(x), [-1, 0.5, 1]);
  });

  it("GradientNormTracker summarizes an epoch", () => {
    const tr = new GradientNormTracker({ size: 2, trackMean: true });
    tr.record(Float64Array.from([3, 4]));
    tr.record(Float64Array.from([-3, 0]));
    const s = tr.summary();
    assert.equal(s.count, 2);
    assert.equal(s.mean, 4);
    assert.equal(s.max, 5);
    assert.equal(s.min, 3);
    assert.equal(s.normOfMean, 2);
    tr.reset();
    assert.equal(tr.summary().count, 0);
  });
});

describe("iterate averaging", () => {
  it("Polyak average is the mean of the iterates (after start)", () => {
    const iterates = [
      [1, 2],
      [3, -2],
      [5, 6],
      [-1, 0],
    ];
    const avg = new PolyakAverage(new Float64Array(2));
    for (const w of iterates) avg.update(w);
    assert.equal(avg.count, 4);
    assertClose(avg.averaged, [2, 1.5], 1e-15, "mean");
    const tail = new PolyakAverage(new Float64Array(2), { start: 2 });
    for (const w of iterates) tail.update(w);
    assertClose(tail.averaged, [2, 3], 1e-15, "tail mean");
  });

  it("EMA average follows w̄ ← βw̄ + (1 − β)w from the first iterate", () => {
    const avg = new EmaAverage(new Float32Array(1), { decay: 0.5 });
    for (const w of [[4], [0], [2]]) avg.update(w);
    assert.ok(avg.averaged instanceof Float32Array);
    assert.equal(avg.averaged[0], 2); // 4 → 2 → 2
    const saved = stateToTensors(avg.state());
    const other = new EmaAverage(new Float32Array(1), { decay: 0.5 });
    other.restore(stateFromTensors(other.state(), saved));
    other.update([0]);
    avg.update([0]);
    assert.equal(other.averaged[0], avg.averaged[0]);
    assert.equal(other.count, 4);
  });
});

describe("early stopping", () => {
  it("records the best epoch, snapshots its parameters, and stops after patience", () => {
    const es = new EarlyStopping({ patience: 2, minDelta: 0.01 });
    const losses = [1.0, 0.8, 0.795, 0.7, 0.71, 0.699, 0.75];
    const decisions = losses.map((l, epoch) => es.observe(l, epoch, Float64Array.from([epoch])));
    assert.deepEqual(
      decisions.map((d) => d.improved),
      [true, true, false, true, false, false, false],
    );
    assert.deepEqual(
      decisions.map((d) => d.stop),
      [false, false, false, false, false, true, true],
    );
    assert.equal(es.bestEpoch, 3);
    assert.equal(es.bestValue, 0.7);
    assert.deepEqual(Array.from(es.bestParams ?? []), [3]);
    assert.ok(es.shouldStop);
    assert.throws(() => new EarlyStopping({ patience: 0 }), /patience/);
  });
});

// ---------------------------------------------------------------------------------------------
// Checkpointing.

function bitsEqual(a: FloatArray, b: FloatArray): boolean {
  if (a.length !== b.length || a.constructor !== b.constructor) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

describe("optimizer state checkpointing", () => {
  const composed = () =>
    chain(
      clipByGlobalNorm(2),
      traceMomentum({ decay: 0.5 }),
      scaleByAdam({ amsgrad: true }),
      addDecayedWeights(0.01),
      scaleByLearningRate(linearWarmup(cosineSchedule({ init: 0.05, totalSteps: 10 }), { steps: 2 })),
    );
  const cases: [string, () => GradientTransformation][] = [
    ...OPTIMIZER_NAMES.map((n): [string, () => GradientTransformation] => [n, () => createOptimizer(n, { lr: 0.01, weightDecay: 0.01 })]),
    ["rmsprop centered+momentum", () => createOptimizer("rmsprop", { centered: true, momentum: 0.5 })],
    ["composed chain", composed],
  ];
  for (const dtype of ["float64", "float32"] as const) {
    for (const [name, make] of cases) {
      it(`${name} (${dtype}): save after 3 steps, restore (through JSON), next 3 updates bit-identical`, () => {
        const n = 7;
        const rng = new Rng(11);
        const arr = (xs: ArrayLike<number>): FloatArray => (dtype === "float64" ? Float64Array.from(xs) : Float32Array.from(xs));
        const normals = () => arr(Array.from({ length: n }, () => rng.normal()));
        const w0 = normals();
        const grads = Array.from({ length: 6 }, normals);
        const opt = make();
        const w = w0.slice();
        const u = arr(new Array(n).fill(0));
        let state: StateTree = opt.init(w);
        const step = (o: GradientTransformation, s: StateTree, ww: FloatArray, t: number) => {
          u.set(grads[t]);
          for (let i = 0; i < n; i++) u[i] += 0.1 * ww[i]; // parameter-dependent, like a real gradient
          const next = o.update(u, s, ww, { step: t, backend: portableBackend });
          applyUpdates(ww, u, portableBackend);
          return next;
        };
        for (let t = 0; t < 3; t++) state = step(opt, state, w, t);
        // Save: tensors as plain arrays in JSON (float64 numbers round-trip exactly).
        const saved = stateToTensors(state);
        const json = JSON.stringify({
          tensors: Object.fromEntries(Object.entries(saved.tensors).map(([k, v]) => [k, Array.from(v)])),
          scalars: saved.scalars,
          params: Array.from(w),
        });
        // Continue the original run.
        const wA = w.slice();
        for (let t = 3; t < 6; t++) state = step(opt, state, wA, t);
        // Resume a fresh optimizer from the checkpoint.
        const loaded = JSON.parse(json) as { tensors: Record<string, number[]>; scalars: Record<string, number>; params: number[] };
        const opt2 = make();
        const wB = arr(loaded.params);
        let state2: StateTree = stateFromTensors(opt2.init(wB), loaded);
        for (let t = 3; t < 6; t++) state2 = step(opt2, state2, wB, t);
        assert.ok(bitsEqual(wA, wB), `resumed run differs: ${Array.from(wA)} vs ${Array.from(wB)}`);
        const sA = stateToTensors(state);
        const sB = stateToTensors(state2);
        assert.deepEqual(Object.keys(sA.tensors).sort(), Object.keys(sB.tensors).sort());
        for (const k of Object.keys(sA.tensors)) assert.ok(bitsEqual(sA.tensors[k], sB.tensors[k]), `state tensor ${k} differs`);
        assert.deepEqual(sA.scalars, sB.scalars);
      });
    }
  }

  it("names entries stably and rejects a checkpoint of another optimizer", () => {
    const adam = createOptimizer("adam");
    const s = stateToTensors(adam.init(new Float64Array(3)));
    assert.deepEqual(Object.keys(s.tensors).sort(), ["0.mu", "0.nu"]);
    assert.deepEqual(s.scalars, { "0.count": 0 });
    const sgdState = createOptimizer("momentum").init(new Float64Array(3));
    assert.throws(() => stateFromTensors(sgdState, s), /tensor "0.trace" is missing/);
    const bad = { tensors: { ...s.tensors, "0.mu": new Float64Array(2) }, scalars: s.scalars };
    assert.throws(() => stateFromTensors(adam.init(new Float64Array(3)), bad), /"0.mu" has 2 entries, expected 3/);
    const extra = { tensors: { ...s.tensors, "0.nuMax": new Float64Array(3) }, scalars: s.scalars };
    assert.throws(() => stateFromTensors(adam.init(new Float64Array(3)), extra), /checkpoint has tensor "0.nuMax"/);
  });
});
