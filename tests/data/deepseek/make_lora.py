#!/usr/bin/env python3
"""make_lora.py CONFIG.json OUT_DIR R ALPHA B_STD SEED: a random PEFT LoRA adapter folder
(adapter_config.json + adapter_model.safetensors, PEFT's names) for the DeepSeek model that
CONFIG.json (a Hugging Face config) describes, on o_proj, the dense MLPs, the shared experts and
every routed expert's gate/up/down (one module per expert, as PEFT wraps DeepSeek's nn.Linear
experts): the modules llama.cpp (c392e5094) applies a LoRA to in deepseek2, whose q_a / q_b /
kv_a / kv_b products are plain ggml_mul_mat calls that ignore adapters.
A ~ U(-1/sqrt(in), 1/sqrt(in)) as PEFT initialises it; B ~ N(0, B_STD) (a trained adapter's
B is not zero). Standard library only; float32, little-endian."""
import json
import os
import random
import struct
import sys


def main():
    cfg_path, out, r, alpha, b_std, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), \
        float(sys.argv[5]), int(sys.argv[6])
    c = json.load(open(cfg_path))
    rng = random.Random(seed)
    C, H = c["hidden_size"], c["num_attention_heads"]
    mods = []  # (module, out, in)
    for l in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % l
        mods.append((p + "self_attn.o_proj", C, H * c["v_head_dim"]))
        moe = l >= c["first_k_dense_replace"] and l % c.get("moe_layer_freq", 1) == 0
        mlps = []
        if not moe:
            mlps.append((p + "mlp.", c["intermediate_size"]))
        else:
            mlps += [(p + "mlp.experts.%d." % e, c["moe_intermediate_size"]) for e in range(c["n_routed_experts"])]
            if c.get("n_shared_experts"):
                mlps.append((p + "mlp.shared_experts.", c["moe_intermediate_size"] * c["n_shared_experts"]))
        for pre, f in mlps:
            mods += [(pre + "gate_proj", f, C), (pre + "up_proj", f, C), (pre + "down_proj", C, f)]
    tensors = {}
    for m, o, i in mods:
        bound = 1.0 / i ** 0.5
        tensors["base_model.model.%s.lora_A.weight" % m] = ((r, i), [rng.uniform(-bound, bound) for _ in range(r * i)])
        tensors["base_model.model.%s.lora_B.weight" % m] = ((o, r), [rng.gauss(0.0, b_std) for _ in range(o * r)])
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        shape, vals = tensors[name]
        blob = struct.pack("<%df" % len(vals), *vals)
        header[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "adapter_model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    targets = sorted({m.rsplit(".", 1)[1] for m, _, _ in mods})
    acfg = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": None, "r": r, "lora_alpha": alpha,
            "lora_dropout": 0.0, "target_modules": targets, "use_rslora": False, "bias": "none",
            "fan_in_fan_out": False, "use_dora": False, "init_lora_weights": True, "modules_to_save": None,
            "inference_mode": True}
    with open(os.path.join(out, "adapter_config.json"), "w") as f:
        json.dump(acfg, f, indent=2)
        f.write("\n")
    print("%s: %d LoRA modules, r %d" % (out, len(mods), r))


if __name__ == "__main__":
    main()
