// Tightness of the certificates (docs/certificates.md): certificate / best witness per architecture
// and depth, for the "corrected" Algorithm 1 and the "tight" variant, and the gain of the tight
// variant on the MNIST MLP and the ConvNet presets. Run: node dist/bench/certify-tightness.js [--quick]
import { certifyObjective, tightnessReport } from "../src/certify/index.js";
import { createChain } from "../src/chain/chain.js";
import { getPreset } from "../src/chain/presets.js";
import type { ModelSpecInput } from "../src/chain/spec.js";
import { createObjective } from "../src/objectives/index.js";

const quick = process.argv.includes("--quick");
const fmt = (v: number): string => (v === Infinity ? "∞" : v.toPrecision(3));

// 1. Gain of the tight variant on the presets (papers' setting: R_t = 1, whole batch of norm 1, N = 128).
console.log("## Gain corrected/tight on presets (R = 1, ‖X₀‖ = 1, N = 128, logistic)");
for (const [name, opts] of [
  ["mlp", {}],
  ["mlp", { activation: "softplus" }],
  ["convnet", {}],
  ["convnet", { activation: "softplus" }],
] as const) {
  const spec = getPreset(name, opts);
  if (name === "convnet" && "activation" in opts)
    spec.layers = spec.layers.map((l) => (l.type === "maxPool2d" ? { ...l, type: "avgPool2d" as const } : l));
  const chain = createChain(spec);
  const obj = createObjective("logistic");
  const base = { radii: 1, batch: 128, inputNorm: 1 };
  const a = certifyObjective(chain, obj, { ...base, variant: "corrected" });
  const b = certifyObjective(chain, obj, { ...base, variant: "tight" });
  console.log(
    `${name} ${JSON.stringify(opts)}: m ${fmt(a.chain.bound)}→${fmt(b.chain.bound)} (×${fmt(a.chain.bound / b.chain.bound)}), ` +
      `ℓ ${fmt(a.chain.lipschitz)}→${fmt(b.chain.lipschitz)} (×${fmt(a.chain.lipschitz / b.chain.lipschitz)}), ` +
      `L ${fmt(a.chain.smoothness)}→${fmt(b.chain.smoothness)} (×${fmt(a.chain.smoothness / b.chain.smoothness)}), ` +
      `L_F ${fmt(a.smoothness)}→${fmt(b.smoothness)} (×${fmt(a.smoothness / b.smoothness)})`,
  );
}

// 2. Tightness ratios against witnesses.
const mlpOf = (depth: number, act: string, width = 8, input = 6): ModelSpecInput => {
  const layers: ModelSpecInput["layers"] = [];
  for (let d = 0; d < depth - 1; d++) layers.push({ type: "dense", units: width }, { type: act } as ModelSpecInput["layers"][number]);
  layers.push({ type: "dense", units: 3 });
  return { input: [input], layers };
};
const entries: { name: string; spec: ModelSpecInput }[] = [];
for (const act of ["softplus", "tanh"])
  for (let depth = 1; depth <= (quick ? 3 : 5); depth++) entries.push({ name: `mlp-${act}-w8`, spec: mlpOf(depth, act) });
entries.push({ name: "mnist-mlp-softplus (784-512-512-10)", spec: getPreset("mlp", { activation: "softplus" }) });
const smoothConvnet = getPreset("convnet", { activation: "softplus" });
smoothConvnet.layers = smoothConvnet.layers.map((l) => (l.type === "maxPool2d" ? { ...l, type: "avgPool2d" as const } : l));
entries.push({ name: "convnet-softplus-avgpool (CIFAR)", spec: smoothConvnet });
const batch = 4;
console.log(`\n## Tightness certificate/witness (R = 1, ‖X₀‖ = 1, N = ${batch}, logistic)`);
console.log("| architecture | τ | variant | m | ℓ | L | ℓ_F | L_F |");
console.log("|---|---|---|---|---|---|---|---|");
for (const e of entries) {
  const big = e.name.includes("mnist") || e.name.includes("convnet");
  const t0 = Date.now();
  const rows = tightnessReport([e], {
    radii: 1,
    batch,
    inputNorm: 1,
    starts: big || quick ? 2 : 4,
    steps: big || quick ? 4 : 12,
    power: big ? 6 : 8,
    variants: ["corrected", "tight"],
  });
  for (const r of rows) {
    const q = r.ratio;
    console.log(
      `| ${r.name} | ${r.depth} | ${r.variant} | ${fmt(q.bound)} | ${fmt(q.lipschitz)} | ${fmt(q.smoothness)} | ${fmt(q.objectiveLipschitz ?? NaN)} | ${fmt(q.objectiveSmoothness ?? NaN)} |`,
    );
  }
  if (big) console.error(`  (${e.name}: ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}
