// The playground's whole state, kept in the page's URL query string (so a view can be shared):
// parsing never throws — a missing or malformed field falls back to its default and is reported.

/** Data sets of the page: 2-D toy sets, a regression set, the MNIST subset, a file the user picks. */
export const DATASETS = ["circles", "xor", "moons", "spirals", "sine", "mnist", "file"] as const;
export type DatasetName = (typeof DATASETS)[number];
export const ACTIVATIONS = ["softplus", "smoothRelu", "relu", "tanh"] as const;
export type ActivationName = (typeof ACTIVATIONS)[number];
export const POOLS = ["none", "avg", "max"] as const;
export type PoolName = (typeof POOLS)[number];

/** Everything that determines what the page computes (all of it deterministic given `seed`). */
export interface PlaygroundState {
  dataset: DatasetName;
  /** Number of training samples (full-batch gradient descent). */
  samples: number;
  /** Hidden widths, e.g. [8, 8]. */
  widths: number[];
  activation: ActivationName;
  /** μ of smoothRelu. */
  mu: number;
  /** 2×2 pooling before the dense layers (image data only). */
  pool: PoolName;
  /** Radius R of the parameter set B_R = {‖u_t‖ ≤ R}. */
  radius: number;
  /** The user's learning rate. */
  lr: number;
  /** The multiple of the certified step of the third run. */
  multiple: number;
  /** Gradient steps of each run. */
  steps: number;
  /** Project every run onto B_R after each step (the certified run always is). */
  project: boolean;
  /** ε of the smoothing panel. */
  epsilon: number;
  /** Wall-time budget of each optimizer of the comparison, in seconds. */
  budget: number;
  /** Mode strengths s_r of the deep linear network. */
  strengths: number[];
  seed: number;
}

export const DEFAULT_STATE: PlaygroundState = {
  dataset: "circles",
  samples: 100,
  widths: [8, 8],
  activation: "softplus",
  mu: 0.1,
  pool: "none",
  radius: 1,
  lr: 0.1,
  multiple: 1000,
  steps: 150,
  project: true,
  epsilon: 0.1,
  budget: 1.5,
  strengths: [3, 2, 1, 0.5],
  seed: 0,
};

type Key = keyof PlaygroundState;
/** Short URL parameter names. */
const PARAM: Record<Key, string> = {
  dataset: "data",
  samples: "n",
  widths: "widths",
  activation: "act",
  mu: "mu",
  pool: "pool",
  radius: "R",
  lr: "lr",
  multiple: "mult",
  steps: "steps",
  project: "proj",
  epsilon: "eps",
  budget: "budget",
  strengths: "modes",
  seed: "seed",
};

function numberIn(text: string, min: number, max: number, integer = false): number | null {
  const v = Number(text);
  if (!Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v)) || text.trim() === "") return null;
  return v;
}

function listIn(text: string, min: number, max: number, integer: boolean, maxLength: number): number[] | null {
  const parts = text.split(",").map((p) => numberIn(p, min, max, integer));
  if (parts.length === 0 || parts.length > maxLength || parts.some((p) => p === null)) return null;
  return parts as number[];
}

/** Parses one field's text; null when invalid. */
export function parseField<K extends Key>(key: K, text: string): PlaygroundState[K] | null {
  const v = ((): unknown => {
    switch (key) {
      case "dataset":
        return (DATASETS as readonly string[]).includes(text) ? text : null;
      case "activation":
        return (ACTIVATIONS as readonly string[]).includes(text) ? text : null;
      case "pool":
        return (POOLS as readonly string[]).includes(text) ? text : null;
      case "samples":
        return numberIn(text, 8, 1000, true);
      case "widths":
        return text.trim() === "" ? [] : listIn(text, 1, 256, true, 4);
      case "mu":
        return numberIn(text, 1e-6, 10);
      case "radius":
        return numberIn(text, 1e-3, 100);
      case "lr":
        return numberIn(text, 1e-8, 100);
      case "multiple":
        return numberIn(text, 1, 1e7);
      case "steps":
        return numberIn(text, 1, 2000, true);
      case "project":
        return text === "1" ? true : text === "0" ? false : null;
      case "epsilon":
        return numberIn(text, 1e-4, 10);
      case "budget":
        return numberIn(text, 0.1, 30);
      case "strengths":
        return listIn(text, 0.05, 10, false, 6);
      case "seed":
        return numberIn(text, 0, 2 ** 31, true);
      default:
        return null;
    }
  })();
  return v as PlaygroundState[K] | null;
}

/** The state of a query string; `problems` names the fields that fell back to their defaults. */
export function stateFromQuery(query: string): { state: PlaygroundState; problems: string[] } {
  const params = new URLSearchParams(query);
  const state: PlaygroundState = { ...DEFAULT_STATE, widths: [...DEFAULT_STATE.widths], strengths: [...DEFAULT_STATE.strengths] };
  const problems: string[] = [];
  for (const key of Object.keys(PARAM) as Key[]) {
    const text = params.get(PARAM[key]);
    if (text === null) continue;
    const v = parseField(key, text);
    if (v === null) problems.push(`${PARAM[key]}=${text}`);
    else (state as unknown as Record<Key, unknown>)[key] = v;
  }
  return { state, problems };
}

/** Formats one field for the URL and the form. */
export function fieldText(key: Key, state: PlaygroundState): string {
  const v = state[key];
  if (Array.isArray(v)) return v.join(",");
  if (typeof v === "boolean") return v ? "1" : "0";
  return String(v);
}

/** The query string of a state (every field, so a shared link does not depend on the defaults). */
export function stateToQuery(state: PlaygroundState): string {
  const params = new URLSearchParams();
  for (const key of Object.keys(PARAM) as Key[]) params.set(PARAM[key], fieldText(key, state));
  return params.toString();
}
