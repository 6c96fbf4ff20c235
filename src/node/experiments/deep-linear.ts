import { join } from "node:path";
import { Chain } from "../../chain/chain.js";
import { parseModelSpec } from "../../chain/spec.js";
import type { FloatArray } from "../../core/dtype.js";
import { Rng } from "../../core/rng.js";
import { createDataset } from "../../data/dataset.js";
import {
  type DeepLinearTask,
  effectiveInitialStrengths,
  makeDeepLinearTask,
  modeStrengths,
  saxeCurve,
  saxeTimeTo,
} from "../../experiments/deep-linear-modes.js";
import { createObjective } from "../../objectives/objective.js";
import { sgd } from "../../optim/aliases.js";
import { forward } from "../../oracles/first-order.js";
import type { Row } from "../../report/plots.js";
import type { Trainer } from "../../train/trainer.js";
import { type ExperimentDefinition, type ExperimentIO, type ExperimentOption, resolveOptions, silentIO } from "./experiment.js";
import { ExperimentProtocol, type ProtocolRun } from "./protocol.js";

export * from "../../experiments/deep-linear-modes.js";

// The lecture's deep linear networks (Perraudin & Hofmann, ETH "Deep Learning" lecture 6 (2018), "Least Squares: Two-Layer Linear Network"),
// following Saxe, McClelland & Ganguli, "Exact solutions to the nonlinear dynamics of learning in
// deep linear neural networks", ICLR 2014 (arXiv:1312.6120), Sec. 2 and Fig. 3.
//
// Derivation for chainopt's loss and plain gradient descent (the code below checks it numerically).
//
// Data. Inputs x_i ∈ ℝⁿ (i = 1..N) whitened on the sample, Σ11 = (1/N) Σ_i x_i x_iᵀ = I (the
// lecture's assumption). Targets y_i = Σ31 x_i with Σ31 = U S Vᵀ = Σ_r s_r u_r v_rᵀ (U ∈ ℝ^{m×R},
// V ∈ ℝ^{n×R} with orthonormal columns, strengths s_1 > … > s_R > 0), so that the input-output
// correlation is (1/N) Σ_i y_i x_iᵀ = Σ31 Σ11 = Σ31.
//
// Loss. ŷ = W2 W1 x with W1 ∈ ℝ^{k×n}, W2 ∈ ℝ^{m×k} (dense layers without bias), A := W2 W1.
// chainopt's squared loss (src/objectives/squared.ts) is f = (1/2N) Σ_i ‖A x_i − y_i‖²
//   = ½ Tr[(A − Σ31) Σ11 (A − Σ31)ᵀ] = ½ ‖A − Σ31‖²_F.
// (The lecture's R(A) = E‖y − Ax‖² has no ½, so its gradients are twice ours.) Hence
//   ∇_{W1} f = W2ᵀ (A − Σ31),   ∇_{W2} f = (A − Σ31) W1ᵀ,
// and one full-batch gradient-descent step with learning rate η is
//   W1 ← W1 + η W2ᵀ (Σ31 − W2 W1),   W2 ← W2 + η (Σ31 − W2 W1) W1ᵀ,
// i.e. Euler's method with time step Δt = η for the gradient flow
//   dW1/dt = W2ᵀ (Σ31 − W2 W1),   dW2/dt = (Σ31 − W2 W1) W1ᵀ,
// which is Saxe et al.'s Eq. (2)–(3) (τ dW/dt = …, Σ11 = I) with τ = 1/η: after k steps, t/τ = η k.
//
// Modes. With a_r := W1 v_r ∈ ℝᵏ and b_r := W2ᵀ u_r ∈ ℝᵏ, the strength of mode r is
// u_r := u_rᵀ A v_r = b_rᵀ a_r, and (q, p over orthonormal bases of ℝᵐ, ℝⁿ completing U, V)
//   da_r/dt = s_r b_r − Σ_q b_q (b_qᵀ a_r),   db_r/dt = s_r a_r − Σ_p a_p (a_pᵀ b_r).
// When each mode's vectors are balanced and aligned (a_r = b_r) and different modes' vectors are
// orthogonal, the cross terms vanish ("competition" terms of the lecture's energy) and, with
// a = ‖a_r‖, da/dt = a (s − a²), so u = a² solves the logistic equation du/dt = 2u (s − u):
//   u(t) = s e^{2st} / (e^{2st} − 1 + s/u0)                      (Saxe et al., Eq. (8), t in units of τ)
// (check: u(0) = u0, u(∞) = s, and with E = e^{2st}, D = E − 1 + s/u0, du/dt = 2s²E(s/u0 − 1)/D²
// = 2u(s − u)). Half the strength is reached at t½ = ln(s/u0 − 1)/(2s): weak modes are learned
// later, after a plateau — the sigmoidal, stage-like curves of the lecture's slide.
//
// Small random initialization. While A ≈ 0 the dynamics is linear and exactly decoupled:
// da_r/dt = s_r b_r, db_r/dt = s_r a_r, so c_r = (a_r + b_r)/2 grows as e^{s_r t} and
// d_r = (a_r − b_r)/2 decays as e^{−s_r t}; u_r = ‖c_r‖² − ‖d_r‖² ≈ ‖c_r(0)‖² e^{2 s_r t}. This is the
// early behaviour u0 e^{2st} of the analytic curve, so each mode's effective initial strength is,
// before the correction below, ‖c_r(0)‖² = ‖(W1(0) v_r + W2(0)ᵀ u_r) / 2‖².
//
// Competition. The growing directions c_r(0) of different modes are random vectors of ℝᵏ, nearly
// but not exactly orthogonal. A stronger mode q (s_q > s_r) is learned first, along ≈ c_q(0) (the
// direction its linear phase amplified). From then on the components of a_r, b_r along that
// direction obey d/dt (x_a, x_b) = [[−s_q, s_r], [s_r, −s_q]] (x_a, x_b) (the cross terms
// −b_q(b_qᵀa_r) with ‖b_q‖² = s_q), whose eigenvalues −s_q ± s_r are negative: they die out. So
// mode r effectively starts from the part of c_r(0) orthogonal to the stronger modes' c_q(0):
//   u0_r := ‖P_r c_r(0)‖²,  P_r the projection onto span{c_q(0) : s_q > s_r}^⊥.
// (Without this correction u0_r is too large by a random fraction ρ_r ≈ (number of stronger
// modes)/k, which delays the transition by ρ_r/(2 s_r), a deviation ≈ s_r ρ_r/4 at the steepest
// point — a few percent for k = 32..64; `u0Raw` in the summary is the uncorrected value.)
//
// Discrete time. GD is Euler's method: on the balanced decoupled mode u_{k+1} = u_k (1 + η(s − u_k))²,
// whose early growth (1 + ηs)^{2k} = e^{2ηsk (1 − ηs/2 + O(η²s²))} is slower than e^{2ηsk}: the
// transition happens later by about (ηs/2) t½ in t. With the steepest slope du/dt = s²/2 (at u =
// s/2), the simulated curve then lies below the analytic one by at most about
//   δ_r ≈ (s_r²/2)(η s_r/2) t½ = η s_r² ln(s_r/u0_r − 1) / 8,
// reported as `expectedDeviation` beside the measured maximum deviation. It is first order in η:
// halving the step halves the deviation.
//
// The tanh network (dense, tanh, dense; same data, initialization and steps) is shown beside it.
// As Saxe et al. (Fig. 3) do for nonlinear networks, its mode strengths are the diagonal of
// Uᵀ Σ31_net V with Σ31_net = (1/N) Σ_i ŷ_i x_iᵀ the network's input-output correlation; for the
// linear network this is exactly u_rᵀ A v_r (Σ11 = I), and the code uses the same formula for both.

