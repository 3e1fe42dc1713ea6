#!/usr/bin/env python3
"""PyTorch peer of Bonsai's CPU training step (benchmarks/step-vs-pytorch): the CIFAR ResNet-20 of torch_resnet20.py,
one SGD step at batch 128 (forward, mean cross-entropy, backward, SGD with momentum 0.9 and weight decay 1e-4, lr
0.1, as Bonsai's TrainBatch), on the CPU with --threads intra-op threads. Each step copies the batch into a new tensor,
as Bonsai's step does. Prints one JSON line with the same fields as ai.bonsai.bench.StepTimes. Needs torch only
(Debian's python3-torch)."""
import argparse, json, os, statistics, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch_resnet20 import ResNet20  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30, help="timed steps")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--channels-last", action="store_true",
                    help="model and batch in channels_last memory format (oneDNN then needs no reorders)")
    args = ap.parse_args()
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    torch.set_num_threads(args.threads)
    torch.manual_seed(7)
    model = ResNet20().train().to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    g = torch.Generator().manual_seed(42)
    images = torch.randn(128, 3, 32, 32, generator=g)
    labels = torch.randint(0, 10, (128,), generator=g)

    def step():
        x = images.clone().contiguous(memory_format=fmt)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
        return loss.item()

    first = last = None
    for i in range(args.warmup):
        loss = step()
        first = loss if i == 0 else first
    ms = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        last = step()
        ms.append((time.perf_counter() - t0) * 1e3)
    if first is not None and not last < first:
        raise SystemExit(f"the loss did not fall: {first} -> {last}")
    print(json.dumps({"engine": "pytorch", "version": "PyTorch " + torch.__version__ + (" channels_last" if args.channels_last else ""), "threads": torch.get_num_threads(),
                      "batch": 128, "median_ms": round(statistics.median(ms), 2), "fastest_ms": round(min(ms), 2),
                      "steps_ms": [round(v, 2) for v in ms]}))


if __name__ == "__main__":
    main()
