import { z } from "zod";
import type { DnnPrimitives, PoolWindowGeometry } from "../core/backend.js";
import type { FloatArray } from "../core/dtype.js";
import { type ComponentContext, SpecError } from "./component.js";
import { requireImage, slidingExtent, toPair } from "./conv2d.js";
import { maxWindowCoverage } from "./smoothness.js";
import { paddingPair, pair } from "./spec-fields.js";

/** Spec schema of a pooling layer `{ type, size, stride, padding }` (stride defaults to the window size). */
export function poolSpecSchema<T extends string>(type: T) {
  return z.object({ type: z.literal(type), size: pair, stride: pair.optional(), padding: paddingPair.default(0) }).strict();
}

/** Specs of the pooling components (they share the window fields size, stride, padding). */
export interface PoolSpec {
  readonly type: string;
  readonly size: z.output<typeof pair>;
  readonly stride?: z.output<typeof pair>;
  readonly padding: z.output<typeof paddingPair>;
}

/** Window geometry shared by the pooling components (PyTorch's floor mode, no dilation). */
export interface PoolGeometry {
  readonly c: number;
  readonly h: number;
  readonly w: number;
  readonly kh: number;
  readonly kw: number;
  readonly sh: number;
  readonly sw: number;
  readonly ph: number;
  readonly pw: number;
  readonly oh: number;
  readonly ow: number;
}

/**
 * Window geometry of a pooling spec: stride defaults to the window size; padding must be at most
 * half the window (PyTorch's rule), so that every window holds at least one input pixel. `type`
 * names the layer in shape errors.
 */
export function poolGeometry(
  spec: Pick<PoolSpec, "size" | "stride" | "padding">,
  inputShape: readonly number[],
  field: string,
  type: string,
): PoolGeometry {
  const [c, h, w] = requireImage(field, type, inputShape);
  const [kh, kw] = toPair(spec.size);
  const [sh, sw] = toPair(spec.stride ?? spec.size);
  const [ph, pw] = toPair(spec.padding);
  if (2 * ph > kh || 2 * pw > kw) {
    throw new SpecError(`${field}.padding`, `padding [${ph}, ${pw}] must be at most half the window size [${kh}, ${kw}]`);
  }
  const oh = slidingExtent(`${field}.size`, "window height", h, kh, sh, ph);
  const ow = slidingExtent(`${field}.size`, "window width", w, kw, sw, pw);
  return { c, h, w, kh, kw, sh, sw, ph, pw, oh, ow };
}

/**
 * The windows of a pooling geometry clipped to the input, per axis: output row o reads the input
 * rows [hLo[o], hHi[o]) and output column o the columns [wLo[o], wHi[o]), where the unclipped
 * window of output o starts at o·s − p and holds k positions (padded positions are left out).
 * Computed once per shape ({@link Pool2d.windows}); every pooling kernel reads these bounds.
 */
export interface PoolWindows {
  readonly hLo: Int32Array;
  readonly hHi: Int32Array;
  readonly wLo: Int32Array;
  readonly wHi: Int32Array;
}

/** The windows of `count` outputs along one axis of `size` inputs: [max(0, o·s − p), min(size, o·s − p + k)). */
function clipAxis(size: number, count: number, kernel: number, stride: number, pad: number): { lo: Int32Array; hi: Int32Array } {
  const lo = new Int32Array(count);
  const hi = new Int32Array(count);
  for (let o = 0; o < count; o++) {
    const start = o * stride - pad;
    lo[o] = start < 0 ? 0 : start;
    hi[o] = start + kernel > size ? size : start + kernel;
  }
  return { lo, hi };
}

/** The clipped windows of a pooling geometry (see {@link PoolWindows}). */
export function poolWindows(g: PoolGeometry): PoolWindows {
  const rows = clipAxis(g.h, g.oh, g.kh, g.sh, g.ph);
  const cols = clipAxis(g.w, g.ow, g.kw, g.sw, g.pw);
  return { hLo: rows.lo, hHi: rows.hi, wLo: cols.lo, wHi: cols.hi };
}

