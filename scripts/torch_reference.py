#!/usr/bin/python3
"""The DSP reference's pretraining recipe (cifar_pretrain.py) in PyTorch, for one seed, on a file of CIFAR-10
binary records: the yardstick that scripts/torch-parity.py holds `bonsai pretrain` against.

Not Bonsai code and not part of `mvn verify`. Written from the reference's recipe (spec section 8), not copied:
- ResNet-(6n+2) with the reference's layout (3x3 stem, three stages of basic blocks with 16/32/64 channels,
  1x1 conv + BN projection where the shape changes, global average pool, Linear 64 -> 10);
- init: Kaiming normal (fan_out) for every convolution, BN weight 1 and bias 0, Linear bias 0, Linear weight
  left at PyTorch's default (Kaiming uniform, a = sqrt(5));
- data: the file's last `holdout` fraction held out (as `bonsai pretrain --data FILE` does); training images
  get a random horizontal flip, a random 32x32 crop of the 4-pixel zero-padded image, then normalisation;
  batches of 128, shuffled, drop_last=True;
- SGD lr 0.1, momentum 0.9, weight decay 1e-4; MultiStepLR x0.1 at epochs//2 and epochs*3//4; the reference's
  warm-up sets lr/4 on epochs 0 and 1 and the full lr on epoch 2;
- evaluation on the held-out images after every epoch (batch 128), best = a strictly higher accuracy.

Run with Debian's PyTorch (python3-torch, python3-torchvision): /usr/bin/python3 scripts/torch_reference.py
--data ../shared/data/cifar10/first4000_of_data_batch_1.bin --seed 1 --epochs 20 --json out.json
"""
import argparse
import json
import time

import numpy as np
import torch
import torch.nn as nn
import torchvision.transforms as T

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


class Block(nn.Module):
    """conv_a, bn_a, ReLU, conv_b, bn_b, plus the shortcut, then ReLU (the reference's parameter names)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv_a = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn_a = nn.BatchNorm2d(cout)
        self.conv_b = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn_b = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = torch.relu(self.bn_a(self.conv_a(x)))
        y = self.bn_b(self.conv_b(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(shortcut + y)


class ResNet(nn.Module):
    def __init__(self, depth, classes=10):
        super().__init__()
        assert (depth - 2) % 6 == 0, depth
        n = (depth - 2) // 6
        self.conv_1_3x3 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn_1 = nn.BatchNorm2d(16)
        cin = 16
        for s, width in enumerate((16, 32, 64)):
            blocks = []
            for b in range(n):
                blocks.append(Block(cin, width, 2 if (s > 0 and b == 0) else 1))
                cin = width
            setattr(self, "stage_%d" % (s + 1), nn.Sequential(*blocks))
        self.classifier = nn.Linear(64, classes)

    def forward(self, x):
        x = torch.relu(self.bn_1(self.conv_1_3x3(x)))
        x = self.stage_3(self.stage_2(self.stage_1(x)))
        return self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def reference_init(model):
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.Linear):
            nn.init.constant_(m.bias, 0)


class Records(torch.utils.data.Dataset):
    """Images as (3, 32, 32) floats in [0, 1] (what ToTensor gives), then the transform."""

    def __init__(self, pixels, labels, transform):
        self.pixels, self.labels, self.transform = pixels, labels, transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.transform(self.pixels[i]), int(self.labels[i])


def read_records(path, holdout):
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 3073:
        raise SystemExit("%s: %d bytes is not a whole number of 3,073-byte CIFAR-10 records" % (path, raw.size))
    raw = raw.reshape(-1, 3073)
    labels = torch.from_numpy(raw[:, 0].astype(np.int64))
    pixels = torch.from_numpy(raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0)
    cut = len(labels) - int(round(len(labels) * holdout))   # the same split as `bonsai pretrain --data FILE`
    return (pixels[:cut], labels[:cut]), (pixels[cut:], labels[cut:])


def evaluate(model, loader):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
            total += len(y)
    model.train()
    return 100.0 * correct / total


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="a file of CIFAR-10 binary records")
    p.add_argument("--holdout", type=float, default=0.1)
    p.add_argument("--layers", type=int, default=20)
    p.add_argument("--epochs", type=int, default=164)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--wd", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--keep-last-batch", action="store_true", help="drop_last=False (Bonsai's old behaviour)")
    p.add_argument("--kaiming-classifier", action="store_true",
                   help="draw the classifier weight from Kaiming normal (fan_in) (Bonsai's old init)")
    p.add_argument("--json", help="write the per-epoch results here")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)   # the init, the shuffling and the augmentation all draw from it
    (xtr, ytr), (xte, yte) = read_records(a.data, a.holdout)
    train_tf = T.Compose([T.RandomHorizontalFlip(), T.RandomCrop(32, 4), T.Normalize(MEAN, STD)])
    train = torch.utils.data.DataLoader(Records(xtr, ytr, train_tf), batch_size=a.batch_size, shuffle=True,
                                        drop_last=not a.keep_last_batch, num_workers=0)
    test = torch.utils.data.DataLoader(Records(xte, yte, T.Normalize(MEAN, STD)), batch_size=a.batch_size, shuffle=False)

    model = ResNet(a.layers)
    reference_init(model)
    if a.kaiming_classifier:
        nn.init.kaiming_normal_(model.classifier.weight, mode="fan_in")
    criterion = nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=a.momentum, weight_decay=a.wd)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [a.epochs // 2, a.epochs * 3 // 4], 0.1)

    epochs, best = [], 0.0
    for epoch in range(a.epochs):
        model.train()
        # The reference's warm-up: it writes the lr itself, so on epoch 2 it also undoes any milestone at or before 2.
        if epoch <= 2:
            for group in opt.param_groups:
                group["lr"] = a.lr / 4 if epoch < 2 else a.lr
        lr = opt.param_groups[0]["lr"]
        loss_sum, correct, seen, steps = 0.0, 0, 0, 0
        start = time.perf_counter()
        for x, y in train:
            out = model(x)
            loss = criterion(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            correct += (out.detach().argmax(1) == y).sum().item()
            seen += len(y)
            steps += 1
        seconds = time.perf_counter() - start
        sched.step()
        acc = evaluate(model, test)
        is_best = acc > best
        best = max(best, acc)
        epochs.append({"epoch": epoch + 1, "lr": lr, "steps": steps, "trainLoss": loss_sum / seen,
                       "trainAccuracy": 100.0 * correct / seen, "evalAccuracy": acc, "best": is_best,
                       "imagesPerSecond": seen / seconds})
        print("torch seed %d epoch %d/%d: lr %.4g, %d steps, loss %.4f, train %.2f%%, eval %.2f%%%s, %.0f img/s"
              % (a.seed, epoch + 1, a.epochs, lr, steps, loss_sum / seen, 100.0 * correct / seen, acc,
                 " (best)" if is_best else "", seen / seconds), flush=True)

    result = {"framework": "pytorch " + torch.__version__, "seed": a.seed, "threads": a.threads,
              "trainImages": len(ytr), "heldOutImages": len(yte), "epochs": epochs}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
