import type { PageData } from "./data.js";
import type { CertificateView, DeepLinearView, OptimizerCurve, SmoothingView } from "./engine.js";
import type { PlaygroundState } from "./state.js";

/** Messages of the page to its worker. */
export type ToWorker = { kind: "compute"; state: PlaygroundState; mnist: ArrayBuffer | null; file: PageData | null };

/** A training run as sent to the page. */
export interface RunView {
  name: string;
  lr: number;
  losses: number[];
  curvature: [number, number][];
  curvatureKind: "hessian" | "gauss-newton";
  diverged: boolean;
  reason: string;
}

/** Messages of the worker to the page, in the order they are computed. */
export type FromWorker =
  | { kind: "data"; points: { x1: number; x2: number; label: string }[]; size: number; inputShape: number[]; task: string }
  | { kind: "certificate"; view: CertificateView }
  | { kind: "training"; runs: RunView[]; weights: Float64Array; tensors: { name: string; shape: number[]; offset: number; size: number }[] }
  | { kind: "smoothing"; view: SmoothingView }
  | { kind: "optimizers"; curves: OptimizerCurve[] }
  | { kind: "deepLinear"; view: DeepLinearView }
  | { kind: "done"; ms: number }
  | { kind: "error"; stage: string; message: string };
