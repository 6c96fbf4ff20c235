import type { Chain } from "../chain/chain.js";
import type { FloatArray } from "../core/dtype.js";
import { type Dataset, inputSizeOf } from "../data/dataset.js";
import type { Objective } from "../objectives/objective.js";
import { certifiedStep, certifyObjective, layerNorms, localRadii, projectOntoBall, resolveRadii } from "./certificate.js";

// Projected SGD with the certified step (`chainopt train --step-size certified`, docs/certificates.md):
// gradient steps of size 1/L_F, where L_F is the smoothness constant of the training objective on
// the ball B_R = {u : ‖u_t‖ ≤ R_t} (certificate.ts), each followed by the projection onto B_R, so
// that every iterate stays where the constant holds (the step 1/L_F is the one of the descent lemma,
// Nesterov, "Introductory Lectures on Convex Optimization", Lemma 1.2.3). This module holds the
// run's state, its re-certification on local balls, and its records; it writes nothing (the run
// directory is src/node's).

/** The options of a certified run (the fields of a training configuration this module reads). */
export interface CertifiedRunOptions {
  /** One R for every parameterized layer (default 1). */
  radius?: number;
  /** R_t per parameterized layer (instead of `radius`). */
  radii?: number[];
  batchSize: number;
  loss: string;
  /** δ of the local ball {u : ‖u_t‖ ≤ min(R_t, ‖w_t‖ + δ)} (default max R_t / 10). */
  localDelta?: number;
}

/** What a certified run reports (`chainopt train --step-size certified`). */
export interface CertifiedSummary {
  /** The certified step 1/L_F on B_R (the smaller of those for the full and the last partial batch). */
  stepSize: number;
  /** L_F on B_R for a full batch. */
  smoothness: number;
  radii: number[];
  batch: number;
  /** The data set's largest sample norm (m_0 = √N · maxSampleNorm). */
  maxSampleNorm: number;
  /** The step size in use (the local one after a re-certification). */
  currentStepSize: number;
  /** The radii of the ball in use (local radii after a re-certification). */
  currentRadii: number[];
  /** The initialization lay outside B_R and was projected onto it before training. */
  initialProjection: boolean;
  /** Steps after which the projection changed w. */
  projections: number;
  /** Steps after which the iterate lay outside B_R itself (before its projection). */
  outsideGlobal: number;
  /** No step left B_R (outsideGlobal = 0). */
  stayedInside: boolean;
  recertifications: { epoch: number; radii: number[]; stepSize: number; smoothness: number }[];
}

/** The certified step's configuration and mutable state (current ball, step, counters). */
export interface CertifiedState {
  /** R_t of B_R. */
  radii: number[];
  batch: number;
  lastBatch: number;
  maxSampleNorm: number;
  /** √N · max ‖y_i‖ for regression targets (squared loss), else undefined (the loss's default). */
  maxTargetNorm: number | undefined;
  /** The certificate on B_R. */
  global: ReturnType<typeof certifiedStep>;
  stepSize: number;
  delta: number;
  current: { stepSize: number; radii: number[] };
  initialProjection: boolean;
  projections: number;
  outsideGlobal: number;
  epochProjections: number;
  /** Certifies on the ball of these radii: the step (min over the full and last batch size) and the certificate. */
  certify(radii: readonly number[]): { stepSize: number; result: ReturnType<typeof certifiedStep> };
  /** Projects w onto the current ball, counting. */
  project(w: FloatArray): void;
}

/**
 * The largest sample norm of a data set, and the largest target norm (regression with the squared
 * loss): m_0 = √N · max ‖x_i‖ bounds the norm of a batch of N samples (certificate.ts).
 */
export function dataNorms(train: Dataset, loss: string): { maxSampleNorm: number; maxTargetNorm: number | undefined } {
  const d = inputSizeOf(train);
  let maxSq = 0;
  for (let i = 0; i < train.size; i++) {
    let s2 = 0;
    for (let j = i * d; j < (i + 1) * d; j++) s2 += train.x[j] * train.x[j];
    maxSq = Math.max(maxSq, s2);
  }
  let maxTargetNorm: number | undefined;
  if (train.targets && loss === "squared") {
    const k = train.targetSize ?? 1;
    let m = 0;
    for (let i = 0; i < train.size; i++) {
      let s2 = 0;
      for (let j = i * k; j < (i + 1) * k; j++) s2 += train.targets[j] * train.targets[j];
      m = Math.max(m, s2);
    }
    maxTargetNorm = Math.sqrt(m);
  }
  return { maxSampleNorm: Math.sqrt(maxSq), maxTargetNorm };
}

