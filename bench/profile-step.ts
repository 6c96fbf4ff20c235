// Per-part profile of one training step (what `Trainer.trainStep` does): batch gathering, each
// component's forward and backward, the loss, the optimizer update and the trainer's checks.
//
//   node dist/bench/profile-step.js [--model mlp|convnet|both] [--threads 1] [--batch 128] [--steps 30]
//                                   [--backend native|portable] [--dtype float32|float64] [--unfused]
//
// Each component's forward/backward is wrapped with a timer (hrtime, ~50 ns per call, negligible
// beside the parts timed). Medians over the timed steps after warm-up.
import { type Chain, componentContext, createChain } from "../src/chain/chain.js";
import { convnet, mlp } from "../src/chain/presets.js";
import type { Component } from "../src/components/component.js";
import type { Backend } from "../src/core/backend.js";
import type { DType, FloatArray } from "../src/core/dtype.js";
import { allFiniteOf, norm2Of } from "../src/core/kernels.js";
import { portableBackend } from "../src/core/portable.js";
import { Rng } from "../src/core/rng.js";
import { BatchLoader, createDataset } from "../src/data/dataset.js";
import { loadNativeBackend } from "../src/node/native-backend.js";
import { createObjective } from "../src/objectives/objective.js";
import { sgd } from "../src/optim/aliases.js";
import { applyUpdates } from "../src/optim/transform.js";
import { runForward } from "../src/oracles/first-order.js";

const args = process.argv.slice(2);
const arg = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const models = arg("model", "both") === "both" ? ["mlp", "convnet"] : [arg("model", "mlp")];
const threads = Number(arg("threads", "1"));
const batchSize = Number(arg("batch", "128"));
const steps = Number(arg("steps", "30"));
const dtype = arg("dtype", "float32") as DType;
const unfused = args.includes("--unfused");
const loaded = arg("backend", "native") === "portable" ? portableBackend : loadNativeBackend();
if (!loaded) throw new Error("native backend not available");
const backend: Backend = loaded;
backend.setThreads?.(threads);

const now = () => Number(process.hrtime.bigint()) / 1e6;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
};

function profile(name: string, chain: Chain, inputShape: number[]): void {
  const inputSize = inputShape.reduce((a, b) => a * b, 1);
  const n = 2048;
  const rng = new Rng(1);
  const x = new Float32Array(n * inputSize);
  for (let i = 0; i < x.length; i++) x[i] = rng.normal();
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) labels[i] = i % 10;
  const ds = createDataset({ name: "synthetic", inputShape, x, labels, classes: 10 });
  const loader = new BatchLoader(ds, { batchSize, dtype });
  const objective = createObjective("logistic");
  const w = chain.initParams(1);
  const grad = chain.dtype === "float32" ? new Float32Array(chain.paramSize) : new Float64Array(chain.paramSize);
  const opt = sgd({ lr: 0.01, momentum: 0.9 });
  let optState = opt.init(w);
  const times = new Map<string, number[]>();
  const add = (k: string, ms: number) => {
    const a = times.get(k);
    if (a) a.push(ms);
    else times.set(k, [ms]);
  };
  const label = (i: number, c: Component) => `${String(i).padStart(2)} ${c.type}`;
  const order = rng.permutation(n);
  const batches = loader.batchCount(n);
  const ws = chain.workspace(batchSize);
  for (let s = 0; s < steps + 5; s++) {
    const rec = s >= 5;
    const cur = new Map<string, number>();
    const put = (k: string, ms: number) => cur.set(k, (cur.get(k) ?? 0) + ms);
    const t0 = now();
    const batch = loader.batch(s % batches, order);
    const t1 = now();
    put("batch gather", t1 - t0);
    // Forward, as runForward but timed per component.
    let t = now();
    runForward(chain, w, batch.x, batch.size, true, undefined, false); // includes the input copy
    put("forward (all, incl. input copy)", now() - t);
    // Re-run the forward per component to time each (same inputs, same results).
    const ctx = componentContext(chain, batchSize, true, false);
    chain.components.forEach((c, i) => {
      const io = ws.io[i];
      t = now();
      c.forward(ctx, io);
      put(`fwd ${label(i, c)}`, now() - t);
    });
    const k = chain.components.length;
    const output = ws.activations[k];
    const slope = ws.slopes[0].subarray(0, output.length);
    t = now();
    objective.loss.evaluate(output, batch, chain.outputSize, slope);
    put("loss + slope", now() - t);
    t = now();
    let dy: FloatArray = slope;
    let which = 0;
    // As backwardFrom (src/oracles/first-order.ts): nothing below the first component with parameters.
    const stop = chain.components.findIndex((c) => c.paramSize > 0);
    for (let i = k - 1; i >= stop; i--) {
      const c = chain.components[i];
      const io = ws.io[i];
      io.params = chain.paramBlock(w, i);
      const target = i === stop ? null : ws.slopes[1 - which].subarray(0, batchSize * c.inputSize);
      const tc = now();
      c.backward(ctx, io, dy, target, c.paramSize > 0 ? chain.paramBlock(grad, i) : null);
      put(`bwd ${label(i, c)}`, now() - tc);
      if (target) {
        dy = target;
        which = 1 - which;
      }
    }
    put("backward (all)", now() - t);
    t = now();
    const gn = norm2Of(backend, grad.length, grad);
    put("grad norm (trainer)", now() - t);
    // As Trainer.trainStep: the optimizer's fused update-and-apply when it has one, else the update,
    // then apply-and-check (unfused with --unfused, to see each pass).
    t = now();
    const fusedFinite = unfused ? null : (opt.applyFused?.(grad, optState, w, { step: s, backend }) ?? null);
    if (fusedFinite !== null) {
      put("update + apply + check (fused)", now() - t);
      if (!fusedFinite || !Number.isFinite(gn)) throw new Error("non-finite");
    } else {
      optState = opt.update(grad, optState, w, { step: s, backend });
      put("optimizer update", now() - t);
      t = now();
      applyUpdates(w, grad, backend);
      put("apply updates", now() - t);
      t = now();
      if (!allFiniteOf(backend, w.length, w) || !Number.isFinite(gn)) throw new Error("non-finite");
      put("allFinite(w) (trainer)", now() - t);
    }
    if (rec) for (const [key, v] of cur) add(key, v);
  }
  // The parts of a step (the per-component rows are inside forward/backward (all)).
  let total = 0;
  for (const [key, v] of times) if (!/^(fwd|bwd) /.test(key)) total += median(v);
  process.stdout.write(
    `\n${name}: batch ${batchSize}, ${chain.dtype}, ${backend!.name} ${backend!.threads} thread(s), ${chain.paramSize} params; step ≈ ${total.toFixed(2)} ms (sum of medians)\n`,
  );
  for (const [key, v] of times) process.stdout.write(`  ${key.padEnd(34)} ${median(v).toFixed(3).padStart(9)} ms\n`);
}

for (const m of models) {
  const spec = m === "mlp" ? mlp({ input: [1, 28, 28] }) : convnet();
  const chain = createChain(spec, { dtype, backend });
  profile(m, chain, m === "mlp" ? [1, 28, 28] : [3, 32, 32]);
}
