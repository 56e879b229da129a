#!/usr/bin/env python3
"""Sparsity of a model saved by `llmforge train` (DIR/model.safetensors, f32/bf16/f16): exact zeros
over the layer matrices (model.layers.*, 2-D), the tensors `llmforge prune` prunes and counts.
Prints "zeros values share". Standard library only (prune_bench.sh, recovery of a 50% model)."""
import json
import os
import struct
import sys
from array import array

path = sys.argv[1]
if os.path.isdir(path):
    path = os.path.join(path, "model.safetensors")
with open(path, "rb") as f:
    (n,) = struct.unpack("<Q", f.read(8))
    header = json.loads(f.read(n))
    base = 8 + n
    zeros = values = 0
    for name, t in header.items():
        if name == "__metadata__" or not name.startswith("model.layers.") or len(t["shape"]) != 2:
            continue
        b, e = t["data_offsets"]
        f.seek(base + b)
        raw = f.read(e - b)
        if t["dtype"] == "F32":
            a = array("f")
            a.frombytes(raw)
            zeros += sum(1 for x in a if x == 0.0)
            values += len(a)
        elif t["dtype"] in ("BF16", "F16"):
            a = array("H")
            a.frombytes(raw)
            zeros += sum(1 for x in a if (x & 0x7FFF) == 0)
            values += len(a)
        else:
            sys.exit(f"sparsity_count: {name} is {t['dtype']}, expected F32, BF16 or F16")
print(zeros, values, f"{zeros / values:.4f}" if values else "0")
