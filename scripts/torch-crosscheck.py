#!/usr/bin/env python3
"""Runs the published DSP models in PyTorch and writes their logits, so Bonsai's can be compared with them.

An independent runtime for the same files: torch.jit.load runs each archive's own TorchScript. Input is the
shared CIFAR-10 sample in the official binary format (1 label byte + 3072 CHW pixel bytes per record), scaled to
[0, 1] and normalised with the reference's mean and std, as Bonsai's Transform.cifarEval does.

Output, in --out: <model>.logits.f32 (float32 little-endian, images x classes, row-major) for each model, and
summary.json with each model's accuracy, image count and the sha256 of the file it ran.

Usage (Debian's PyTorch: apt-get install python3-torch):
    /usr/bin/python3 scripts/torch-crosscheck.py [--reference ../shared/reference] \
        [--data ../shared/data/cifar10/first4000_of_data_batch_1.bin] [--out target/torch-crosscheck]
The Maven profile -Ptorch-crosscheck runs it and compares (dsp/.../TorchCrossCheckTest).
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
MODELS = ["resnet20_g4", "resnet20_g3", "resnet20_g2", "resnet56_g4", "resnet56_g3", "resnet56_g2"]
RECORD = 1 + 3 * 32 * 32


def load_cifar(path):
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD != 0:
        sys.exit(f"{path}: {raw.size} bytes is not a whole number of {RECORD}-byte CIFAR-10 records")
    raw = raw.reshape(-1, RECORD)
    labels = raw[:, 0].astype(np.int64)
    x = raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255)
    mean = np.array(MEAN, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.array(STD, dtype=np.float32).reshape(1, 3, 1, 1)
    return torch.from_numpy((x - mean) / std), labels


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    shared = os.path.join(here, "..", "..", "shared")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", default=os.path.join(shared, "reference"), help="folder of the published .pt files")
    ap.add_argument("--data", default=os.path.join(shared, "data", "cifar10", "first4000_of_data_batch_1.bin"))
    ap.add_argument("--out", default=os.path.join(here, "..", "target", "torch-crosscheck"))
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--models", nargs="*", default=MODELS)
    args = ap.parse_args()

    torch.set_num_threads(2)
    os.makedirs(args.out, exist_ok=True)
    x, labels = load_cifar(args.data)
    summary = {"torch": torch.__version__, "data": os.path.abspath(args.data), "images": int(len(labels)), "models": {}}
    for name in args.models:
        path = os.path.join(args.reference, name + ".pt")
        with open(path, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        model = torch.jit.load(path, map_location="cpu").eval()
        outs = []
        with torch.no_grad():
            for i in range(0, len(x), args.batch):
                outs.append(model(x[i:i + args.batch]))
        logits = torch.cat(outs).numpy().astype("<f4")
        logits.tofile(os.path.join(args.out, name + ".logits.f32"))
        correct = int((logits.argmax(1) == labels).sum())
        summary["models"][name] = {"sha256": sha, "classes": int(logits.shape[1]), "correct": correct,
                                   "accuracy": 100.0 * correct / len(labels)}
        print(f"{name}: {correct}/{len(labels)} correct ({100.0 * correct / len(labels):.3f} %), logits -> {args.out}")
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
