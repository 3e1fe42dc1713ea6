#!/usr/bin/env python3
"""PyTorch peer of Bonsai's convolution timings (benchmarks/conv-vs-peers): ResNet-20's 3x3 convolutions at batch
128 on the CPU, where PyTorch runs them with oneDNN (MKL-DNN), forward and forward + both gradients ("train"), the
shapes in turn in each round as ai.bonsai.bench.ConvTimes runs them, with inputs filled by the same formula. Each
measure is timed in PyTorch's default NCHW layout and in channels_last (where oneDNN needs no reorder of the
activations); the JSON line reports both, and the faster as the peer. Needs torch only (Debian's python3-torch)."""
import argparse, json, statistics, time

import torch
import torch.nn.functional as F

SHAPES = [(128, 16, 32, 32, 16, 1), (128, 16, 32, 32, 32, 2), (128, 32, 16, 16, 32, 1), (128, 32, 16, 16, 64, 2),
          (128, 64, 8, 8, 64, 1)]


def pattern(n, mul):
    """ConvTimes.pattern: ((i * mul) % 1000) / 1000 - 0.5 in float32."""
    i = torch.arange(n, dtype=torch.int64)
    return ((i * mul) % 1000).to(torch.float32) / 1000.0 - 0.5


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cases = []
    for n, c, h, w, k, st in SHAPES:
        oh = (h + 2 - 3) // st + 1
        x = pattern(n * c * h * w, 7919).reshape(n, c, h, w)
        wt = (0.1 * pattern(k * c * 9, 104729)).reshape(k, c, 3, 3)
        gy = pattern(n * k * oh * oh, 15485863).reshape(n, k, oh, oh)
        name = f"{n}x{c}x{h}x{w}-{k}" + ("s2" if st == 2 else "")
        cases.append((name, st, x, wt, gy))
    out = {}
    for layout in ("nchw", "channels_last"):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        prepared = [(name, st, x.contiguous(memory_format=fmt), wt.contiguous(memory_format=fmt),
                     gy.contiguous(memory_format=fmt)) for name, st, x, wt, gy in cases]
        times = {name: ([], []) for name, *_ in prepared}
        for r in range(args.warmup + args.rounds):
            for name, st, x, wt, gy in prepared:
                with torch.no_grad():
                    t0 = time.perf_counter()
                    y = F.conv2d(x, wt, None, st, 1)
                    t1 = time.perf_counter()
                xg = x.detach().requires_grad_(True)
                wg = wt.detach().requires_grad_(True)
                t2 = time.perf_counter()
                F.conv2d(xg, wg, None, st, 1).backward(gy)
                t3 = time.perf_counter()
                if r >= args.warmup:
                    times[name][0].append((t1 - t0) * 1e3)
                    times[name][1].append((t3 - t2) * 1e3)
                if r == 0 and layout == "nchw":
                    out.setdefault(name, {})["checksum"] = float(y.double().sum())
        for name, (fwd, train) in times.items():
            out[name][layout] = {"forward": {"median_ms": round(statistics.median(fwd), 3), "fastest_ms": round(min(fwd), 3)},
                                 "train": {"median_ms": round(statistics.median(train), 3), "fastest_ms": round(min(train), 3)}}
    for name, r in out.items():
        for measure in ("forward", "train"):
            r[measure] = min((r["nchw"][measure], r["channels_last"][measure]), key=lambda m: m["median_ms"])
    print(json.dumps({"engine": "pytorch", "version": "PyTorch " + torch.__version__ + " (oneDNN " + str(torch.backends.mkldnn.is_available()) + ")",
                      "threads": torch.get_num_threads(), "rounds": args.rounds, "shapes": out}))


if __name__ == "__main__":
    main()