/**
 * Certifies the objective on B_R for batches of this data set and builds the run's state. Throws
 * (naming --radius/--radii or the non-smooth components) when no step is certified.
 */
export function prepareCertified(options: CertifiedRunOptions, chain: Chain, objective: Objective, train: Dataset): CertifiedState {
  let radii: number[];
  try {
    radii = resolveRadii(chain, options.radii ?? options.radius ?? 1);
  } catch (e) {
    throw new Error(`${options.radii ? "--radii" : "--radius"}: ${(e as Error).message.replace(/^radii: /, "")}`);
  }
  const batch = Math.min(options.batchSize, train.size);
  const lastBatch = train.size % batch || batch;
  const { maxSampleNorm, maxTargetNorm: maxTarget } = dataNorms(train, options.loss);
  const optionsFor = (radii: readonly number[], n: number) => ({
    radii,
    batch: n,
    maxSampleNorm,
    targetNorm: maxTarget === undefined ? undefined : Math.sqrt(n) * maxTarget,
  });
  // Not smooth: name the components without a finite smoothness constant.
  const probe = certifyObjective(chain, objective, optionsFor(radii, batch));
  if (!(probe.smoothness < Infinity)) {
    const rough = probe.chain.layers.flatMap((l) =>
      l.parts.filter((p) => !(p.constants.smoothness < Infinity)).map((p) => `layers[${p.index}] (${p.type})`),
    );
    throw new Error(
      `--step-size certified: the objective is not smooth (L_F = ${probe.smoothness}${rough.length > 0 ? `: ${rough.join(", ")} ${rough.length > 1 ? "have" : "has"} no finite smoothness constant` : ""}), so no step size is certified; use smooth components (--activation softplus or tanh; softplus/smoothRelu and avgPool2d instead of relu and maxPool2d in a model spec), or smooth the model automatically with --smooth-epsilon`,
    );
  }
  const certify = (r: readonly number[]) => {
    const main = certifiedStep(chain, objective, optionsFor(r, batch));
    let stepSize = main.stepSize;
    // The last partial batch has its own certificate (the constants depend on N): take the smaller step.
    if (lastBatch !== batch) stepSize = Math.min(stepSize, certifiedStep(chain, objective, optionsFor(r, lastBatch)).stepSize);
    return { stepSize, result: main };
  };
  const g = certify(radii);
  const state: CertifiedState = {
    radii,
    batch,
    lastBatch,
    maxSampleNorm,
    maxTargetNorm: maxTarget,
    global: g.result,
    stepSize: g.stepSize,
    delta: options.localDelta ?? Math.max(...radii) / 10,
    current: { stepSize: g.stepSize, radii: [...radii] },
    initialProjection: false,
    projections: 0,
    outsideGlobal: 0,
    epochProjections: 0,
    certify,
    project(w: FloatArray) {
      const p = projectOntoBall(chain, w, state.current.radii);
      if (!p.inside) {
        state.projections++;
        state.epochProjections++;
      }
      if (p.norms.some((x, t) => x > state.radii[t])) state.outsideGlobal++;
    },
  };
  return state;
}

/** Projected SGD starts from the projection of the initialization onto B_R (in place); records whether it moved. */
export function projectInitialization(c: CertifiedState, chain: Chain, params: FloatArray): void {
  c.initialProjection = !projectOntoBall(chain, params, c.radii).inside;
}

/**
 * Re-certifies on the local ball {u : ‖u_t‖ ≤ min(R_t, ‖w_t‖ + δ)} around the iterate w and
 * switches to its step when larger (the local ball lies inside B_R, so the global step stays
 * valid). Returns the metrics record of the re-certification (`type: "recertify"`).
 */
export function recertify(
  c: CertifiedState,
  chain: Chain,
  w: FloatArray,
  at: { step: number; epoch: number },
): { type: "recertify"; step: number; epoch: number } & Record<string, unknown> {
  const radii = localRadii(chain, w, c.delta, c.radii);
  const local = c.certify(radii);
  c.current = { stepSize: Math.max(local.stepSize, c.stepSize), radii };
  return {
    type: "recertify",
    step: at.step,
    epoch: at.epoch,
    step_size: c.current.stepSize,
    smoothness: local.result.certificate.smoothness,
    radii,
    norms: layerNorms(chain, w),
  };
}

