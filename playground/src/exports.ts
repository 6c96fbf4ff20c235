import type { RunView } from "./protocol.js";

// Exports of the playground: the model spec (JSON, for `chainopt analyze --model` and `chainopt
// train --model`), the weights of the certified run as safetensors under PyTorch nn.Sequential
// names (what `chainopt train --init` imports; see src/node/torch-interop.ts), metrics as CSV.

/**
 * Encodes float64 tensors in the safetensors format (https://huggingface.co/docs/safetensors):
 * an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}} padded
 * with spaces to a multiple of 8, then the raw little-endian data.
 */
export function encodeSafetensors(tensors: { name: string; shape: number[]; data: Float64Array }[], metadata: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: "F64", shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - (new TextEncoder().encode(json).length % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let p = 8 + head.length;
  for (const t of tensors) {
    for (let i = 0; i < t.data.length; i++) view.setFloat64(p + 8 * i, t.data[i], true);
    p += t.data.byteLength;
  }
  return out;
}

/** Metrics of the runs as CSV: run, learning rate, step, loss, top curvature where measured. */
export function metricsCsv(runs: RunView[]): string {
  const lines = ["run,lr,step,loss,top_eigenvalue"];
  for (const r of runs) {
    const curv = new Map(r.curvature);
    r.losses.forEach((l, step) => {
      const c = curv.get(step);
      lines.push(`"${r.name}",${r.lr},${step},${l},${c === undefined ? "" : c}`);
    });
  }
  return `${lines.join("\n")}\n`;
}

/** Starts a download of `data` as `name` (an object URL of the page's own origin). */
export function download(name: string, data: Uint8Array | string, type: string): void {
  const blob = new Blob([data as BlobPart], { type });
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
