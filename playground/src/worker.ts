/// <reference lib="webworker" />
import { dataFor } from "./data.js";
import { compareOptimizers, deepLinearView, makeProblem, smoothingView, trainRun } from "./engine.js";
import type { FromWorker, ToWorker } from "./protocol.js";

// The playground's Web Worker: everything heavy runs here, on chainopt's portable backend, so the
// page never freezes. The page starts a fresh worker for every new state (terminating the old one).

const post = (m: FromWorker, transfer: Transferable[] = []) => (self as unknown as DedicatedWorkerGlobalScope).postMessage(m, transfer);

function stage<T>(name: string, f: () => T): T | null {
  try {
    return f();
  } catch (e) {
    post({ kind: "error", stage: name, message: (e as Error).message });
    return null;
  }
}

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const t0 = performance.now();
  const { state, mnist, file } = event.data;
  const data = stage("data", () => dataFor(state, mnist, file));
  if (!data) return post({ kind: "done", ms: performance.now() - t0 });
  const points: { x1: number; x2: number; label: string }[] = [];
  if (data.inputShape.length === 1 && data.inputShape[0] === 2) {
    for (let i = 0; i < data.size; i++) {
      const label = data.labels ? `class ${data.labels[i]}` : `y=${(data.targets as Float64Array)[i].toFixed(2)}`;
      points.push({ x1: data.x[2 * i], x2: data.x[2 * i + 1], label });
    }
  }
  post({ kind: "data", points, size: data.size, inputShape: data.inputShape, task: data.labels ? `classification, ${data.classes} classes` : "regression" });
  const problem = stage("certificate", () => makeProblem(state, data));
  if (problem) {
    post({ kind: "certificate", view: problem.view });
    stage("training", () => {
      const cert = problem.certificate.stepSize;
      const every = Math.max(1, Math.floor(state.steps / 15));
      const runs = [];
      if (cert > 0) runs.push(trainRun(problem, state, `certified 1/L_F`, cert, true, every));
      runs.push(trainRun(problem, state, `your rate`, state.lr, state.project, cert > 0 ? 0 : every));
      if (cert > 0) runs.push(trainRun(problem, state, `${state.multiple}× certified`, state.multiple * cert, state.project, every));
      const weights = Float64Array.from(runs[0].finalWeights);
      const tensors: { name: string; shape: number[]; offset: number; size: number }[] = [];
      problem.chain.components.forEach((c, i) => {
        let o = problem.chain.paramOffsets[i];
        for (const p of c.params) {
          // PyTorch nn.Sequential names (src/node/torch-interop.ts): `<spec layer index>.<name>`.
          tensors.push({ name: `${i}.${p.name}`, shape: [...p.shape], offset: o, size: p.size });
          o += p.size;
        }
      });
      post({
        kind: "training",
        runs: runs.map(({ finalWeights: _, ...r }) => r),
        weights,
        tensors,
      });
    });
  }
  const sm = stage("smoothing", () => smoothingView(state, data));
  if (sm) post({ kind: "smoothing", view: sm });
  if (problem) {
    const curves = stage("optimizers", () => compareOptimizers(problem, state, () => performance.now()));
    if (curves) post({ kind: "optimizers", curves });
  }
  const dl = stage("deep linear network", () => deepLinearView(state));
  if (dl) post({ kind: "deepLinear", view: dl });
  post({ kind: "done", ms: performance.now() - t0 });
};
