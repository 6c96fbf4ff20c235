import type { LayerSpecInput, ModelSpecInput } from "./spec.js";

// Named model specs. Each builder returns a plain model spec (JSON-compatible), to be passed to
// `createChain` or saved; none allocates anything.

/** Element-wise activations a preset can use: a name, or a full spec (e.g. `{ type: "smoothRelu", mu: 0.1 }`). */
export type ActivationOption =
  | "relu"
  | "softplus"
  | "sigmoid"
  | "tanh"
  | Extract<LayerSpecInput, { type: "relu" | "softplus" | "sigmoid" | "tanh" | "smoothRelu" }>;

function activationSpec(a: ActivationOption): LayerSpecInput {
  return typeof a === "string" ? ({ type: a } as LayerSpecInput) : { ...a };
}

/** Options of {@link mlp}. */
export interface MlpOptions {
  /** Shape of one input sample (default [1, 28, 28], MNIST); non-flat inputs get a leading flatten. */
  input?: number[];
  /** Widths of the hidden dense layers (default [512, 512]). */
  widths?: number[];
  /** Number of outputs (default 10). */
  classes?: number;
  /** Activation after each hidden layer (default ReLU). */
  activation?: ActivationOption;
}

/** Multi-layer perceptron: [flatten], (dense w, activation) for each width, dense classes. */
export function mlp(options: MlpOptions = {}): ModelSpecInput {
  const input = options.input ?? [1, 28, 28];
  const widths = options.widths ?? [512, 512];
  const act = options.activation ?? "relu";
  const layers: LayerSpecInput[] = input.length > 1 ? [{ type: "flatten" }] : [];
  for (const units of widths) layers.push({ type: "dense", units }, activationSpec(act));
  layers.push({ type: "dense", units: options.classes ?? 10 });
  return { input: [...input], layers };
}

/** Options of {@link convnet}. */
export interface ConvnetOptions {
  /** Shape of one input sample, [C, H, W] (default [3, 32, 32], CIFAR-10; [1, 28, 28] works too). */
  input?: number[];
  /** Number of outputs (default 10). */
  classes?: number;
  /** Activation after each convolution (default ReLU). */
  activation?: ActivationOption;
}

/**
 * Small ConvNet: conv3x3-32 (padding 1), ReLU, max-pool 2, conv3x3-64 (padding 1), ReLU,
 * max-pool 2, flatten, dense classes.
 */
export function convnet(options: ConvnetOptions = {}): ModelSpecInput {
  const input = options.input ?? [3, 32, 32];
  const act = options.activation ?? "relu";
  return {
    input: [...input],
    layers: [
      { type: "conv2d", filters: 32, kernel: 3, padding: 1 },
      activationSpec(act),
      { type: "maxPool2d", size: 2 },
      { type: "conv2d", filters: 64, kernel: 3, padding: 1 },
      activationSpec(act),
      { type: "maxPool2d", size: 2 },
      { type: "flatten" },
      { type: "dense", units: options.classes ?? 10 },
    ],
  };
}

/** Options of {@link vgg16}. */
export interface Vgg16Options {
  /** Shape of one input sample, [C, H, W] with H, W ≥ 32 (default [3, 224, 224], ImageNet). */
  input?: number[];
  /** Number of outputs (default 1000). */
  classes?: number;
  /** VGG-smooth: softplus instead of ReLU and average instead of max pooling (default false). */
  smooth?: boolean;
  /** Batch-norm (no affine part) after each convolution, before the activation (default false). */
  batchNorm?: boolean;
  /** ε of the batch-norms (default 1e-5, PyTorch's). */
  epsilon?: number;
  /** End with a softmax after the last dense layer, as the paper's layer 16 (default false). */
  softmax?: boolean;
  /** Width of the two hidden dense layers (default 4096). */
  hidden?: number;
}

/** VGG-16's convolution widths, `M` marking a 2×2 pooling (Simonyan & Zisserman, 2015, config D). */
const VGG16_CONFIG: readonly (number | "M")[] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"];

/**
 * VGG-16 (Simonyan & Zisserman, 2015, configuration D; Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019), Sec. 5): 13
 * convolutions 3×3 with padding 1 in blocks 64,64,M,128,128,M,256×3,M,512×3,M,512×3,M (M a 2×2
 * pooling with stride 2), then dense 4096, 4096 and classes, an activation after every layer but
 * the last. `smooth` gives the paper's VGG-smooth (ReLU → softplus, max-pool → average pool,
 * Sec. 5.2); `batchNorm` inserts a batch-norm with the given ε after each convolution (as
 * torchvision's vgg16_bn). Dropout is omitted (it does not change the chain's function at
 * evaluation, and the analyses here are of the deterministic chain).
 */
export function vgg16(options: Vgg16Options = {}): ModelSpecInput {
  const input = options.input ?? [3, 224, 224];
  const smooth = options.smooth ?? false;
  const act: LayerSpecInput = smooth ? { type: "softplus" } : { type: "relu" };
  const pool: LayerSpecInput = smooth ? { type: "avgPool2d", size: 2 } : { type: "maxPool2d", size: 2 };
  const hidden = options.hidden ?? 4096;
  const layers: LayerSpecInput[] = [];
  for (const entry of VGG16_CONFIG) {
    if (entry === "M") {
      layers.push({ ...pool });
      continue;
    }
    layers.push({ type: "conv2d", filters: entry, kernel: 3, padding: 1 });
    if (options.batchNorm) layers.push({ type: "batchNorm", epsilon: options.epsilon ?? 1e-5 });
    layers.push({ ...act });
  }
  layers.push({ type: "flatten" }, { type: "dense", units: hidden }, { ...act }, { type: "dense", units: hidden }, { ...act });
  layers.push({ type: "dense", units: options.classes ?? 1000 });
  if (options.softmax) layers.push({ type: "softmax" });
  return { input: [...input], layers };
}

/** Options accepted by {@link getPreset} (each preset reads the fields it documents). */
export type PresetOptions = MlpOptions & ConvnetOptions & Vgg16Options;

const PRESETS: Record<string, (options: PresetOptions) => ModelSpecInput> = {
  mlp: (o) => mlp(o),
  convnet: (o) => convnet(o),
  vgg16: (o) => vgg16({ ...o, smooth: false, batchNorm: false }),
  "vgg16-smooth": (o) => vgg16({ ...o, smooth: true, batchNorm: false }),
  // torchvision's vgg16_bn (ReLU, max-pool), or the smoothed variant with `smooth: true`.
  "vgg16-bn": (o) => vgg16({ ...o, batchNorm: true }),
  // The paper's "VGG-batch": VGG-smooth with batch-norm (Roulet & Harchaoui, "An Elementary Approach to Convergence Guarantees…" (Allerton 2019), Sec. 5.2).
  "vgg16-smooth-bn": (o) => vgg16({ ...o, smooth: true, batchNorm: true }),
};

/** Names of the known presets. */
export function presetNames(): string[] {
  return Object.keys(PRESETS);
}

/** The model spec of a named preset; throws an Error listing the known names for an unknown one. */
export function getPreset(name: string, options: PresetOptions = {}): ModelSpecInput {
  const build = Object.hasOwn(PRESETS, name) ? PRESETS[name] : undefined;
  if (!build) throw new Error(`unknown preset "${name}"; known presets: ${presetNames().join(", ")}`);
  return build(options);
}