/** Options of {@link runDeepLinear}. */
export interface DeepLinearOptions {
  /** Input dimension n (default 10). */
  inputs?: number;
  /** Output dimension m (default 10). */
  outputs?: number;
  /** Hidden width k (default 64). */
  hidden?: number;
  /** Mode strengths s_r, the singular values of Σ31 (default 3, 2, 1.5, 1, 0.5). */
  strengths?: number[];
  /** Number of samples N (default 100; at least n). */
  samples?: number;
  /** Learning rate η of gradient descent (default 0.005). */
  lr?: number;
  /** Time span t_max = η·steps (default: 1.2 × the time the slowest mode needs to reach 99% of s). */
  time?: number;
  /** Standard deviation σ of the initial weights, drawn i.i.d. N(0, σ²) (default 0.005). */
  initScale?: number;
  /** Seed of the data, the task's singular vectors and the initialization (default 0). */
  seed?: number;
  /** Time points written to the CSV and plots (default 200). */
  points?: number;
  /** Also train the tanh network (default true). */
  tanh?: boolean;
  /** Write the plots (default true). */
  plots?: boolean;
  /** Also write PNG files of the plots (default false; SVG always). */
  png?: boolean;
  /** Run directory (default runs/<timestamp>-deep-linear). */
  out?: string;
  /** Parent of the default run directory (default runs). */
  root?: string;
  /** Continue the experiment in this folder (same options): finished runs are read back, an interrupted one resumes. */
  resume?: string;
}