/** The summary of a certified run (for the events, summary.json and certificate.json). */
export function certifiedSummary(c: CertifiedState, recertifications: CertifiedSummary["recertifications"]): CertifiedSummary {
  return {
    stepSize: c.stepSize,
    smoothness: c.global.certificate.smoothness,
    radii: c.radii,
    batch: c.batch,
    maxSampleNorm: c.maxSampleNorm,
    currentStepSize: c.current.stepSize,
    currentRadii: c.current.radii,
    initialProjection: c.initialProjection,
    projections: c.projections,
    outsideGlobal: c.outsideGlobal,
    stayedInside: c.outsideGlobal === 0,
    recertifications,
  };
}

/** The re-certifications recorded in a run's metrics lines (`type: "recertify"`). */
export function recertificationsFromMetrics(metrics: readonly Record<string, unknown>[]): CertifiedSummary["recertifications"] {
  return metrics
    .filter((m) => m.type === "recertify")
    .map((m) => ({
      epoch: Number(m.epoch),
      radii: (m.radii as number[]) ?? [],
      stepSize: Number(m.step_size),
      smoothness: Number(m.smoothness),
    }));
}

const finiteOrNull = (x: number) => (Number.isFinite(x) ? x : null);

/**
 * certificate.json of a certified run, in the per-layer schema of src/report/schema.ts (so that
 * `chainopt report` draws m_t, ℓ_t, L_t and R_t per layer), plus the objective's constants, the
 * guarantee, and the run's outcome (projections, whether it stayed inside B_R, re-certifications).
 * The loss and guarantee may hold non-finite numbers: write the record through a JSON-safe conversion.
 */
export function certificateRecord(c: CertifiedState, summary: CertifiedSummary): Record<string, unknown> {
  const cert = c.global.certificate;
  const layers = cert.chain.layers.filter((l) => l.biaffineIndex >= 0);
  return {
    title: `Smoothness certificate on B_R (batch ${c.batch})`,
    layers: layers.map((l) => `${l.layer} ${l.types.join("+")}`),
    quantities: {
      radius: layers.map((l) => l.radius),
      bound: layers.map((l) => finiteOrNull(l.bound)),
      lipschitz: layers.map((l) => finiteOrNull(l.lipschitz)),
      smoothness: layers.map((l) => finiteOrNull(l.smoothness)),
    },
    log: true,
    variant: cert.chain.variant,
    batch: c.batch,
    lastBatch: c.lastBatch,
    inputNorm: cert.chain.inputNorm,
    maxSampleNorm: c.maxSampleNorm,
    objective: {
      lipschitz: finiteOrNull(cert.lipschitz),
      smoothness: finiteOrNull(cert.smoothness),
      bound: finiteOrNull(cert.bound),
      stepSize: c.stepSize,
      loss: cert.loss,
    },
    guarantee: c.global.guarantee,
    run: summary,
  };
}

/** The `extra` entries of a certified run's checkpoints: its current ball, step and counters. */
export function certifiedCheckpointExtra(certified: CertifiedState | null): Record<string, unknown> {
  if (!certified) return {};
  return {
    certified: {
      stepSize: certified.current.stepSize,
      radii: certified.current.radii,
      initialProjection: certified.initialProjection,
      projections: certified.projections,
      outsideGlobal: certified.outsideGlobal,
    },
  };
}

/** Restores a certified run's current ball, step and counters from a checkpoint's `extra` entries. */
export function restoreCertified(c: CertifiedState, extra: Record<string, unknown>): void {
  const saved = (extra as { certified?: Record<string, unknown> }).certified;
  if (!saved) throw new Error("checkpoint: the certified step's state (extra.certified) is missing");
  const radii = saved.radii as number[];
  if (!Array.isArray(radii) || radii.length !== c.radii.length) throw new Error("checkpoint: extra.certified.radii is malformed");
  c.current = { stepSize: Number(saved.stepSize), radii: radii.map(Number) };
  c.initialProjection = saved.initialProjection === true;
  c.projections = Number(saved.projections);
  c.outsideGlobal = Number(saved.outsideGlobal);
}
