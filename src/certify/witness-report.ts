import { createChain } from "../chain/chain.js";
import type { ModelSpecInput } from "../chain/spec.js";
import type { Objective } from "../objectives/objective.js";
import type { ObjectiveCertificate } from "./certificate.js";
import { type WitnessOptions, witnessChain, witnessObjective } from "./witness.js";

// The per-layer tightness report of `chainopt analyze --witness`: for each layer t, the certified
// constants (m_t, ℓ_t, L_t) of u ↦ x_t on B_R next to witnesses (lower bounds found by search,
// certify/witness.ts) for the same map — the chain cut after layer t — and their ratio
// certificate / witness (≥ 1 for a valid certificate, up to float64 rounding); then ℓ_F and L_F of
// the objective.

/** Certificate, witness and ratio of one quantity. */
export interface WitnessCell {
  readonly certificate: number;
  readonly witness: number;
  /** certificate / witness (∞ when the witness is 0 and the certificate is not). */
  readonly ratio: number;
}

/** One layer of {@link layerWitnessReport}. */
export interface LayerWitnessRow {
  readonly layer: number;
  readonly types: readonly string[];
  readonly bound: WitnessCell;
  readonly lipschitz: WitnessCell;
  readonly smoothness: WitnessCell;
}

/** The whole report. */
export interface LayerWitnessReport {
  readonly layers: readonly LayerWitnessRow[];
  readonly objective: { readonly lipschitz: WitnessCell; readonly smoothness: WitnessCell; readonly hessianEigenvalue: number };
}

const cell = (certificate: number, witness: number): WitnessCell => ({
  certificate,
  witness,
  ratio: witness > 0 ? certificate / witness : certificate === 0 ? 1 : Infinity,
});

/**
 * Witnesses per layer of the certificate `cert` of `spec` (layers with parameters; layer 0, a
 * parameter-free prefix, is skipped). `options` are those of the witness searches (batch, input
 * norm, radii, and the search budget: starts, ascent steps, power iterations); they must match the
 * certificate's batch, input norm and radii.
 */
export function layerWitnessReport(
  spec: ModelSpecInput,
  objective: Objective,
  cert: ObjectiveCertificate,
  options: WitnessOptions,
): LayerWitnessReport {
  const full = createChain(spec, { dtype: "float64" });
  const radii = cert.chain.radii;
  const rows: LayerWitnessRow[] = [];
  let t = 0;
  for (const layer of full.layers) {
    if (layer.biaffine < 0) continue;
    const last = Math.max(layer.biaffine, ...layer.nonlinear);
    const prefix = createChain({ ...spec, layers: spec.layers.slice(0, last + 1) }, { dtype: "float64" });
    const w = witnessChain(prefix, { ...options, radii: radii.slice(0, t + 1) });
    const lc = cert.chain.layers.find((l) => l.biaffineIndex === layer.biaffine);
    if (!lc) throw new Error(`witness report: the certificate has no layer for component ${layer.biaffine}`);
    rows.push({
      layer: lc.layer,
      types: lc.types,
      bound: cell(lc.bound, w.bound),
      lipschitz: cell(lc.lipschitz, w.lipschitz),
      smoothness: cell(lc.smoothness, w.smoothness),
    });
    t++;
  }
  const ow = witnessObjective(full, objective, { ...options, radii: [...radii] });
  return {
    layers: rows,
    objective: {
      lipschitz: cell(cert.lipschitz, ow.lipschitz),
      smoothness: cell(cert.smoothness, ow.smoothness),
      hessianEigenvalue: ow.hessianEigenvalue,
    },
  };
}