/** Per-mode results. */
export interface ModeSummary {
  mode: number;
  strength: number;
  /** Effective initial strength u0_r, competition-corrected (see the module comment). */
  u0: number;
  /** ‖c_r(0)‖² without the competition correction. */
  u0Raw: number;
  /** Strength u_r(0) of the initial network (may be negative). */
  initial: number;
  /** Analytic half-time t½ = ln(s/u0 − 1)/(2s), in units of τ = 1/η. */
  analyticHalfTime: number;
  /** First time the simulated linear strength reaches s/2. */
  simulatedHalfTime: number | null;
  /** max_t |u_sim(t) − u_analytic(t)| over every step. */
  maxDeviation: number;
  /** maxDeviation / s. */
  relativeDeviation: number;
  /** The discretization estimate η s² ln(s/u0 − 1)/8 of the deviation (see the module comment). */
  expectedDeviation: number;
  finalLinear: number;
  finalTanh: number | null;
}

/** Result of {@link runDeepLinear}. */
export interface DeepLinearResult {
  runDir: string;
  csv: string;
  plots: string[];
  steps: number;
  lr: number;
  time: number;
  modes: ModeSummary[];
  /** max over modes of maxDeviation. */
  maxDeviation: number;
  maxRelativeDeviation: number;
  seconds: number;
}

const DEFAULTS = {
  inputs: 10,
  outputs: 10,
  hidden: 64,
  strengths: [3, 2, 1.5, 1, 0.5],
  samples: 100,
  lr: 0.005,
  initScale: 0.005,
  seed: 0,
  points: 200,
  tanh: true,
  plots: true,
  png: false,
};

function checkPositive(name: string, v: number, integer = false): void {
  if (!(Number.isFinite(v) && v > 0) || (integer && !Number.isInteger(v))) {
    throw new Error(`${name}: expected a positive ${integer ? "integer" : "number"}, got ${v}`);
  }
}

/** The per-epoch measurement of a run: its mode strengths as `mode_0` … `mode_{R−1}` (metrics.jsonl keys). */
function strengthMetrics(task: DeepLinearTask, chain: Chain): (record: unknown, trainer: Trainer) => Record<string, number> {
  return (_record, trainer) => {
    const s = modeStrengths(task, forward(chain, trainer.w, task.x, task.samples));
    return Object.fromEntries(Array.from(s, (v, r) => [`mode_${r}`, v]));
  };
}

/** Mode strengths after each step 1..steps, read back from a run's epoch lines (one full-batch step per epoch). */
function strengthsPerStep(run: ProtocolRun, modes: number): Float64Array[] {
  return run.epochs.map((e) => Float64Array.from({ length: modes }, (_, r) => Number(e[`mode_${r}`])));
}

/**
 * Runs the deep-linear experiment as a protocol (src/node/experiments/protocol.ts): trains the
 * two-layer linear network (and the tanh network) by full-batch gradient descent, each epoch one
 * step on all N samples, as runs `linear` and `tanh` under `runs/`; each epoch line of their
 * metrics.jsonl holds the mode strengths after that step (`mode_0` …). From those it writes
 * `curves.csv` (t, mode, simulated, analytic, tanh, …), `modes.csv`, `summary.json` and plots.
 * With `resume` set to an interrupted experiment's folder, it continues there.
 */
