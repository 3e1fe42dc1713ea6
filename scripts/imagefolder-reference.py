#!/usr/bin/python3
"""Reference pixels for ImageFolder's resizing, computed independently with PyTorch/torchvision and Pillow.

Prints Java constants for engine/src/test/java/ai/bonsai/data/ResampleTest.java. Needs Debian's python3-torch,
python3-torchvision and python3-pil (run with /usr/bin/python3, not another python3 on PATH):

    /usr/bin/python3 scripts/imagefolder-reference.py

Source images are a formula of (channel, y, x) with byte values / 255, so Java builds the same floats exactly:
    v(c, y, x) = ((37 x + 91 y + 53 c + (x * y) % 17) % 256) / 255
torch: interpolate(bilinear, antialias=True, align_corners=False) on float32; Pillow: resize(BILINEAR) on mode "F"
(one channel at a time). Both are printed; the test holds Bonsai to both.
"""
import numpy as np
import torch
import torch.nn.functional as F
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image


def source(h, w):
    c, y, x = np.meshgrid(np.arange(3), np.arange(h), np.arange(w), indexing="ij")
    b = (37 * x + 91 * y + 53 * c + (x * y) % 17) % 256
    return torch.from_numpy(b.astype(np.uint8)).float() / 255


def pil_resize(img, oh, ow):
    out = []
    for ch in range(3):
        p = Image.fromarray(img[ch].numpy().astype(np.float32), mode="F")
        out.append(np.asarray(p.resize((ow, oh), Image.BILINEAR), dtype=np.float32))
    return torch.from_numpy(np.stack(out))


CASES = [  # (name, src h, src w, out h, out w)
    ("photoToEval", 375, 500, 256, 341),
    ("oddTinyDown", 7, 5, 3, 2),
    ("upscale", 3, 4, 9, 11),
    ("wideMixed", 2, 300, 5, 17),
    ("onePixel", 1, 1, 4, 4),
    ("oddDown", 101, 77, 13, 29),
]


def picks(oh, ow):
    pts = {(0, 0, 0), (1, oh - 1, ow - 1), (2, oh // 2, ow // 3), (0, oh - 1, 0), (1, 0, ow - 1), (2, (oh * 2) // 3, (ow * 3) // 4)}
    return sorted(pts)


print("// torch %s, torchvision %s, Pillow %s" % (torch.__version__, torchvision.__version__, Image.__version__))
print("// {srcH, srcW, outH, outW, c, y, x, torch value, Pillow value}")
for name, h, w, oh, ow in CASES:
    img = source(h, w)
    t = F.interpolate(img[None], size=(oh, ow), mode="bilinear", antialias=True, align_corners=False)[0]
    p = pil_resize(img, oh, ow)
    for c, y, x in picks(oh, ow):
        print("{%d, %d, %d, %d, %d, %d, %d, %.9ff, %.9ff},  // %s" % (h, w, oh, ow, c, y, x, t[c, y, x], p[c, y, x], name))

print("// eval pipeline: Resize(256, antialias=True), CenterCrop(224), Normalize(ImageNet) on a 375x500 and a 333x211 source")
print("// {srcH, srcW, c, y, x, value}")
norm = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
for h, w in [(375, 500), (333, 211)]:
    out = norm(TF.center_crop(TF.resize(source(h, w), 256, antialias=True), 224))
    for c, y, x in picks(224, 224):
        print("{%d, %d, %d, %d, %d, %.9ff}," % (h, w, c, y, x, out[c, y, x]))

print("// resized_crop(top, left, height, width -> 32x32), antialias=True, as RandomResizedCrop applies its box")
print("// {srcH, srcW, top, left, boxH, boxW, c, y, x, value}")
for h, w, top, left, bh, bw in [(375, 500, 17, 101, 211, 163), (40, 30, 3, 5, 9, 21)]:
    out = TF.resized_crop(source(h, w), top, left, bh, bw, [32, 32], antialias=True)
    for c, y, x in picks(32, 32):
        print("{%d, %d, %d, %d, %d, %d, %d, %d, %d, %.9ff}," % (h, w, top, left, bh, bw, c, y, x, out[c, y, x]))
