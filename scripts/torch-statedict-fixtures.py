#!/usr/bin/env python3
"""Writes the small torch.save state dicts that TorchStateDictTest reads (engine/src/test/resources/torch/):

  statedict-conv-bn.pth     a Conv2d(2, 3, 3) + BatchNorm2d(3) + Linear(3, 4) state dict as torch.save writes it
                            (OrderedDict with _metadata, float32 tensors, int64 num_batches_tracked), and a
                            non-contiguous view (a transposed weight) to exercise strides
  statedict-dtypes.pth      the same values as float64, float16 and bfloat16, and two nn.Parameters
                            (torch._utils._rebuild_parameter)
  statedict-expected.json   every tensor's shape and values (as float64 lists) for the test to compare against

Regenerate with Debian's PyTorch (apt-get install python3-torch):
    /usr/bin/python3 scripts/torch-statedict-fixtures.py engine/src/test/resources/torch
The values come from torch.manual_seed(7) but are stored in the JSON, so the test does not depend on them.
"""
import collections
import json
import os
import sys

import torch
import torch.nn as nn


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "engine/src/test/resources/torch"
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(7)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3, 4))
    with torch.no_grad():
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
        model[1].num_batches_tracked.fill_(5)
    sd = model.state_dict()
    sd["extra.transposed"] = model[3].weight.detach().t()      # a (3, 4) view with strides (1, 3) of the (4, 3) weight
    torch.save(sd, os.path.join(out, "statedict-conv-bn.pth"))

    dt = collections.OrderedDict()
    dt["f64"] = model[0].bias.detach().double()
    dt["f16"] = model[3].bias.detach().half()
    dt["bf16"] = model[1].running_var.detach().bfloat16()
    dt["param.weight"] = nn.Parameter(model[3].weight.detach().clone())
    dt["param.bias"] = nn.Parameter(model[3].bias.detach().double().clone())
    torch.save(dt, os.path.join(out, "statedict-dtypes.pth"))

    expected = {}
    for name, d in (("statedict-conv-bn.pth", sd), ("statedict-dtypes.pth", dt)):
        expected[name] = {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape),
                              "values": [float(x) for x in v.detach().double().flatten().tolist()]} for k, v in d.items()}
    with open(os.path.join(out, "statedict-expected.json"), "w") as f:
        json.dump({"torch": torch.__version__, "files": expected}, f, indent=1)
    for n in ("statedict-conv-bn.pth", "statedict-dtypes.pth"):
        print(n, os.path.getsize(os.path.join(out, n)), "bytes")


if __name__ == "__main__":
    main()
