# The PyTorch side of the side-by-side training benchmarks (bench/side-by-side.ts), run as
#   python3 bench/torch_step.py '{"threads": 1, "batch": 128, "jobs": [{"model": "mlp", "warmup": 3, "reps": 5, "steps": 2}]}'
# Trains the MLP 784-512-512-10 or the ConvNet of chainopt's presets with SGD (momentum 0.9,
# lr 0.01) on a fixed synthetic batch, times blocks of steps after warm-up, and prints one JSON
# line: the torch version, its OpenBLAS configuration (when torch loaded OpenBLAS) and the median
# and best milliseconds per step of each job.
import ctypes, json, sys, time
cfg = json.loads(sys.argv[1])
import torch
torch.set_num_threads(cfg["threads"])
out = {"torch": torch.__version__, "python": sys.executable, "threads": torch.get_num_threads(),
       "mkldnn": torch.backends.mkldnn.is_available(), "blasConfig": None, "coreName": None, "timings": []}
try:
    paths = set()
    with open("/proc/self/maps") as f:
        for line in f:
            p = line.split()[-1]
            if p.startswith("/") and "openblas" in p.lower():
                paths.add(p)
    for p in sorted(paths):
        lib = ctypes.CDLL(p)
        if hasattr(lib, "openblas_get_config"):
            lib.openblas_get_config.restype = ctypes.c_char_p
            lib.openblas_get_corename.restype = ctypes.c_char_p
            out["blasConfig"] = lib.openblas_get_config().decode()
            out["coreName"] = lib.openblas_get_corename().decode()
            out["blasThreads"] = lib.openblas_get_num_threads()
            break
except Exception as e:
    out["blasError"] = str(e)
torch.manual_seed(0)
nn = torch.nn
def model(name):
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 8 * 8, 10))
for job in cfg["jobs"]:
    name, batch = job["model"], cfg["batch"]
    m = model(name)
    x = torch.randn(batch, *( (1, 28, 28) if name == "mlp" else (3, 32, 32) ))
    y = torch.arange(batch) % 10
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(m(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    for _ in range(job["warmup"]):
        step()
    times = []
    for _ in range(job["reps"]):
        t0 = time.perf_counter()
        for _ in range(job["steps"]):
            step()
        times.append((time.perf_counter() - t0) * 1e3 / job["steps"])
    s = sorted(times)
    h = len(s) // 2
    med = s[h] if len(s) % 2 else (s[h - 1] + s[h]) / 2
    out["timings"].append({"model": name, "medianMs": med, "bestMs": s[0], "reps": job["reps"], "stepsPerRep": job["steps"]})
print(json.dumps(out))
