#!/usr/bin/python3
"""Reference trajectories of torch.optim for test/optim.test.ts.

Runs each optimizer configuration of CASES for len(GRADS) steps on a 10-entry float64 parameter
vector, feeding a fixed sequence of gradients (independent of the parameters, so that the
comparison tests the update rules alone), and writes the parameters after every step to
test/fixtures/torch-optim.json. Each case also carries the chainopt options that should reproduce
it through createOptimizer(name, options).

Usage (Debian's python3-torch 1.13): /usr/bin/python3 scripts/torch-fixtures/optim_fixture.py
The file is then formatted with the repository's biome (`npx biome format --write`), as the lint
step of `npm test` checks it.
"""

import json
import math
import os
import subprocess

import torch

torch.set_default_dtype(torch.float64)

N = 10
STEPS = 5


def fixed_vector(seed, scale):
    # Deterministic, torch-version independent values (no RNG): a few incommensurate sines.
    return [scale * math.sin(1.3 * seed + 0.7 * i + 0.11 * i * i) for i in range(N)]


PARAMS0 = fixed_vector(1, 1.0)
# Gradient magnitudes vary across steps (large at step 3) so that AMSGrad's maximum matters.
GRADS = [fixed_vector(2 + t, s) for t, s in enumerate([1.0, 0.5, 3.0, 0.2, 0.8])]

# (case name, torch class, torch kwargs, chainopt optimizer name, chainopt options)
CASES = [
    ("sgd", torch.optim.SGD, dict(lr=0.1), "sgd", dict(lr=0.1)),
    ("sgd-wd", torch.optim.SGD, dict(lr=0.1, weight_decay=0.05), "sgd", dict(lr=0.1, weightDecay=0.05)),
    ("momentum", torch.optim.SGD, dict(lr=0.1, momentum=0.9), "momentum", dict(lr=0.1, momentum=0.9)),
    (
        "momentum-dampening-wd",
        torch.optim.SGD,
        dict(lr=0.1, momentum=0.8, dampening=0.3, weight_decay=0.01),
        "sgd",
        dict(lr=0.1, momentum=0.8, dampening=0.3, weightDecay=0.01),
    ),
    ("nesterov", torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True), "nesterov", dict(lr=0.1, momentum=0.9)),
    (
        "nesterov-wd",
        torch.optim.SGD,
        dict(lr=0.05, momentum=0.7, nesterov=True, weight_decay=0.1),
        "nesterov",
        dict(lr=0.05, momentum=0.7, weightDecay=0.1),
    ),
    ("adam", torch.optim.Adam, dict(lr=0.01), "adam", dict(lr=0.01)),
    (
        "adam-wd",
        torch.optim.Adam,
        dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
        "adam",
        dict(lr=0.02, b1=0.8, b2=0.99, eps=1e-6, weightDecay=0.1),
    ),
    ("adamw", torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1), "adamw", dict(lr=0.01, weightDecay=0.1)),
    ("adamw-default-wd", torch.optim.AdamW, dict(lr=0.01), "adamw", dict(lr=0.01)),
    ("amsgrad", torch.optim.Adam, dict(lr=0.01, amsgrad=True), "amsgrad", dict(lr=0.01)),
    (
        "adamw-amsgrad",
        torch.optim.AdamW,
        dict(lr=0.01, amsgrad=True, weight_decay=0.05),
        "adamw",
        dict(lr=0.01, amsgrad=True, weightDecay=0.05),
    ),
    ("rmsprop", torch.optim.RMSprop, dict(lr=0.01), "rmsprop", dict(lr=0.01)),
    (
        "rmsprop-centered-momentum-wd",
        torch.optim.RMSprop,
        dict(lr=0.01, alpha=0.9, eps=1e-6, momentum=0.5, centered=True, weight_decay=0.02),
        "rmsprop",
        dict(lr=0.01, alpha=0.9, eps=1e-6, momentum=0.5, centered=True, weightDecay=0.02),
    ),
    ("adagrad", torch.optim.Adagrad, dict(lr=0.1), "adagrad", dict(lr=0.1)),
    (
        "adagrad-decay-wd-init",
        torch.optim.Adagrad,
        dict(lr=0.1, lr_decay=0.3, weight_decay=0.05, initial_accumulator_value=0.2),
        "adagrad",
        dict(lr=0.1, lrDecay=0.3, weightDecay=0.05, initialAccumulatorValue=0.2),
    ),
]


def run(cls, kwargs):
    p = torch.tensor(PARAMS0, dtype=torch.float64, requires_grad=True)
    opt = cls([p], **kwargs)
    trajectory = []
    for g in GRADS:
        opt.zero_grad()
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        trajectory.append(p.detach().tolist())
    return trajectory


def main():
    cases = []
    for name, cls, kwargs, ours, options in CASES:
        torch_kwargs = {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}
        cases.append(
            dict(
                name=name,
                torch=dict(optimizer=cls.__name__, options=torch_kwargs),
                optimizer=ours,
                options=options,
                trajectory=run(cls, kwargs),
            )
        )
    out = dict(
        generator="scripts/torch-fixtures/optim_fixture.py",
        torch=torch.__version__,
        dtype="float64",
        params0=PARAMS0,
        grads=GRADS,
        cases=cases,
    )
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    path = os.path.join(root, "test", "fixtures", "torch-optim.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=2)  # repr of floats: every float64 round-trips exactly
        f.write("\n")
    print(f"wrote {len(cases)} cases to {path}")
    try:
        subprocess.run(["npx", "biome", "format", "--write", path], cwd=root, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"note: could not format with biome ({e}); run `npx biome format --write {path}`")


if __name__ == "__main__":
    main()