export async function runDeepLinear(options: DeepLinearOptions = {}, io: ExperimentIO = silentIO): Promise<DeepLinearResult> {
  const o = { ...DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) } as typeof DEFAULTS &
    DeepLinearOptions;
  // Every option is checked before anything is written.
  for (const k of ["inputs", "outputs", "hidden", "samples", "points"] as const) checkPositive(k, o[k], true);
  checkPositive("lr", o.lr);
  checkPositive("initScale", o.initScale);
  if (o.strengths.length === 0) throw new Error("strengths: expected at least one mode strength");
  for (const s of o.strengths) checkPositive("strengths", s);
  const task = makeDeepLinearTask({ inputs: o.inputs, outputs: o.outputs, samples: o.samples, strengths: o.strengths, seed: o.seed });
  const { n, m, samples: N } = task;
  const k = o.hidden;
  const R = o.strengths.length;

  // Networks: dense (no bias) – dense (no bias); dense – tanh – dense. Same parameter layout:
  // W1 (k × n, out × in) then W2 (m × k).
  const linearSpec = parseModelSpec({
    input: [n],
    layers: [
      { type: "dense", units: k, bias: false },
      { type: "dense", units: m, bias: false },
    ],
  });
  const tanhSpec = parseModelSpec({
    input: [n],
    layers: [{ type: "dense", units: k, bias: false }, { type: "tanh" }, { type: "dense", units: m, bias: false }],
  });
  const linear = new Chain(linearSpec, { dtype: "float64" });
  const tanhNet = new Chain(tanhSpec, { dtype: "float64" });
  const rng = new Rng(o.seed + 1);
  const w0 = new Float64Array(linear.paramSize);
  for (let i = 0; i < w0.length; i++) w0[i] = o.initScale * rng.normal();
  const w1 = w0.subarray(0, k * n);
  const w2 = w0.subarray(k * n);
  const u0 = effectiveInitialStrengths(task, w1, w2, k);
  const u0Raw = effectiveInitialStrengths(task, w1, w2, k, { competition: false });
  const tMax = o.time ?? 1.2 * Math.max(...o.strengths.map((s, r) => saxeTimeTo(0.99, s, u0[r])));
  checkPositive("time", tMax);
  const steps = Math.ceil(tMax / o.lr);

  const { out, root, resume, ...config } = o;
  const protocol = ExperimentProtocol.begin("deep-linear", { out, root, resume }, config, io.signal);
  // The whitened inputs and targets in float64 (the float64 chains see them unrounded).
  const data = {
    train: createDataset({ name: "deep-linear", inputShape: [n], x: task.x, targets: task.y, targetSize: m }),
  };
  const train = (name: string, chain: Chain) =>
    protocol.train(name, chain, data, {
      objective: createObjective("squared"),
      optimizer: sgd({ lr: o.lr }),
      optimizerName: "sgd",
      learningRate: o.lr,
      // One epoch = one full-batch gradient-descent step, in sample order.
      batchSize: N,
      shuffle: false,
      seed: o.seed,
      epochs: steps,
      params: w0.slice() as FloatArray,
      epochMetrics: strengthMetrics(task, chain),
      // Thousands of tiny epochs: about 20 checkpoints per run (and one on Ctrl-C) instead of one
      // per step, whose fsyncs would cost far more than the step itself.
      checkpointEvery: Math.max(1, Math.ceil(steps / 20)),
      config: { data: { name: "synthetic whitened, y = U S Vᵀ x", inputs: n, outputs: m, samples: N, strengths: o.strengths } },
    });
  let linearRun: ProtocolRun;
  let tanhRun: ProtocolRun | null;
  try {
    linearRun = await train("linear", linear);
    tanhRun = o.tanh ? await train("tanh", tanhNet) : null;
  } catch (error) {
    // Interrupted (or failed): free the folder for `resume`, also from this process.
    protocol.release();
    throw error;
  }

  // Strengths at steps 0..steps: the initial network's, then each epoch's measurement.
  const initial = modeStrengths(task, forward(linear, w0, task.x, N));
  const linearAt = [initial, ...strengthsPerStep(linearRun, R)];
  const tanhAt = tanhRun ? [modeStrengths(task, forward(tanhNet, w0, task.x, N)), ...strengthsPerStep(tanhRun, R)] : null;
  // Record points: `points` steps spread evenly over [0, steps] (always including both ends).
  const recordAt = new Set<number>();
  for (let j = 0; j <= o.points; j++) recordAt.add(Math.round((j * steps) / o.points));
  const maxDev = new Array<number>(R).fill(0);
  const halfTime: (number | null)[] = new Array(R).fill(null);
  const curves: Row[] = [];
  const csvRows: Row[] = [];
  for (let step = 0; step <= steps; step++) {
    const t = step * o.lr;
    const lin = linearAt[step];
    for (let r = 0; r < R; r++) {
      const a = saxeCurve(o.strengths[r], u0[r], t);
      maxDev[r] = Math.max(maxDev[r], Math.abs(lin[r] - a));
      if (halfTime[r] === null && lin[r] >= o.strengths[r] / 2) halfTime[r] = t;
    }
    if (recordAt.has(step)) {
      const th = tanhAt ? tanhAt[step] : null;
      for (let r = 0; r < R; r++) {
        const a = saxeCurve(o.strengths[r], u0[r], t);
        const mode = `${r + 1} (s=${o.strengths[r]})`;
        csvRows.push({ t, mode: r + 1, simulated: lin[r], analytic: a, tanh: th ? th[r] : null, step, s: o.strengths[r] });
        curves.push({ t, mode, curve: "analytic", strength: a });
        curves.push({ t, mode, curve: "linear (GD)", strength: lin[r] });
        if (th) curves.push({ t, mode, curve: "tanh (GD)", strength: th[r] });
      }
    }
  }
  const lastLinear = linearAt[steps];
  const lastTanh = tanhAt ? tanhAt[steps] : null;
  // The loss before the last step (the last epoch's train loss), as the hand-written loop reported it.
  const lastLoss = linearRun.history[steps - 1]?.trainLoss ?? Number.NaN;
  const seconds = linearRun.seconds + (tanhRun?.seconds ?? 0);

  const modes: ModeSummary[] = o.strengths.map((s, r) => ({
    mode: r + 1,
    strength: s,
    u0: u0[r],
    u0Raw: u0Raw[r],
    initial: initial[r],
    analyticHalfTime: saxeTimeTo(0.5, s, u0[r]),
    simulatedHalfTime: halfTime[r],
    maxDeviation: maxDev[r],
    relativeDeviation: maxDev[r] / s,
    expectedDeviation: (o.lr * s * s * Math.log(s / u0[r] - 1)) / 8,
    finalLinear: lastLinear[r],
    finalTanh: lastTanh ? lastTanh[r] : null,
  }));
  const maxDeviation = Math.max(...maxDev);
  const maxRelativeDeviation = Math.max(...modes.map((x) => x.relativeDeviation));

  const csv = protocol.table("curves", csvRows);
  protocol.table("modes", modes as unknown as Row[]);
  const plots: string[] = [];
  if (o.plots) {
    const base = { png: o.png, points: false, width: 520, height: 320 };
    await protocol.plot(curves, {
      ...base,
      x: "t",
      y: "strength",
      color: "mode",
      dash: "curve",
      name: "mode-strengths",
      title: "Mode strengths u_r(t): analytic (Saxe et al.) vs linear and tanh networks",
      xTitle: "t = η · step (units of τ = 1/η)",
      yTitle: "mode strength u_r = u_rᵀ Σ31_net v_r",
    });
    const devRows: Row[] = csvRows.map((r) => ({
      t: r.t,
      mode: `${r.mode} (s=${r.s})`,
      deviation: (r.simulated as number) - (r.analytic as number),
    }));
    await protocol.plot(devRows, {
      ...base,
      x: "t",
      y: "deviation",
      color: "mode",
      name: "deviation",
      title: "Linear network minus analytic curve",
      xTitle: "t = η · step",
      yTitle: "u_sim − u_analytic",
    });
    plots.push(join(protocol.run.plotsDir, "mode-strengths.svg"), join(protocol.run.plotsDir, "deviation.svg"));
  }
  const result: DeepLinearResult = {
    runDir: protocol.dir,
    csv,
    plots,
    steps,
    lr: o.lr,
    time: tMax,
    modes,
    maxDeviation,
    maxRelativeDeviation,
    seconds,
  };
  protocol.finish({ steps, lr: o.lr, time: tMax, finalLoss: lastLoss, maxDeviation, maxRelativeDeviation, modes, seconds });

  io.log(
    `deep-linear: n=${n}, m=${m}, hidden=${k}, N=${N}, η=${o.lr}, ${steps} full-batch GD steps (t_max = ${tMax.toFixed(2)}), ${seconds.toFixed(1)} s`,
  );
  io.log("mode  s      u0         t½ analytic  t½ simulated  max |sim−analytic|  (rel.)   expected  final linear  final tanh");
  for (const x of modes) {
    io.log(
      `${String(x.mode).padEnd(5)} ${String(x.strength).padEnd(6)} ${x.u0.toExponential(2).padEnd(10)} ${x.analyticHalfTime.toFixed(3).padEnd(12)} ${(x.simulatedHalfTime?.toFixed(3) ?? "n/a").padEnd(13)} ${x.maxDeviation.toFixed(4).padEnd(19)} ${(100 * x.relativeDeviation).toFixed(2).padStart(5)}%   ${x.expectedDeviation.toFixed(4).padEnd(9)} ${x.finalLinear.toFixed(4).padEnd(13)} ${x.finalTanh?.toFixed(4) ?? "n/a"}`,
    );
  }
  io.log(
    `max deviation between simulated and analytic curves: ${maxDeviation.toFixed(4)} (${(100 * maxRelativeDeviation).toFixed(2)}% of s)`,
  );
  io.log(`run directory: ${protocol.dir}`);
  return result;
}

