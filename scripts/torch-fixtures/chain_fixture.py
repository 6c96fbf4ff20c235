#!/usr/bin/env python3
"""PyTorch cross-check fixture for chainopt's chains (test/torch-fixture.test.ts).

Builds two small fixed networks in float64 with fixed weights and a fixed batch, and records
their losses and gradients as computed by PyTorch's autograd:

- ``mlp``: Linear, BatchNorm1d (affine, training mode), Softplus(beta=2), Linear, Tanh, Linear,
  Sigmoid, Linear.
- ``convnet``: Conv2d (padding), BatchNorm2d (training mode, no affine), ReLU, MaxPool2d (stride,
  padding), Conv2d (rectangular kernel, stride, padding), Softplus, AvgPool2d (stride 1, padding,
  count_include_pad=True), Conv2d, BatchNorm2d (affine, training mode), Tanh, Flatten, Linear,
  Sigmoid, Linear.

For each network and each loss:
- ``logistic``: torch.nn.CrossEntropyLoss (mean over the batch) with integer labels;
- ``squared``: chainopt's squared loss (1/(2N)) Σ_i ‖ŷ_i − y_i‖² with real targets
  (src/objectives/squared.ts), i.e. 0.5 · MSELoss(reduction="sum") / N;
it records the loss, the gradient with respect to the parameters (flattened in chainopt's order:
components in order, each block row-major in PyTorch's layout, weight then bias, which is the order
of ``model.parameters()`` for these nn.Sequential models) and with respect to the input. The
running statistics of the batch-norms after one training-mode forward pass (momentum 0.1, unbiased
variance) are recorded too. The chainopt model spec of each network is written alongside.

Regenerate with (needs a Python with torch, e.g. Debian's python3-torch):

    python3 scripts/torch-fixtures/chain_fixture.py

(from the repository root; where ``python3`` on PATH lacks torch, e.g. under pyenv, run the system
one: ``/usr/bin/python3 scripts/torch-fixtures/chain_fixture.py``),
which rewrites test/fixtures/torch-chain.json (kept small: tiny shapes). Floats are written with
Python's shortest round-trip repr, so float64 values are exact.
"""

import json
import os

import torch
from torch import nn

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "test", "fixtures", "torch-chain.json")


def perturb_batchnorm(model, gen):
    # PyTorch initializes gamma = 1, beta = 0; random values make the affine gradients non-trivial.
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.affine:
            with torch.no_grad():
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=gen))


def mlp():
    model = nn.Sequential(
        nn.Linear(6, 8),
        nn.BatchNorm1d(8, eps=1e-5, momentum=0.1, affine=True),
        nn.Softplus(beta=2),
        nn.Linear(8, 5),
        nn.Tanh(),
        nn.Linear(5, 4),
        nn.Sigmoid(),
        nn.Linear(4, 3),
    )
    spec = {
        "input": [6],
        "layers": [
            {"type": "dense", "units": 8},
            {"type": "batchNorm", "epsilon": 1e-5, "momentum": 0.1, "affine": True},
            {"type": "softplus", "beta": 2},
            {"type": "dense", "units": 5},
            {"type": "tanh"},
            {"type": "dense", "units": 4},
            {"type": "sigmoid"},
            {"type": "dense", "units": 3},
        ],
    }
    return model, spec, [6], 3, 5


def convnet():
    model = nn.Sequential(
        nn.Conv2d(2, 3, kernel_size=3, padding=1),
        nn.BatchNorm2d(3, eps=1e-3, momentum=0.2, affine=False),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=2, stride=2, padding=1),
        nn.Conv2d(3, 4, kernel_size=(3, 2), stride=(2, 1), padding=(1, 1)),
        nn.Softplus(),
        nn.AvgPool2d(kernel_size=2, stride=1, padding=1, count_include_pad=True),
        nn.Conv2d(4, 3, kernel_size=2, stride=2),
        nn.BatchNorm2d(3, eps=1e-5, momentum=0.1, affine=True),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(3 * 2 * 3, 6),
        nn.Sigmoid(),
        nn.Linear(6, 4),
    )
    spec = {
        "input": [2, 9, 8],
        "layers": [
            {"type": "conv2d", "filters": 3, "kernel": 3, "padding": 1},
            {"type": "batchNorm", "epsilon": 1e-3, "momentum": 0.2},
            {"type": "relu"},
            {"type": "maxPool2d", "size": 2, "stride": 2, "padding": 1},
            {"type": "conv2d", "filters": 4, "kernel": [3, 2], "stride": [2, 1], "padding": [1, 1]},
            {"type": "softplus"},
            {"type": "avgPool2d", "size": 2, "stride": 1, "padding": 1},
            {"type": "conv2d", "filters": 3, "kernel": 2, "stride": 2},
            {"type": "batchNorm", "epsilon": 1e-5, "momentum": 0.1, "affine": True},
            {"type": "tanh"},
            {"type": "flatten"},
            {"type": "dense", "units": 6},
            {"type": "sigmoid"},
            {"type": "dense", "units": 4},
        ],
    }
    return model, spec, [2, 9, 8], 4, 4


def running_stats(model):
    out = []
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            out += m.running_mean.tolist() + m.running_var.tolist()
    return out


def flat(tensors):
    return torch.cat([t.reshape(-1) for t in tensors]).tolist()


def case(name, build, seed):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model, spec, input_shape, classes, batch = build()
    perturb_batchnorm(model, gen)
    model.train()
    x = torch.randn([batch] + input_shape, generator=gen)
    labels = torch.randint(0, classes, (batch,), generator=gen)
    targets = torch.randn(batch, classes, generator=gen)
    params = [p.detach().clone() for p in model.parameters()]
    names = [n for n, _ in model.named_parameters()]
    shapes = [list(p.shape) for p in model.parameters()]
    result = {
        "spec": spec,
        "batch": batch,
        "x": x.reshape(-1).tolist(),
        "labels": labels.tolist(),
        "targets": targets.reshape(-1).tolist(),
        "paramNames": names,
        "paramShapes": shapes,
        "params": flat(params),
        "losses": {},
    }
    for loss_name in ("logistic", "squared"):
        # Fresh running statistics for each loss, so both record one training step from the init.
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.reset_running_stats()
        model.zero_grad()
        xi = x.clone().requires_grad_(True)
        out = model(xi)
        if loss_name == "logistic":
            loss = nn.functional.cross_entropy(out, labels, reduction="mean")
        else:
            loss = 0.5 * ((out - targets) ** 2).sum() / batch
        loss.backward()
        result["losses"][loss_name] = {
            "loss": loss.item(),
            "output": out.detach().reshape(-1).tolist(),
            "grad": flat([p.grad for p in model.parameters()]),
            "inputGrad": xi.grad.reshape(-1).tolist(),
            "runningStats": running_stats(model),
        }
    print(f"{name}: {sum(p.numel() for p in params)} parameters, batch {batch}")
    return result


def main():
    fixture = {
        "generator": "scripts/torch-fixtures/chain_fixture.py",
        "torch": torch.__version__,
        "dtype": "float64",
        "mode": "training (batch statistics)",
        "cases": {"mlp": case("mlp", mlp, 1), "convnet": case("convnet", convnet, 2)},
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(fixture, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
