import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { armijoLineSearch, type FloatArray, momentum, portableBackend, Rng, sgd } from "../src/index.js";
import { randomArray } from "./helpers.js";

// Armijo backtracking for first-order training (optim/armijo.ts): the sufficient-decrease
// condition f(w⁺) ≤ f(w) + c ⟨∇f(w), w⁺ − w⟩ is checked at every accepted step from the iterates
// alone, on random quadratics and on the Rosenbrock function.

interface Fn {
  f(w: ArrayLike<number>): number;
  grad(w: ArrayLike<number>): Float64Array;
}

/** f(w) = ½ wᵀ A w − bᵀ w with A = Mᵀ M/n + 0.2 I (random, positive definite). */
function quadratic(n: number, rng: Rng): Fn & { L: number } {
  const m = randomArray(n * n, rng);
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += m[k * n + i] * m[k * n + j];
      a[i * n + j] = s / n + (i === j ? 0.2 : 0);
    }
  const b = randomArray(n, rng);
  // L = λ_max(A) ≤ ‖A‖_F (used only as a bound in the step-size test).
  let fro = 0;
  for (const v of a) fro += v * v;
  return {
    L: Math.sqrt(fro),
    f(w) {
      let s = 0;
      for (let i = 0; i < n; i++) {
        let r = 0;
        for (let j = 0; j < n; j++) r += a[i * n + j] * w[j];
        s += 0.5 * w[i] * r - b[i] * w[i];
      }
      return s;
    },
    grad(w) {
      const g = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        let r = -b[i];
        for (let j = 0; j < n; j++) r += a[i * n + j] * w[j];
        g[i] = r;
      }
      return g;
    },
  };
}