/**
 * Base of the parameter-free 2-D pooling components (max, average, smooth max): the window
 * geometry, the shapes, and the window counts their smoothness constants use. Subclasses hold the
 * kernels (forward, backward, JVP, second-order backward) and the constants themselves.
 */
export abstract class Pool2d<Spec extends PoolSpec> {
  readonly role = "nonlinear" as const;
  readonly inputShape: readonly number[];
  readonly outputShape: readonly number[];
  readonly inputSize: number;
  readonly outputSize: number;
  readonly params = [];
  readonly paramSize = 0;
  readonly stateSize = 0;
  readonly geometry: PoolGeometry;
  /** The windows clipped to the input, computed once for this shape and read by every kernel. */
  readonly windows: PoolWindows;

  /** `geometryType` names the layer in shape errors (smoothMaxPool2d reports max pooling's). */
  constructor(
    readonly spec: Spec,
    inputShape: readonly number[],
    field: string = spec.type,
    geometryType: string = spec.type,
  ) {
    const g = poolGeometry(spec, inputShape, field, geometryType);
    this.geometry = g;
    this.windows = poolWindows(g);
    this.inputShape = inputShape;
    this.outputShape = [g.c, g.oh, g.ow];
    this.inputSize = g.c * g.h * g.w;
    this.outputSize = g.c * g.oh * g.ow;
  }

  initParams(): void {}
  initState(): void {}

  /** c = max_i |{o : i ∈ S_o}|, the largest number of windows holding one pixel (c_h·c_w, computed exactly). */
  windowCoverage(): number {
    const g = this.geometry;
    return maxWindowCoverage(g.h, g.oh, g.kh, g.sh, g.ph) * maxWindowCoverage(g.w, g.ow, g.kw, g.sw, g.pw);
  }

  /** The largest number of input pixels of a window, k_max (≤ kh·kw). */
  maxWindowSize(): number {
    const { hLo, hHi, wLo, wHi } = this.windows;
    let kh = 0;
    let kw = 0;
    for (let o = 0; o < hLo.length; o++) kh = Math.max(kh, hHi[o] - hLo[o]);
    for (let o = 0; o < wLo.length; o++) kw = Math.max(kw, wHi[o] - wLo[o]);
    return kh * kw;
  }

  /** The pooling's geometry on a batch, for the backend's primitives. */
  windowGeometry(batch: number): PoolWindowGeometry {
    return { batch, ...this.geometry };
  }

  /** The backend's oneDNN primitives when this call runs on them (float32, a geometry they support). */
  protected dnnFor(ctx: ComponentContext, x: FloatArray): DnnPrimitives | null {
    const dnn = ctx.backend.dnn;
    return dnn && x instanceof Float32Array && dnn.supportsPool(this.windowGeometry(ctx.batch)) ? dnn : null;
  }

  /**
   * Visits every window: `visit(o, base, hLo, hHi, wLo, wHi)` with o the output index and the
   * window's valid rows [hLo, hHi) and columns [wLo, wHi) of the plane starting at `base`. One call
   * per window: the tuned kernels (max and average pooling) inline this loop over {@link windows}.
   */
  protected forEachWindow(
    batch: number,
    visit: (o: number, base: number, hLo: number, hHi: number, wLo: number, wHi: number) => void,
  ): void {
    const { c, h, w, oh: OH, ow: OW } = this.geometry;
    const { hLo, hHi, wLo, wHi } = this.windows;
    const planes = batch * c;
    const plane = h * w;
    let o = 0;
    for (let q = 0; q < planes; q++) {
      const base = q * plane;
      for (let oh = 0; oh < OH; oh++) {
        const h0 = hLo[oh];
        const h1 = hHi[oh];
        for (let ow = 0; ow < OW; ow++) visit(o++, base, h0, h1, wLo[ow], wHi[ow]);
      }
    }
  }
}
