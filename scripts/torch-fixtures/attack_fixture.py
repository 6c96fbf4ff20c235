#!/usr/bin/env python3
"""PyTorch reference for chainopt's attacks (test/adversarial.test.ts).

A small fixed network in float64 (Conv2d 1→2, 3×3, padding 1; Tanh; Flatten; Linear 32→3) reads
normalized inputs z = (x − 0.5)/0.25 of raw inputs x in the box [0, 1]. For FGSM and PGD in the
ℓ∞ and ℓ2 balls it records the adversarial inputs computed with autograd, following
src/adversarial/attack.ts step by step: the gradient of the batch-mean cross-entropy with respect
to the raw input; ℓ∞ steps α·sign(g), ℓ2 steps α·g/‖g‖ per sample (zero gradient: no step);
projection onto the ball, then clamping to the box; PGD from a given start δ (x₀ + δ projected).

Regenerate from the repository root with a Python that has torch (Debian's python3-torch):

    /usr/bin/python3 scripts/torch-fixtures/attack_fixture.py

which rewrites test/fixtures/torch-attack.json.
"""
import json

import torch

torch.manual_seed(0)
dtype = torch.float64
N, C, H, W, K = 4, 1, 4, 4, 3
MEAN, STD, LO, HI = 0.5, 0.25, 0.0, 1.0

conv = torch.nn.Conv2d(1, 2, 3, padding=1).to(dtype)
lin = torch.nn.Linear(2 * H * W, K).to(dtype)
with torch.no_grad():
    for p in list(conv.parameters()) + list(lin.parameters()):
        p.copy_(torch.randn_like(p) * 0.8)
model = torch.nn.Sequential(conv, torch.nn.Tanh(), torch.nn.Flatten(), lin)
spec = {
    "input": [C, H, W],
    "layers": [
        {"type": "conv2d", "filters": 2, "kernel": 3, "padding": 1},
        {"type": "tanh"},
        {"type": "flatten"},
        {"type": "dense", "units": K},
    ],
}
x0 = torch.rand(N, C, H, W, dtype=dtype)
x0[0, 0, 0, 0] = 0.0  # on the box's faces
x0[1, 0, 1, 1] = 1.0
labels = torch.tensor([0, 1, 2, 1])


def grad_at(x):
    x = x.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model((x - MEAN) / STD), labels)
    (g,) = torch.autograd.grad(loss, x)
    return g


def project(x, eps, norm):
    if norm == "linf":
        return torch.clamp(torch.minimum(torch.maximum(x, x0 - eps), x0 + eps), LO, HI)
    d = (x - x0).reshape(N, -1)
    n = d.norm(dim=1, keepdim=True)
    f = torch.where(n > eps, eps / n, torch.ones_like(n))
    return torch.clamp(x0 + (d * f).reshape(x.shape), LO, HI)


def step(x, g, alpha, norm):
    if norm == "linf":
        return x + alpha * torch.sign(g)
    gf = g.reshape(N, -1)
    n = gf.norm(dim=1, keepdim=True)
    f = torch.where(n > 0, alpha / n, torch.zeros_like(n))
    return x + (gf * f).reshape(x.shape)


def attack(kind, norm, eps, steps, alpha, start):
    x = x0.clone()
    if start is not None:
        x = project(x + start, eps, norm)
    for _ in range(steps):
        x = project(step(x, grad_at(x), alpha, norm), eps, norm)
    return x


def flat(t):
    return [float(v) for v in t.reshape(-1).tolist()]


params = []
for p in model.parameters():
    params += flat(p.detach())
cases = []
for kind, norm, eps, steps, alpha in [
    ("fgsm", "linf", 0.1, 1, 0.1),
    ("fgsm", "l2", 0.5, 1, 0.5),
    ("pgd", "linf", 0.1, 5, 0.03),
    ("pgd", "l2", 0.5, 5, 0.2),
]:
    start = None
    if kind == "pgd":
        start = (torch.rand(N, C, H, W, dtype=dtype) * 2 - 1) * (eps if norm == "linf" else eps / 4)
    xa = attack(kind, norm, eps, steps, alpha, start)
    cases.append(
        {
            "kind": kind,
            "norm": norm,
            "eps": eps,
            "steps": steps,
            "stepSize": alpha,
            "start": flat(start) if start is not None else None,
            "adversarial": flat((xa - MEAN) / STD),
        }
    )
out = {
    "generator": "scripts/torch-fixtures/attack_fixture.py",
    "torch": torch.__version__,
    "dtype": "float64",
    "spec": spec,
    "domain": {"lower": LO, "upper": HI, "mean": [MEAN], "std": [STD]},
    "params": params,
    "x": flat((x0 - MEAN) / STD),
    "labels": labels.tolist(),
    "cases": cases,
}
with open("test/fixtures/torch-attack.json", "w") as f:
    json.dump(out, f)
    f.write("\n")
