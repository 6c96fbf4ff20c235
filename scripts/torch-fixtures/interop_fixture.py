#!/usr/bin/python3
"""Produces the PyTorch interop fixtures of chainopt (test/fixtures/torch/).

Run with Debian's python3-torch (1.13; `apt-get install python3-torch`), from the repository root:

    /usr/bin/python3 scripts/torch-fixtures/interop_fixture.py [OUT_DIR]

It trains a small MLP and a small ConvNet (conv2d, relu, maxpool, flatten, linear) on synthetic
data (fixed seeds), then writes, for each model NAME in {mlp, convnet}:

  NAME.safetensors        the nn.Sequential state_dict (keys `0.weight`, `0.bias`, `4.weight`, ...)
  NAME_eval.safetensors   an evaluation batch: `x` (F32, NCHW / N x features), `labels` (I64),
                          `logits` (F32, PyTorch's outputs on x); metadata `accuracy`, `spec`

and, for the optimizer-replay test (a few steps from the same weights on the same batches):

  mlp_steps.safetensors   `batch.<k>.x`, `batch.<k>.labels` for k = 0..STEPS-1, and the parameters
                          after the steps: `sgd.<torch name>`, `adam.<torch name>` (start: mlp_init)
  mlp_init.safetensors    the MLP's weights before training (the start of those steps)

plus manifest.json (model specs in chainopt's format, accuracies, hyper-parameters).

Debian's python3-torch has no `safetensors` package, so the files are written by hand with
struct + json, following the format: an 8-byte little-endian unsigned header length N, N bytes
of JSON header ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}),
padded with spaces so that the data start at a multiple of 8, then the raw little-endian data.
"""

import json
import os
import struct
import sys

import torch
import torch.nn as nn

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join("test", "fixtures", "torch")
DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8"}


def save_safetensors(path, tensors, metadata=None):
    """Writes {name: tensor} as safetensors (tensors sorted by element size, then name)."""
    items = sorted(tensors.items(), key=lambda kv: (-kv[1].element_size(), kv[0]))
    header, chunks, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, t in items:
        t = t.detach().contiguous().cpu()
        data = t.numpy().astype(t.numpy().dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)


def synthetic(n, shape, classes, gen):
    """Inputs N(0, 1); labels from a fixed random linear teacher (argmax), so that they are learnable."""
    x = torch.randn(n, *shape, generator=gen)
    teacher = torch.randn(classes, x[0].numel(), generator=gen)
    labels = (x.reshape(n, -1) @ teacher.T).argmax(dim=1)
    return x, labels


def train(model, x, labels, steps, lr):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), labels).backward()
        opt.step()


def evaluate(model, x, labels):
    with torch.no_grad():
        logits = model(x)
    return logits, float((logits.argmax(dim=1) == labels).float().mean())


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    manifest = {"torch_version": torch.__version__, "models": {}}

    # --- MLP: spec layer i <-> Sequential module i -------------------------------------------
    mlp_spec = {
        "input": [10],
        "layers": [{"type": "dense", "units": 16}, {"type": "relu"}, {"type": "dense", "units": 16}, {"type": "relu"}, {"type": "dense", "units": 3}],
    }
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    init_state = {k: v.clone() for k, v in mlp.state_dict().items()}
    save_safetensors(os.path.join(OUT, "mlp_init.safetensors"), init_state, {"format": "pt"})

    # A few optimizer steps from the initial weights on fixed batches (cross-entropy, mean).
    gen = torch.Generator().manual_seed(1)
    steps, batch = 3, 8
    xs, _ = synthetic(steps * batch, [10], 3, gen)
    ys = torch.randint(0, 3, (steps * batch,), generator=gen)
    step_tensors = {}
    for k in range(steps):
        step_tensors[f"batch.{k}.x"] = xs[k * batch : (k + 1) * batch]
        step_tensors[f"batch.{k}.labels"] = ys[k * batch : (k + 1) * batch]
    hyper = {"sgd": {"lr": 0.1, "momentum": 0.9}, "adam": {"lr": 0.01, "betas": [0.9, 0.999], "eps": 1e-8}}
    for name, make in (
        ("sgd", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
        ("adam", lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.999), eps=1e-8)),
    ):
        model = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
        model.load_state_dict(init_state)
        opt = make(model.parameters())
        for k in range(steps):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(step_tensors[f"batch.{k}.x"]), step_tensors[f"batch.{k}.labels"])
            loss.backward()
            opt.step()
        for key, v in model.state_dict().items():
            step_tensors[f"{name}.{key}"] = v
    save_safetensors(os.path.join(OUT, "mlp_steps.safetensors"), step_tensors, {"steps": steps, "batch": batch})

    gen = torch.Generator().manual_seed(2)
    x, labels = synthetic(576, [10], 3, gen)
    train(mlp, x[:512], labels[:512], 150, 0.01)
    logits, acc = evaluate(mlp, x[512:], labels[512:])
    save_safetensors(os.path.join(OUT, "mlp.safetensors"), mlp.state_dict(), {"format": "pt"})
    save_safetensors(
        os.path.join(OUT, "mlp_eval.safetensors"),
        {"x": x[512:], "labels": labels[512:], "logits": logits},
        {"accuracy": repr(acc), "spec": json.dumps(mlp_spec)},
    )
    manifest["models"]["mlp"] = {"spec": mlp_spec, "accuracy": acc, "eval_size": 64}
    manifest["steps"] = {"model": "mlp", "init": "mlp_init.safetensors", "file": "mlp_steps.safetensors", "steps": steps, "batch": batch, "loss": "cross_entropy (mean)", **hyper}

    # --- ConvNet: conv2d, relu, maxpool, flatten, linear ---------------------------------------
    conv_spec = {
        "input": [1, 8, 8],
        "layers": [
            {"type": "conv2d", "filters": 4, "kernel": 3, "padding": 1},
            {"type": "relu"},
            {"type": "maxPool2d", "size": 2},
            {"type": "flatten"},
            {"type": "dense", "units": 3},
        ],
    }
    torch.manual_seed(3)
    convnet = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3))
    gen = torch.Generator().manual_seed(4)
    x, labels = synthetic(576, [1, 8, 8], 3, gen)
    train(convnet, x[:512], labels[:512], 150, 0.01)
    logits, acc = evaluate(convnet, x[512:], labels[512:])
    save_safetensors(os.path.join(OUT, "convnet.safetensors"), convnet.state_dict(), {"format": "pt"})
    save_safetensors(
        os.path.join(OUT, "convnet_eval.safetensors"),
        {"x": x[512:], "labels": labels[512:], "logits": logits},
        {"accuracy": repr(acc), "spec": json.dumps(conv_spec)},
    )
    manifest["models"]["convnet"] = {"spec": conv_spec, "accuracy": acc, "eval_size": 64}

    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"wrote {OUT}: mlp accuracy {manifest['models']['mlp']['accuracy']:.4f}, convnet accuracy {acc:.4f}")


if __name__ == "__main__":
    main()
