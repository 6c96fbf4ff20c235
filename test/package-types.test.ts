import { rmSync } from "node:fs";
import { after, describe, it } from "node:test";
import { consumerProject, typecheck } from "./consumer-helpers.js";

// The package's exports as a user sees them: a consumer project (strict TypeScript,
// `moduleResolution: NodeNext`, `skipLibCheck: false`, TypeScript's default libraries, no
// @types/node) imports `chainopt` and
// `chainopt/node` by name through package.json's exports map and type-checks.

const CONSUMER = `import { type Chain, createChain, fit, type FitOptions, objectives, optim, portableBackend, presets, secondOrder, certify, smoothing, train } from "chainopt";
import * as core from "chainopt";
import * as node from "chainopt/node";

export const chain: Chain = createChain(presets.mlp({ input: [4], widths: [3], classes: 2 }), { dtype: "float64", backend: portableBackend });
export const options: FitOptions = { objective: objectives.createObjective("logistic"), optimizer: optim.adam({ lr: 1e-3 }), batchSize: 8, epochs: 1, seed: 0 };
export const entry: typeof fit = fit;
export const steppers: typeof secondOrder.createSecondOrderStepper = secondOrder.createSecondOrderStepper;
export const certificate: typeof certify.certifyObjective = certify.certifyObjective;
export const smooth: typeof smoothing.smoothModelSpec = smoothing.smoothModelSpec;
export const trainer: typeof train.Trainer = train.Trainer;
export const everything: [typeof core, typeof node] = [core, node];
export const runDir: typeof node.fitToRunDir = node.fitToRunDir;
export const backend: typeof node.bestBackend = node.bestBackend;
`;

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("package types", () => {
  it("chainopt and chainopt/node type-check in a strict NodeNext consumer without @types/node", () => {
    const dir = consumerProject({ "consumer.ts": CONSUMER }, { types: [], lib: undefined, noEmit: true });
    dirs.push(dir);
    typecheck(dir);
  });
});
