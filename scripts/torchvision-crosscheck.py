#!/usr/bin/env python3
"""Torchvision's reference for Bonsai's ImageNet-style architectures (ai.bonsai.dsp.models): key fixtures and logits.

Two commands:

  keys     writes <model>.keys.txt for each model: one line per state_dict entry, "<key> <dtype> <d0,d1,...>"
           (a scalar has the shape "-"), in state_dict order. These are the fixtures under
           dsp/src/test/resources/torchvision/ that TorchvisionArchitecturesTest holds Bonsai's state dicts to;
           regenerate them with
               /usr/bin/python3 scripts/torchvision-crosscheck.py keys --out dsp/src/test/resources/torchvision
  logits   for each model: builds it with torch.manual_seed(SEED), sets the batch-norm running statistics from one
           calibration batch and draws random batch-norm affine parameters (fresh ones are 0/1, which would leave
           the normalisation untested), runs a fixed input in eval mode, and writes
               <model>.safetensors    the whole state_dict (num_batches_tracked as I64), written by hand from numpy
               <model>.input.f32      the fixed input, float32 little-endian, (N, 3, H, W) row-major
               <model>.logits.f32     torchvision's logits, float32 little-endian, (N, classes)
           plus summary.json with the torch version and each model's input shape and class count.
           TorchvisionCrossCheckTest (-Ptorch-crosscheck) starts this command and compares Bonsai's logits.
  import   the fixtures of `bonsai import`'s cross-check: for each model (default resnet18 and resnet50, 1000 classes),
           the same calibrated model as `logits`, saved twice,
               <model>.pth            torch.save(model.state_dict(), f), PyTorch's own zip format
               <model>.safetensors    the same state dict as safetensors (as above)
           plus <model>.input.f32 (a few fixed 224x224 inputs), <model>.logits.f32 and summary.json.
           TorchvisionImportCrossCheckTest (-Ptorch-crosscheck) imports both files through `bonsai import`, requires
           identical tensors from the two, and compares `bonsai eval`'s model's logits with these.

Models: resnet18, resnet34, resnet50 and mobilenet_v2 as torchvision builds them (1000 classes);
mobilenet_v2_cifar: mobilenet_v2 with 10 classes and stride 1 in features.0 (Bonsai's CIFAR stem option); and
vgg16_bn_cifar: torchvision's vgg16_bn features (indices kept) followed by one Linear(512, 10), the usual CIFAR VGG.

Needs Debian's PyTorch and torchvision (apt-get install python3-torch python3-torchvision): run with /usr/bin/python3.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torchvision

SEED = 1234
# name -> (input shape for the logits command, whether the logits command runs it by default)
MODELS = {
    "resnet18": ((2, 3, 64, 64), True),
    "resnet34": ((2, 3, 64, 64), False),
    "resnet50": ((2, 3, 64, 64), True),
    "mobilenet_v2": ((2, 3, 64, 64), True),
    "mobilenet_v2_cifar": ((2, 3, 32, 32), True),
    "vgg16_bn_cifar": ((2, 3, 32, 32), True),
}


class Vgg16BnCifar(nn.Module):
    """torchvision's vgg16_bn features, then flatten and Linear(512, classes): at 32x32 the features end at 512x1x1."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.features = torchvision.models.vgg16_bn().features
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def build(name):
    if name == "vgg16_bn_cifar":
        return Vgg16BnCifar(10)
    if name == "mobilenet_v2_cifar":
        model = torchvision.models.mobilenet_v2(num_classes=10)
        model.features[0][0].stride = (1, 1)   # Bonsai's CIFAR stem: the same keys, stride 1 in the first conv
        return model
    return getattr(torchvision.models, name)()   # torchvision 0.14: weights=None by default, 1000 classes


def write_keys(args):
    os.makedirs(args.out, exist_ok=True)
    for name in args.models:
        model = build(name)
        path = os.path.join(args.out, name + ".keys.txt")
        with open(path, "w") as f:
            f.write(f"# torchvision {torchvision.__version__} (torch {torch.__version__}) {name}: state_dict key, dtype, shape;"
                    f" parameters {sum(p.numel() for p in model.parameters())}\n")
            for k, v in model.state_dict().items():
                shape = ",".join(str(d) for d in v.shape) or "-"
                f.write(f"{k} {str(v.dtype).replace('torch.', '')} {shape}\n")
        print(f"{path}: {len(model.state_dict())} entries")


def write_safetensors(path, state):
    """The safetensors layout (8-byte header length, JSON header, raw little-endian data), written directly."""
    header, blobs, offset = {}, [], 0
    codes = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}
    for k, v in state.items():
        a = np.ascontiguousarray(v.detach().cpu().numpy())
        if a.dtype not in codes:
            sys.exit(f"{k}: dtype {a.dtype} is not F32 or I64")
        b = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[k] = {"dtype": codes[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


IMPORT_INPUT = (3, 3, 224, 224)   # the import check runs torchvision's own input size


def write_logits(args, import_files=False):
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    os.makedirs(args.out, exist_ok=True)
    summary = {"torch": torch.__version__, "torchvision": torchvision.__version__, "seed": SEED, "models": {}}
    for name in args.models:
        shape = IMPORT_INPUT if import_files else MODELS[name][0]
        torch.manual_seed(SEED)
        model = build(name)
        with torch.no_grad():
            # Running statistics of real activations: one training-mode pass with momentum 1 sets each batch norm's
            # running mean and variance to those of a calibration batch, so that the eval-mode network keeps its
            # activations near unit scale (fresh 0/1 statistics let ResNet-50's logits grow into the hundreds). Then
            # random affine parameters, so that the normalisation's scale and shift are exercised too.
            bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
            for m in bns:
                m.momentum = 1.0
            model.train()(torch.randn(8, *shape[1:]))
            for m in bns:
                m.momentum = 0.1
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
            model.eval()
            x = torch.randn(*shape)
            y = model(x)
        write_safetensors(os.path.join(args.out, name + ".safetensors"), model.state_dict())
        if import_files:
            torch.save(model.state_dict(), os.path.join(args.out, name + ".pth"))
        x.numpy().astype("<f4").tofile(os.path.join(args.out, name + ".input.f32"))
        y.numpy().astype("<f4").tofile(os.path.join(args.out, name + ".logits.f32"))
        summary["models"][name] = {"input": list(shape), "classes": int(y.shape[1]),
                                   "logitAbsMax": float(y.abs().max())}
        print(f"{name}: input {list(shape)}, logits {list(y.shape)}, |logit| max {float(y.abs().max()):.4g}")
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["keys", "logits", "import"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", nargs="*", default=None, help="default: all for keys, all but resnet34 for logits")
    args = ap.parse_args()
    if args.models is None:
        args.models = (list(MODELS) if args.command == "keys" else ["resnet18", "resnet50"] if args.command == "import"
                       else [m for m, (_, on) in MODELS.items() if on])
    for m in args.models:
        if m not in MODELS:
            sys.exit(f"unknown model '{m}', expected one of {list(MODELS)}")
    if args.command == "keys":
        write_keys(args)
    else:
        write_logits(args, import_files=args.command == "import")


if __name__ == "__main__":
    main()