const OPTIONS: readonly ExperimentOption[] = [
  { key: "inputs", type: "int", description: "input dimension n", default: DEFAULTS.inputs },
  { key: "outputs", type: "int", description: "output dimension m", default: DEFAULTS.outputs },
  { key: "hidden", type: "int", description: "hidden width k", default: DEFAULTS.hidden },
  { key: "strengths", type: "numbers", description: "mode strengths s_r (singular values of Σ31)", default: DEFAULTS.strengths },
  { key: "samples", type: "int", description: "number of samples N (≥ n)", default: DEFAULTS.samples },
  { key: "lr", type: "number", description: "learning rate η of full-batch gradient descent", default: DEFAULTS.lr },
  { key: "time", type: "number", description: "time span t_max = η·steps (default: until the slowest mode is learned)" },
  { key: "initScale", type: "number", description: "standard deviation of the initial weights", default: DEFAULTS.initScale },
  { key: "seed", type: "int", description: "seed of data and initialization", default: DEFAULTS.seed },
  { key: "points", type: "int", description: "time points in the CSV and plots", default: DEFAULTS.points },
  { key: "tanh", type: "boolean", description: "also train the tanh network", default: true },
  { key: "png", type: "boolean", description: "also write PNG plots", default: false },
];

/** `chainopt experiment deep-linear`. */
export const deepLinearExperiment: ExperimentDefinition = {
  name: "deep-linear",
  description: "two-layer linear network vs Saxe et al.'s analytic mode-strength curves (with a tanh network beside it)",
  options: OPTIONS,
  async run(given, io) {
    const opts = resolveOptions(OPTIONS, given) as DeepLinearOptions;
    const r = await runDeepLinear(opts, io);
    return {
      runDir: r.runDir,
      summary: {
        steps: r.steps,
        lr: r.lr,
        time: r.time,
        maxDeviation: r.maxDeviation,
        maxRelativeDeviation: r.maxRelativeDeviation,
        modes: r.modes,
        seconds: r.seconds,
      },
    };
  },
};