/** Rosenbrock f(x, y) = (1 − x)² + 100 (y − x²)². */
const rosenbrock: Fn = {
  f: (w) => (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2,
  grad: (w) => Float64Array.from([-2 * (1 - w[0]) - 400 * w[0] * (w[1] - w[0] ** 2), 200 * (w[1] - w[0] ** 2)]),
};

const backend = portableBackend;

/** Runs `steps` updates; checks the Armijo condition at every accepted step; returns the final w and the accepted steps. */
function run(fn: Fn, w0: ArrayLike<number>, opt: ReturnType<typeof armijoLineSearch>, steps: number, c: number) {
  const w = Float64Array.from(w0);
  let state = opt.init(w);
  const accepted: number[] = [];
  const g0 = Math.hypot(...fn.grad(w));
  for (let t = 0; t < steps; t++) {
    const f0 = fn.f(w);
    const g = fn.grad(w);
    // Stop where decreases of f fall to rounding level (the condition is then decided by rounding).
    if (Math.hypot(...g) <= 1e-7 * g0) break;
    const u: FloatArray = Float64Array.from(g);
    state = opt.update(u, state, w, { step: t, backend, objective: { value: f0, at: (p) => fn.f(p) } });
    const trace = opt.lastTrace();
    assert.ok(trace);
    let gd = 0;
    let moved = 0;
    for (let i = 0; i < w.length; i++) {
      gd += g[i] * u[i];
      moved += Math.abs(u[i]);
    }
    for (let i = 0; i < w.length; i++) w[i] += u[i];
    if (trace.step > 0) {
      const f1 = fn.f(w);
      // Sufficient decrease, from the iterates (independent of the trace).
      assert.ok(f1 <= f0 + c * gd + 1e-12 * Math.abs(f0), `step ${t}: f ${f0} → ${f1}, c⟨g, Δw⟩ = ${c * gd}`);
      assert.ok(gd < 0, "an accepted step moves along a descent direction");
      assert.ok(Math.abs(trace.newValue - f1) <= 1e-12 * Math.max(1, Math.abs(f1)));
      accepted.push(trace.step);
    } else assert.equal(moved, 0, "a failed search leaves the parameters");
  }
  return { w, accepted, state };
}

describe("Armijo line search (first order)", () => {
  for (const reset of ["constant", "previous", "increase"] as const) {
    it(`SGD + Armijo on random quadratics: condition at every step, steps ≥ min(s₀, 2β(1 − c)/L), convergence (reset ${reset})`, () => {
      const rng = new Rng(11);
      for (let trial = 0; trial < 3; trial++) {
        const q = quadratic(6, rng);
        const c = 0.3;
        const shrink = 0.5;
        const s0 = 1;
        const opt = armijoLineSearch(sgd({ lr: 1 }), { initialStep: s0, c, shrink, reset });
        const w0 = randomArray(6, rng);
        const { w, accepted, state } = run(q, w0, opt, 400, c);
        assert.equal(state.failures, 0);
        assert.equal(state.fallbacks, 0);
        // Every s ≤ 2(1 − c)/L passes, so backtracking stops at s ≥ β·min(s_init, 2(1 − c)/L) — and
        // s_init ≥ that bound too under every reset (by induction).
        const bound = shrink * Math.min(s0, (2 * (1 - c)) / q.L);
        for (const s of accepted) assert.ok(s >= bound * (1 - 1e-12), `step ${s} < ${bound}`);
        const g = q.grad(w);
        const gn = Math.hypot(...g);
        const g0 = Math.hypot(...q.grad(w0));
        assert.ok(gn < 1e-3 * g0, `‖∇f‖: ${g0} → ${gn}`);
      }
    });
  }

  it("SGD + Armijo on Rosenbrock from (−1.2, 1): condition at every step, reaches the minimizer (1, 1)", () => {
    const c = 1e-4;
    const opt = armijoLineSearch(sgd({ lr: 1 }), { initialStep: 1, c, shrink: 0.5, reset: "increase" });
    const { w, accepted } = run(rosenbrock, [-1.2, 1], opt, 20000, c);
    assert.ok(accepted.length > 0);
    assert.ok(Math.hypot(w[0] - 1, w[1] - 1) < 1e-3, `w = (${w[0]}, ${w[1]})`);
  });

  it("heavy-ball momentum + Armijo on Rosenbrock: condition at every step, falls back to −g when the direction ascends", () => {
    const c = 1e-4;
    const opt = armijoLineSearch(momentum({ lr: 1, momentum: 0.9 }), { initialStep: 0.01, c, shrink: 0.5 });
    const { w, state } = run(rosenbrock, [-1.2, 1], opt, 3000, c);
    assert.ok(rosenbrock.f(w) < rosenbrock.f([-1.2, 1]));
    assert.ok(state.fallbacks >= 0 && Number.isInteger(state.fallbacks));
  });

  it("forces a fallback: an inner direction that ascends is replaced by −g", () => {
    const ascend = { name: "ascend", init: () => ({}), update: (_u: FloatArray, s: Record<string, never>) => s };
    const opt = armijoLineSearch(ascend, { initialStep: 0.1, c: 0.5 });
    const q = quadratic(3, new Rng(2));
    const w = Float64Array.from([1, -1, 2]);
    const state = opt.init(w);
    const u = q.grad(w);
    opt.update(u, state, w, { step: 0, backend, objective: { value: q.f(w), at: (p) => q.f(p) } });
    assert.equal(state.fallbacks, 1);
    assert.ok(opt.lastTrace()?.fallback);
    assert.ok((opt.lastTrace()?.slope ?? 0) < 0);
  });

  it("refuses bad options and a context without objective", () => {
    assert.throws(() => armijoLineSearch(sgd({ lr: 1 }), { c: 1 }), /"c"/);
    assert.throws(() => armijoLineSearch(sgd({ lr: 1 }), { shrink: 0 }), /"shrink"/);
    assert.throws(() => armijoLineSearch(sgd({ lr: 1 }), { initialStep: -1 }), /"initialStep"/);
    assert.throws(() => armijoLineSearch(sgd({ lr: 1 }), { reset: "never" as never }), /"reset"/);
    const opt = armijoLineSearch(sgd({ lr: 1 }));
    const w = new Float64Array(2);
    assert.throws(() => opt.update(new Float64Array(2), opt.init(w), w, { step: 0, backend }), /objective/);
  });
});
