#!/usr/bin/env python3
"""PyTorch eager peer for scripts/gpu-check, on CUDA in float32 with TF32 off (Bonsai's default): a CIFAR ResNet-20
(the reference's architecture) timing one SGD training step at batch 128 and inference at batch 128 and 1; a dense
ResNet-56 at inference, batch 256; and, given --packed FILE (the reference's published resnet56_g4.pt, a TorchScript
archive of the packed model), that packed model at batch 256 in PyTorch itself.
Writes a JSON report (--out). Needs torch with CUDA; nothing else."""
import argparse, json, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv_a = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn_a = nn.BatchNorm2d(cout)
        self.conv_b = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn_b = nn.BatchNorm2d(cout)
        self.down = stride != 1 or cin != cout
        self.cout = cout

    def forward(self, x):
        y = F.relu(self.bn_a(self.conv_a(x)))
        y = self.bn_b(self.conv_b(y))
        if self.down:  # option A: subsample and zero-pad channels
            x = x[:, :, ::2, ::2]
            x = torch.cat([x, torch.zeros_like(x)], 1)[:, : self.cout]
        return F.relu(x + y)


class ResNet20(nn.Module):
    """A CIFAR ResNet of depth 6n+2 (20 by default)."""

    def __init__(self, depth=20):
        super().__init__()
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                layers.append(Block(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*layers)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = self.stages(x)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


def timed(fn, reps):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / reps * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--packed", help="a packed ResNet-56 TorchScript archive (resnet56_g4.pt) to time at batch 256")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    dev = torch.device("cuda")
    model = ResNet20().to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(128, 3, 32, 32, device=dev)
    y = torch.randint(0, 10, (128,), device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    train_ms = timed(step, 20)
    model.eval()
    with torch.no_grad():
        inf128 = timed(lambda: model(x), 50)
        inf1 = timed(lambda: model(x[:1]), 50)
    report = {"peer": "pytorch eager " + torch.__version__, "device": torch.cuda.get_device_name(0),
              "train_step_ms_batch128": train_ms, "inference_ms_batch128": inf128, "inference_ms_batch1": inf1}
    x256 = torch.randn(256, 3, 32, 32, device=dev)
    dense56 = ResNet20(56).to(dev).eval()
    with torch.no_grad():
        report["resnet56_dense_inference_ms_batch256"] = timed(lambda: dense56(x256), 30)
    if args.packed:
        packed = torch.jit.load(args.packed, map_location=dev).eval()
        with torch.no_grad():
            report["resnet56_packed_inference_ms_batch256"] = timed(lambda: packed(x256), 30)
        report["packed_file"] = args.packed
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print("torch peer:", json.dumps(report))


if __name__ == "__main__":
    main()
