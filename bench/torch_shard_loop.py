"""The torch baseline for `npm run bench`: what a Python user would write to abliterate a checkpoint shard by shard.
Loads each shard, projects every residual writer in fp32, casts back, saves. Not used by tests."""
import json
import os
import re
import sys

import torch
from safetensors.torch import load_file, save_file

src, dst, direction_path = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(dst, exist_ok=True)
r = load_file(direction_path)["direction"].to(torch.float32)
r = r / r.norm()
index = json.load(open(os.path.join(src, "model.safetensors.index.json")))
linear = re.compile(r"(o_proj|down_proj)\.weight$")
for shard in sorted(set(index["weight_map"].values())):
    tensors = load_file(os.path.join(src, shard))
    for name, w in tensors.items():
        if linear.search(name):
            wf = w.to(torch.float32)
            tensors[name] = (wf - torch.outer(r, r @ wf)).to(w.dtype)
        elif name.endswith("embed_tokens.weight"):
            wf = w.to(torch.float32)
            tensors[name] = (wf - torch.outer(wf @ r, r)).to(w.dtype)
    save_file(tensors, os.path.join(dst, shard), metadata={"format": "pt"})
