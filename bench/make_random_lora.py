#!/usr/bin/env python3
"""Writes a random PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors) for
a Llama-family base, with no packages beyond the standard library (benchmarks only: the weights
are noise, A ~ N(0, 1/in), B ~ N(0, 0.02^2)).

  make_random_lora.py OUT_DIR --layers 12 --dim 768 --heads 12 --kv-heads 12 --head-dim 64
                      [--rank 16] [--targets q_proj,k_proj,v_proj,o_proj] [--seed 1]
"""
import argparse, array, json, os, random, struct

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--layers", type=int, required=True)
p.add_argument("--dim", type=int, required=True)
p.add_argument("--heads", type=int, required=True)
p.add_argument("--kv-heads", type=int, required=True)
p.add_argument("--head-dim", type=int, required=True)
p.add_argument("--rank", type=int, default=16)
p.add_argument("--targets", default="q_proj,k_proj,v_proj,o_proj")
p.add_argument("--seed", type=int, default=1)
a = p.parse_args()
rng = random.Random(a.seed)
q, kv = a.heads * a.head_dim, a.kv_heads * a.head_dim
shapes = {"q_proj": (q, a.dim), "k_proj": (kv, a.dim), "v_proj": (kv, a.dim), "o_proj": (a.dim, q)}
targets = a.targets.split(",")
tensors = []  # (name, shape, floats)
for l in range(a.layers):
    for t in targets:
        out, inp = shapes[t]
        base = f"base_model.model.model.layers.{l}.self_attn.{t}"
        tensors.append((base + ".lora_A.weight", [a.rank, inp],
                        array.array("f", (rng.gauss(0, inp ** -0.5) for _ in range(a.rank * inp)))))
        tensors.append((base + ".lora_B.weight", [out, a.rank],
                        array.array("f", (rng.gauss(0, 0.02) for _ in range(out * a.rank)))))
header, offset = {"__metadata__": {"format": "pt"}}, 0
for name, shape, data in tensors:
    n = len(data) * 4
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + n]}
    offset += n
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
os.makedirs(a.out, exist_ok=True)
with open(os.path.join(a.out, "adapter_model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text)
    for _, _, data in tensors:
        f.write(data.tobytes())
with open(os.path.join(a.out, "adapter_config.json"), "w") as f:
    json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "random",
               "r": a.rank, "lora_alpha": a.rank, "lora_dropout": 0.0, "target_modules": targets,
               "bias": "none", "use_rslora": False, "fan_in_fan_out": False, "use_dora": False}, f, indent=2)
