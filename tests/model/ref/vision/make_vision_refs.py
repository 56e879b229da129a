#!/usr/bin/python3
"""Independent PyTorch reference outputs AND gradients for tiny ViT / CLIP-vision /
Swin / RoBERTa / SigLIP-vision encoders and LLaVA-style image features (CLIP tower +
vision_feature_layer + mlp2x_gelu projector) on random weights, plus llama.cpp's mmproj
GGUF of the LLaVA case written with llama.cpp's own gguf-py (LLAMA_CPP_GGUF_PY, default
/work/llama.cpp/gguf-py; only numpy is needed).

Run with Debian's torch 1.13 (the pyenv `python3` on PATH has no torch):

    /usr/bin/python3 tests/model/ref/vision/make_vision_refs.py

It is deterministic (fixed torch.Generator seeds): a rerun rewrites byte-identical
files.  For every case it writes tests/model/ref/vision/<case>/{config.json,
model.safetensors, expected.safetensors, expected.json}; see README.md next to
this script for the file layout and the exact semantics.

No `transformers` / `safetensors` package is used.  The forward passes below
re-implement, in plain float64 torch, the semantics of (huggingface/transformers,
src/transformers/models/...):

  * vit/modeling_vit.py: ViTEmbeddings, ViTPatchEmbeddings, ViTSelfAttention
      (eager_attention_forward), ViTSelfOutput, ViTAttention, ViTIntermediate,
      ViTOutput, ViTLayer, ViTEncoder, ViTPooler, ViTModel;
      vit/configuration_vit.py: ViTConfig
  * clip/modeling_clip.py: CLIPVisionEmbeddings, CLIPAttention, CLIPMLP,
      CLIPEncoderLayer, CLIPEncoder, CLIPVisionTransformer, CLIPVisionModel,
      CLIPVisionModelWithProjection; clip/configuration_clip.py: CLIPVisionConfig
  * swin/modeling_swin.py: window_partition, window_reverse, SwinEmbeddings,
      SwinPatchEmbeddings (maybe_pad), SwinPatchMerging (maybe_pad),
      SwinSelfAttention (relative_position_bias_table / relative_position_index),
      SwinSelfOutput, SwinIntermediate, SwinOutput, SwinLayer
      (set_shift_and_window_size, get_attn_mask, maybe_pad), SwinStage,
      SwinEncoder, SwinModel; swin/configuration_swin.py: SwinConfig
  * roberta/modeling_roberta.py: create_position_ids_from_input_ids,
      RobertaEmbeddings, RobertaSelfAttention, RobertaSelfOutput,
      RobertaAttention, RobertaIntermediate, RobertaOutput, RobertaLayer,
      RobertaEncoder, RobertaPooler, RobertaModel (extended additive attention
      mask (1 - mask) * finfo.min); roberta/configuration_roberta.py
  * siglip/modeling_siglip.py: SiglipVisionEmbeddings, SiglipAttention, SiglipMLP,
      SiglipEncoderLayer, SiglipVisionTransformer, SiglipMultiheadAttentionPoolingHead,
      SiglipVisionModel; siglip/configuration_siglip.py: SiglipVisionConfig
  * llava/modeling_llava.py: LlavaMultiModalProjector, LlavaForConditionalGeneration.
      get_image_features (vision_feature_layer, vision_feature_select_strategy)
  * activations.py: GELUActivation ("gelu" = exact erf GELU),
      QuickGELUActivation ("quick_gelu" = x * sigmoid(1.702 x)),
      PytorchGELUTanh ("gelu_pytorch_tanh")
  * llama.cpp c392e50 examples/llava/convert_image_encoder_to_gguf.py (the mmproj's keys,
      names, dtypes, the popped last layer) and clip.cpp (which blocks and rows it runs)

Weights are drawn in float32 with a fixed torch.Generator, written to
model.safetensors, READ BACK from that file and only then upcast to float64, so
the reference uses exactly the float32 values the C++ engine loads.

Every case is computed along two independent paths and the script asserts that
they agree (outputs and all gradients, atol 1e-10):

  path A  ("HF-faithful")  hand-written primitives (LayerNorm from mean/var,
          erf-GELU formula, explicit q/k/v attention with HF's additive masks,
          patch embedding as reshape + matmul over (c, py, px)-ordered patch
          rows, Swin via HF's window_partition / torch.roll / get_attn_mask /
          relative_position_index buffer, RoBERTa position ids via cumsum);
  path B  torch building blocks: F.conv2d, F.layer_norm, F.gelu, F.linear,
          F.embedding(padding_idx=...), F.multi_head_attention_forward (the core
          of nn.MultiheadAttention) with key_padding_mask / attn_mask; Swin as
          ONE global attention over all (padded) tokens of an image with an
          additive mask built from coordinates (-inf across windows, -100
          across shift regions, relative bias from coordinate differences),
          patch merging via reshape/permute; RoBERTa positions via a Python loop.

Further self-checks: central finite differences along a random direction for
every parameter tensor and the input (float64, path A) agree with autograd,
every parameter tensor changes the loss when perturbed, the Swin shift mask
matters in every stage that has one, RoBERTa's padded sequence equals the same
sequence run unpadded, and a float32 rerun of path A is recorded as a tolerance
hint in expected.json.
"""

import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DT = torch.float64

# --------------------------------------------------------------------------
# safetensors writer / reader (u64 LE header length, JSON header padded with
# spaces to a multiple of 8, raw little-endian data; data_offsets relative to
# the byte buffer after the header).  F32, I32 and I64 are supported.
# --------------------------------------------------------------------------

_ST = {torch.float32: ("F32", "<f4"), torch.int32: ("I32", "<i4"), torch.int64: ("I64", "<i8")}
_ST_BACK = {"F32": "<f4", "I32": "<i4", "I64": "<i8"}


def write_safetensors(path, tensors):
    names = sorted(tensors)
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    off = 0
    for n in names:
        t = tensors[n].detach().contiguous()
        code, npd = _ST[t.dtype]
        b = t.numpy().astype(npd).tobytes()
        header[n] = {"dtype": code, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[base + b:base + e], dtype=_ST_BACK[info["dtype"]]).reshape(info["shape"]).copy()
        out[name] = torch.from_numpy(arr)
    return out


# --------------------------------------------------------------------------
# Primitive sets.  Path A: hand-written.  Path B: torch building blocks.
# --------------------------------------------------------------------------


class OpsA:
    name = "A"

    @staticmethod
    def linear(x, w, b=None):
        y = x @ w.t()  # nn.Linear: W stored [out_features, in_features]
        return y if b is None else y + b

    @staticmethod
    def layer_norm(x, w, b, eps):
        # nn.LayerNorm: biased variance, eps inside the sqrt, then gain and bias
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + eps) * w + b

    @staticmethod
    def gelu(x):  # ACT2FN["gelu"] = GELUActivation = exact erf GELU
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))

    @staticmethod
    def quick_gelu(x):  # QuickGELUActivation
        return x * torch.sigmoid(1.702 * x)

    @staticmethod
    def gelu_tanh(x):  # ACT2FN["gelu_pytorch_tanh"] = PytorchGELUTanh: the tanh approximation
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))

    @staticmethod
    def patch_embed(pix, w, b):
        # Conv2d(kernel=stride=P) == linear map of each non-overlapping patch,
        # flattened in (c, py, px) order, i.e. w.reshape(C, 3*P*P); the patches
        # are then listed row-major over the (gh, gw) grid (flatten(2).transpose(1, 2)).
        B, Cin, H, W = pix.shape
        C, _, P, _ = w.shape
        gh, gw = H // P, W // P
        rows = pix.reshape(B, Cin, gh, P, gw, P).permute(0, 2, 4, 1, 3, 5).reshape(B, gh * gw, Cin * P * P)
        y = rows @ w.reshape(C, Cin * P * P).t()
        return y if b is None else y + b

    @staticmethod
    def attention(x, wq, bq, wk, bk, wv, bv, wo, bo, nh, add_mask=None):
        """HF eager attention: softmax(q k^T * d^-0.5 + mask) v, heads concatenated, then out dense.
        add_mask broadcasts against (B, nh, T, T)."""
        B, T, C = x.shape
        d = C // nh
        q = OpsA.linear(x, wq, bq).view(B, T, nh, d).transpose(1, 2)
        k = OpsA.linear(x, wk, bk).view(B, T, nh, d).transpose(1, 2)
        v = OpsA.linear(x, wv, bv).view(B, T, nh, d).transpose(1, 2)
        s = (q @ k.transpose(-1, -2)) * d ** -0.5
        if add_mask is not None:
            s = s + add_mask
        p = torch.softmax(s, dim=-1)
        o = (p @ v).transpose(1, 2).reshape(B, T, C)
        return OpsA.linear(o, wo, bo)


class OpsB:
    name = "B"

    @staticmethod
    def linear(x, w, b=None):
        return F.linear(x, w, b)

    @staticmethod
    def layer_norm(x, w, b, eps):
        return F.layer_norm(x, (x.shape[-1],), w, b, eps)

    @staticmethod
    def gelu(x):
        return F.gelu(x)

    @staticmethod
    def quick_gelu(x):
        return x / (1.0 + torch.exp(-1.702 * x))

    @staticmethod
    def gelu_tanh(x):
        return F.gelu(x, approximate="tanh")

    @staticmethod
    def patch_embed(pix, w, b):
        return F.conv2d(pix, w, b, stride=w.shape[-1]).flatten(2).transpose(1, 2)

    @staticmethod
    def attention(x, wq, bq, wk, bk, wv, bv, wo, bo, nh, key_padding_mask=None, attn_mask=None):
        """nn.MultiheadAttention core (in_proj = cat(q, k, v)); attn_mask (B*nh, T, T) float, added after scaling."""
        B, T, C = x.shape
        xt = x.transpose(0, 1)
        out, _ = F.multi_head_attention_forward(
            xt, xt, xt, C, nh, torch.cat([wq, wk, wv], 0), torch.cat([bq, bk, bv], 0), None, None, False, 0.0,
            wo, bo, training=False, key_padding_mask=key_padding_mask, need_weights=False, attn_mask=attn_mask)
        return out.transpose(0, 1)


def attn_ab(ops, x, W, p, names, nh, **kw):
    """names: (q, k, v, o) module-name suffixes under prefix p."""
    q, k, v, o = names
    args = (x, W[p + q + ".weight"], W[p + q + ".bias"], W[p + k + ".weight"], W[p + k + ".bias"],
            W[p + v + ".weight"], W[p + v + ".bias"], W[p + o + ".weight"], W[p + o + ".bias"], nh)
    if ops is OpsA:
        return OpsA.attention(*args, add_mask=kw.get("add_mask"))
    return OpsB.attention(*args, key_padding_mask=kw.get("key_padding_mask"), attn_mask=kw.get("attn_mask"))


def ln(ops, x, W, p, eps):
    return ops.layer_norm(x, W[p + ".weight"], W[p + ".bias"], eps)


def lin(ops, x, W, p, bias=True):
    return ops.linear(x, W[p + ".weight"], W[p + ".bias"] if bias else None)


# --------------------------------------------------------------------------
# ViT (ViTModel, add_pooling_layer=True)
# --------------------------------------------------------------------------


def vit_forward(ops, cfg, W, inp):
    pix = inp["pixel_values"]
    B = pix.shape[0]
    C, eps, nh = cfg["hidden_size"], cfg["layer_norm_eps"], cfg["num_attention_heads"]
    # ViTEmbeddings: cat(cls_token, patch rows) + position_embeddings (row 0 = CLS)
    emb = ops.patch_embed(pix, W["embeddings.patch_embeddings.projection.weight"],
                          W["embeddings.patch_embeddings.projection.bias"])
    h = torch.cat([W["embeddings.cls_token"].expand(B, 1, C), emb], dim=1) + W["embeddings.position_embeddings"]
    hs = [h]
    for i in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % i
        # ViTLayer: pre-norm.  h = h + dense(attn(LN_before(h))); h = h + out(gelu(inter(LN_after(h))))
        x = ln(ops, h, W, p + "layernorm_before", eps)
        h = h + attn_ab(ops, x, W, p, ("attention.attention.query", "attention.attention.key",
                                       "attention.attention.value", "attention.output.dense"), nh)
        x = ln(ops, h, W, p + "layernorm_after", eps)
        x = ops.gelu(lin(ops, x, W, p + "intermediate.dense"))
        h = h + lin(ops, x, W, p + "output.dense")
        hs.append(h)  # hidden_states: raw layer outputs (no final layernorm)
    last = ln(ops, h, W, "layernorm", eps)  # ViTModel.layernorm -> last_hidden_state
    pool = torch.tanh(lin(ops, last[:, 0], W, "pooler.dense"))  # ViTPooler on the normed CLS row
    return {"last_hidden_state": last, "pooler_output": pool, "hidden_states": hs}


def vit_config():
    return {
        "architectures": ["ViTModel"],
        "model_type": "vit",
        "attention_probs_dropout_prob": 0.0,
        "encoder_stride": 16,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "hidden_size": 32,
        "image_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "layer_norm_eps": 1e-12,
        "num_attention_heads": 4,
        "num_channels": 3,
        "num_hidden_layers": 2,
        "patch_size": 8,
        "pooler_act": "tanh",
        "pooler_output_size": 32,
        "qkv_bias": True,
        "torch_dtype": "float32",
    }


# --------------------------------------------------------------------------
# CLIP vision (CLIPVisionModel / CLIPVisionModelWithProjection)
# --------------------------------------------------------------------------


def clip_encoder_layers(ops, cfg, W, p0, h, hs, act):
    """CLIPEncoderLayer / SiglipEncoderLayer (the same pre-norm block and names) for every layer; each
    layer's output is appended to hs. Returns the last."""
    eps, nh = cfg["layer_norm_eps"], cfg["num_attention_heads"]
    for i in range(cfg["num_hidden_layers"]):
        p = p0 + "encoder.layers.%d." % i
        x = ln(ops, h, W, p + "layer_norm1", eps)
        h = h + attn_ab(ops, x, W, p, ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                       "self_attn.out_proj"), nh)
        x = ln(ops, h, W, p + "layer_norm2", eps)
        h = h + lin(ops, act(lin(ops, x, W, p + "mlp.fc1")), W, p + "mlp.fc2")
        hs.append(h)
    return h


def clip_forward(ops, cfg, W, inp, with_projection=False):
    pix = inp["pixel_values"]
    B = pix.shape[0]
    C, eps = cfg["hidden_size"], cfg["layer_norm_eps"]
    assert cfg["hidden_act"] == "quick_gelu"
    p0 = "vision_model."
    # CLIPVisionEmbeddings: conv without bias; cat(class_embedding, patches) + position_embedding(arange(1+N))
    emb = ops.patch_embed(pix, W[p0 + "embeddings.patch_embedding.weight"], None)
    h = torch.cat([W[p0 + "embeddings.class_embedding"].expand(B, 1, C), emb], dim=1)
    h = h + W[p0 + "embeddings.position_embedding.weight"][None]
    h = ln(ops, h, W, p0 + "pre_layrnorm", eps)  # hidden_states[0] is AFTER pre_layrnorm
    hs = [h]
    h = clip_encoder_layers(ops, cfg, W, p0, h, hs, ops.quick_gelu)
    last = h  # CLIP: last_hidden_state is NOT post-layernormed
    pool = ln(ops, last[:, 0], W, p0 + "post_layernorm", eps)
    out = {"last_hidden_state": last, "hidden_states": hs}
    if with_projection:
        out["image_embeds"] = ops.linear(pool, W["visual_projection.weight"])  # no bias
    else:
        out["pooler_output"] = pool
    return out


def clip_config(with_projection):
    return {
        "architectures": ["CLIPVisionModelWithProjection" if with_projection else "CLIPVisionModel"],
        "model_type": "clip_vision_model",
        "attention_dropout": 0.0,
        "dropout": 0.0,
        "hidden_act": "quick_gelu",
        "hidden_size": 32,
        "image_size": 32,
        "initializer_factor": 1.0,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "layer_norm_eps": 1e-05,
        "num_attention_heads": 4,
        "num_channels": 3,
        "num_hidden_layers": 2,
        "patch_size": 8,
        "projection_dim": 16,
        "torch_dtype": "float32",
    }


# --------------------------------------------------------------------------
# SigLIP vision (SiglipVisionModel, vision_use_head=True)
# --------------------------------------------------------------------------


def siglip_head(ops, cfg, W, last):
    """SiglipMultiheadAttentionPoolingHead: probe -> nn.MultiheadAttention(probe, last, last) -> p + mlp(LN(p)) -> [:, 0]."""
    B, T, C = last.shape
    nh, eps = cfg["num_attention_heads"], cfg["layer_norm_eps"]
    H = "vision_model.head."
    probe = W[H + "probe"].expand(B, 1, C)
    wi, bi = W[H + "attention.in_proj_weight"], W[H + "attention.in_proj_bias"]
    wo, bo = W[H + "attention.out_proj.weight"], W[H + "attention.out_proj.bias"]
    if ops is OpsA:  # in_proj_weight = cat(W_q, W_k, W_v) rows; softmax(q k^T / sqrt(d)) v per head
        d = C // nh
        q = OpsA.linear(probe, wi[:C], bi[:C]).view(B, 1, nh, d).transpose(1, 2)
        k = OpsA.linear(last, wi[C:2 * C], bi[C:2 * C]).view(B, T, nh, d).transpose(1, 2)
        v = OpsA.linear(last, wi[2 * C:], bi[2 * C:]).view(B, T, nh, d).transpose(1, 2)
        pr = torch.softmax((q @ k.transpose(-1, -2)) * d ** -0.5, dim=-1)
        a = OpsA.linear((pr @ v).transpose(1, 2).reshape(B, 1, C), wo, bo)
    else:  # the core of nn.MultiheadAttention(batch_first=True): (L, N, E) layout
        a, _ = F.multi_head_attention_forward(
            probe.transpose(0, 1), last.transpose(0, 1), last.transpose(0, 1), C, nh, wi, bi, None, None, False, 0.0,
            wo, bo, training=False, need_weights=False)
        a = a.transpose(0, 1)
    x = ln(ops, a, W, H + "layernorm", eps)
    x = lin(ops, ops.gelu_tanh(lin(ops, x, W, H + "mlp.fc1")), W, H + "mlp.fc2")
    return (a + x)[:, 0]


def siglip_forward(ops, cfg, W, inp):
    pix = inp["pixel_values"]
    eps = cfg["layer_norm_eps"]
    assert cfg["hidden_act"] == "gelu_pytorch_tanh"
    p0 = "vision_model."
    # SiglipVisionEmbeddings: conv WITH bias, no class token, position_embedding(arange(num_patches))
    h = ops.patch_embed(pix, W[p0 + "embeddings.patch_embedding.weight"], W[p0 + "embeddings.patch_embedding.bias"])
    h = h + W[p0 + "embeddings.position_embedding.weight"][None]
    hs = [h]  # hidden_states[0]: the embeddings (no pre-norm)
    h = clip_encoder_layers(ops, cfg, W, p0, h, hs, ops.gelu_tanh)
    last = ln(ops, h, W, p0 + "post_layernorm", eps)  # last_hidden_state: post_layernorm over every row
    return {"last_hidden_state": last, "pooler_output": siglip_head(ops, cfg, W, last), "hidden_states": hs}


def siglip_config():
    return {
        "architectures": ["SiglipVisionModel"],
        "model_type": "siglip_vision_model",
        "attention_dropout": 0.0,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_size": 32,
        "image_size": 32,
        "intermediate_size": 64,
        "layer_norm_eps": 1e-06,
        "num_attention_heads": 4,
        "num_channels": 3,
        "num_hidden_layers": 2,
        "patch_size": 8,
        "vision_use_head": True,
        "torch_dtype": "float32",
    }


# --------------------------------------------------------------------------
# LLaVA-style image features: CLIP tower + vision_feature_layer + select strategy + mlp2x_gelu
# --------------------------------------------------------------------------


def llava_projector(ops, W, x):
    """LlavaMultiModalProjector: linear_1 -> ACT2FN[projector_hidden_act="gelu"] (erf) -> linear_2."""
    x = lin(ops, x, W, "multi_modal_projector.linear_1")
    return lin(ops, ops.gelu(x), W, "multi_modal_projector.linear_2")


def llava_forward(ops, cfg, W, inp):
    """LlavaForConditionalGeneration.get_image_features on a CLIPVisionModel tower (the whole tower runs,
    output_hidden_states=True; hidden_states[vision_feature_layer]; 'default' drops row 0).
    mmproj_features: what llama.cpp's clip.cpp computes from the converter's mmproj of the same weights
    (the converter stores num_hidden_layers - 1 blocks, clip.cpp runs block_count - 1 of them:
    hidden_states[L - 2], class row dropped, the same projector)."""
    out = clip_forward(ops, cfg, W, inp)
    hs = out["hidden_states"]
    sel = hs[cfg["vision_feature_layer"]]
    assert cfg["vision_feature_select_strategy"] == "default" and cfg["projector_hidden_act"] == "gelu"
    L = cfg["num_hidden_layers"]
    return {"image_features": llava_projector(ops, W, sel[:, 1:]), "hidden_states": hs,
            "mmproj_features": llava_projector(ops, W, hs[L - 2][:, 1:])}


def llava_config():
    c = clip_config(False)
    c["num_hidden_layers"] = 3
    c.update({"mm_projector_type": "mlp2x_gelu", "text_hidden_size": 48, "vision_feature_layer": -2,
              "vision_feature_select_strategy": "default", "projector_hidden_act": "gelu"})
    return c


# --------------------------------------------------------------------------
# Swin (SwinModel, add_pooling_layer=True)
# --------------------------------------------------------------------------

SWIN_FIXED_LN_EPS = 1e-5  # SwinEmbeddings.norm and SwinPatchMerging.norm are nn.LayerNorm(dim): default eps


def swin_relative_position_index(ws):
    """Exactly SwinSelfAttention.__init__ (meshgrid 'ij', coords_flatten, ...)."""
    coords = torch.stack(torch.meshgrid([torch.arange(ws), torch.arange(ws)], indexing="ij"))
    cf = torch.flatten(coords, 1)
    rel = (cf[:, :, None] - cf[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += ws - 1
    rel[:, :, 1] += ws - 1
    rel[:, :, 0] *= 2 * ws - 1
    return rel.sum(-1)  # int64, [ws*ws, ws*ws]


def window_partition(x, ws):
    B, H, W, C = x.shape
    x = x.view(B, H // ws, ws, W // ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, ws, ws, C)


def window_reverse(windows, ws, H, W):
    C = windows.shape[-1]
    x = windows.view(-1, H // ws, W // ws, ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(-1, H, W, C)


def swin_get_attn_mask(Hp, Wp, ws, shift, dtype):
    """SwinLayer.get_attn_mask: region labels 0..8 from 3x3 slices, -100 where labels differ."""
    if shift <= 0:
        return None
    img = torch.zeros((1, Hp, Wp, 1), dtype=dtype)
    sl = (slice(0, -ws), slice(-ws, -shift), slice(-shift, None))
    cnt = 0
    for hs in sl:
        for wsl in sl:
            img[:, hs, wsl, :] = cnt
            cnt += 1
    mw = window_partition(img, ws).view(-1, ws * ws)
    m = mw.unsqueeze(1) - mw.unsqueeze(2)
    return m.masked_fill(m != 0, -100.0).masked_fill(m == 0, 0.0)  # [nW, N, N]


def swin_window_attention_A(x, W, p, nh, ws, shift, dims, use_mask=True):
    """x: LN_before output (B, H*W, C).  Returns the attention branch (B, H*W, C), HF order of ops."""
    H, Wd = dims
    B, _, C = x.shape
    x = x.view(B, H, Wd, C)
    pad_r = (ws - Wd % ws) % ws
    pad_b = (ws - H % ws) % ws
    x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    Hp, Wp = x.shape[1], x.shape[2]
    if shift > 0:
        x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
    win = window_partition(x, ws).view(-1, ws * ws, C)  # window order: (b, wy, wx) row-major
    mask = swin_get_attn_mask(Hp, Wp, ws, shift, x.dtype) if use_mask else None
    Bw, N, _ = win.shape
    d = C // nh
    q = OpsA.linear(win, W[p + "attention.self.query.weight"], W[p + "attention.self.query.bias"])
    k = OpsA.linear(win, W[p + "attention.self.key.weight"], W[p + "attention.self.key.bias"])
    v = OpsA.linear(win, W[p + "attention.self.value.weight"], W[p + "attention.self.value.bias"])
    q, k, v = (t.view(Bw, N, nh, d).permute(0, 2, 1, 3) for t in (q, k, v))
    s = (q @ k.transpose(-1, -2)) / math.sqrt(d)
    table = W[p + "attention.self.relative_position_bias_table"]
    rpi = W[p + "attention.self.relative_position_index"]
    bias = table[rpi.view(-1)].view(ws * ws, ws * ws, -1).permute(2, 0, 1).contiguous()
    s = s + bias.unsqueeze(0)
    if mask is not None:
        nW = mask.shape[0]
        s = s.view(Bw // nW, nW, nh, N, N) + mask.unsqueeze(1).unsqueeze(0)
        s = s.view(-1, nh, N, N)
    pr = torch.softmax(s, dim=-1)
    ctx = (pr @ v).permute(0, 2, 1, 3).contiguous().view(Bw, N, C)
    ao = OpsA.linear(ctx, W[p + "attention.output.dense.weight"], W[p + "attention.output.dense.bias"])
    ao = window_reverse(ao.view(-1, ws, ws, C), ws, Hp, Wp)
    if shift > 0:
        ao = torch.roll(ao, shifts=(shift, shift), dims=(1, 2))
    ao = ao[:, :H, :Wd, :].contiguous()
    return ao.view(B, H * Wd, C)


def swin_window_attention_B(x, W, p, nh, ws, shift, dims, use_mask=True):
    """Same function as ONE global attention per image over the padded grid, additive mask from coordinates."""
    H, Wd = dims
    B, _, C = x.shape
    Hp, Wp = -(-H // ws) * ws, -(-Wd // ws) * ws
    xp = x.new_zeros(B, Hp, Wp, C)
    xp[:, :H, :Wd] = x.view(B, H, Wd, C)  # zero padding AFTER layernorm_before (padded tokens are keys too)
    L = Hp * Wp
    yy, xx = torch.meshgrid(torch.arange(Hp), torch.arange(Wp), indexing="ij")
    ys = ((yy - shift) % Hp).reshape(-1)  # position in the cyclically shifted frame
    xs = ((xx - shift) % Wp).reshape(-1)
    win_id = (ys // ws) * (Wp // ws) + xs // ws
    same_win = win_id[:, None] == win_id[None, :]
    if shift > 0 and use_mask:
        def region(c, n):
            return (c >= n - ws).long() + (c >= n - shift).long()
        ry, rx = region(ys, Hp), region(xs, Wp)
        same_reg = (ry[:, None] == ry[None, :]) & (rx[:, None] == rx[None, :])
    else:
        same_reg = torch.ones(L, L, dtype=torch.bool)
    rel = (ys[:, None] - ys[None, :] + ws - 1) * (2 * ws - 1) + (xs[:, None] - xs[None, :] + ws - 1)
    rel = torch.where(same_win, rel, torch.zeros_like(rel))
    table = W[p + "attention.self.relative_position_bias_table"]
    bias = table[rel].permute(2, 0, 1)  # [nh, L, L]
    add = bias + torch.where(same_reg, 0.0, -100.0).to(bias.dtype)
    add = torch.where(same_win[None], add, torch.full_like(add, float("-inf")))
    add = add.unsqueeze(0).expand(B, nh, L, L).reshape(B * nh, L, L)
    out = attn_ab(OpsB, xp.view(B, L, C), W, p, ("attention.self.query", "attention.self.key",
                                                 "attention.self.value", "attention.output.dense"),
                  nh, attn_mask=add)
    return out.view(B, Hp, Wp, C)[:, :H, :Wd].reshape(B, H * Wd, C)


def swin_merge(ops, h, W, p, dims):
    H, Wd = dims
    B, _, C = h.shape
    x = h.view(B, H, Wd, C)
    if ops is OpsA:  # SwinPatchMerging: pad odd dims, cat x0..x3, norm, reduction (no bias)
        if H % 2 == 1 or Wd % 2 == 1:
            x = F.pad(x, (0, 0, 0, Wd % 2, 0, H % 2))
        x0 = x[:, 0::2, 0::2, :]
        x1 = x[:, 1::2, 0::2, :]
        x2 = x[:, 0::2, 1::2, :]
        x3 = x[:, 1::2, 1::2, :]
        x = torch.cat([x0, x1, x2, x3], -1).view(B, -1, 4 * C)
    else:  # channel index = (2*dx + dy)*C + c  with (dy, dx) the row/col offset inside the 2x2 block
        He, We = H + H % 2, Wd + Wd % 2
        xp = x.new_zeros(B, He, We, C)
        xp[:, :H, :Wd] = x
        x = xp.view(B, He // 2, 2, We // 2, 2, C).permute(0, 1, 3, 4, 2, 5).reshape(B, -1, 4 * C)
    x = ln(ops, x, W, p + "downsample.norm", SWIN_FIXED_LN_EPS)
    return lin(ops, x, W, p + "downsample.reduction", bias=False)


def swin_forward(ops, cfg, W, inp, disable_mask_stage=None):
    pix = inp["pixel_values"]
    B, _, H, Wd = pix.shape
    P, ws, eps = cfg["patch_size"], cfg["window_size"], cfg["layer_norm_eps"]
    assert not cfg["use_absolute_embeddings"]
    # SwinPatchEmbeddings.maybe_pad: zero-pad right / bottom up to a multiple of patch_size
    if ops is OpsA:
        if Wd % P:
            pix = F.pad(pix, (0, P - Wd % P))
        if H % P:
            pix = F.pad(pix, (0, 0, 0, P - H % P))
    else:
        Hq, Wq = -(-H // P) * P, -(-Wd // P) * P
        pp = pix.new_zeros(B, pix.shape[1], Hq, Wq)
        pp[:, :, :H, :Wd] = pix
        pix = pp
    dims = (pix.shape[2] // P, pix.shape[3] // P)
    h = ops.patch_embed(pix, W["embeddings.patch_embeddings.projection.weight"],
                        W["embeddings.patch_embeddings.projection.bias"])
    h = ln(ops, h, W, "embeddings.norm", SWIN_FIXED_LN_EPS)  # always present; eps fixed 1e-5
    hs = [h]
    n_st = len(cfg["depths"])
    for s in range(n_st):
        nh = cfg["num_heads"][s]
        for bi in range(cfg["depths"][s]):
            p = "encoder.layers.%d.blocks.%d." % (s, bi)
            shift = 0 if bi % 2 == 0 else ws // 2
            wsz = ws
            if min(dims) <= ws:  # SwinLayer.set_shift_and_window_size
                shift, wsz = 0, min(dims)
                assert wsz == ws, "HF would fail: relative bias is sized for the config window"
            x = ln(ops, h, W, p + "layernorm_before", eps)
            fn = swin_window_attention_A if ops is OpsA else swin_window_attention_B
            h = h + fn(x, W, p, nh, wsz, shift, dims, use_mask=(disable_mask_stage != s))
            x = ln(ops, h, W, p + "layernorm_after", eps)
            x = ops.gelu(lin(ops, x, W, p + "intermediate.dense"))
            h = h + lin(ops, x, W, p + "output.dense")
        if s < n_st - 1:
            h = swin_merge(ops, h, W, "encoder.layers.%d." % s, dims)
            dims = ((dims[0] + 1) // 2, (dims[1] + 1) // 2)
        hs.append(h)  # SwinEncoder: hidden_states after each stage INCLUDING its downsample
    last = ln(ops, h, W, "layernorm", eps)
    pool = last.mean(dim=1)  # AdaptiveAvgPool1d(1) over tokens, flatten
    return {"last_hidden_state": last, "pooler_output": pool, "hidden_states": hs}


def swin_config(image_size):
    return {
        "architectures": ["SwinModel"],
        "model_type": "swin",
        "attention_probs_dropout_prob": 0.0,
        "depths": [2, 2],
        "drop_path_rate": 0.0,
        "embed_dim": 16,
        "encoder_stride": 32,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "hidden_size": 32,
        "image_size": image_size,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-05,
        "mlp_ratio": 2.0,
        "num_channels": 3,
        "num_heads": [2, 4],
        "num_layers": 2,
        "out_features": ["stage2"],
        "out_indices": [2],
        "patch_size": 2,
        "qkv_bias": True,
        "stage_names": ["stem", "stage1", "stage2"],
        "use_absolute_embeddings": False,
        "window_size": 4,
        "torch_dtype": "float32",
    }


# --------------------------------------------------------------------------
# RoBERTa (RobertaModel, add_pooling_layer=True)
# --------------------------------------------------------------------------


def roberta_position_ids_A(ids, pad):
    # create_position_ids_from_input_ids (past_key_values_length = 0)
    mask = ids.ne(pad).int()
    return (torch.cumsum(mask, dim=1).type_as(mask) * mask).long() + pad


def roberta_position_ids_B(ids, pad):
    out = []
    for row in ids.tolist():
        n, r = 0, []
        for t in row:
            if t == pad:
                r.append(pad)
            else:
                n += 1
                r.append(pad + n)
        out.append(r)
    return torch.tensor(out, dtype=torch.long)


def roberta_forward(ops, cfg, W, inp):
    ids, am = inp["input_ids"], inp["attention_mask"]
    pad, eps, nh = cfg["pad_token_id"], cfg["layer_norm_eps"], cfg["num_attention_heads"]
    if ops is OpsA:
        pos = roberta_position_ids_A(ids, pad)
        inputs_embeds = W["embeddings.word_embeddings.weight"][ids]
        pe = W["embeddings.position_embeddings.weight"][pos]
        te = W["embeddings.token_type_embeddings.weight"][torch.zeros_like(ids)]
    else:
        pos = roberta_position_ids_B(ids, pad)
        inputs_embeds = F.embedding(ids, W["embeddings.word_embeddings.weight"], padding_idx=pad)
        pe = F.embedding(pos, W["embeddings.position_embeddings.weight"], padding_idx=pad)
        te = F.embedding(torch.zeros_like(ids), W["embeddings.token_type_embeddings.weight"])
    # RobertaEmbeddings: (inputs_embeds + token_type) + position, then LayerNorm
    h = ln(ops, (inputs_embeds + te) + pe, W, "embeddings.LayerNorm", eps)
    hs = [h]
    if ops is OpsA:
        kw = {"add_mask": (1.0 - am[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min}
    else:
        kw = {"key_padding_mask": am == 0}
    for i in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % i
        # BERT post-norm: a = LN(dense(attn(h)) + h); h = LN(out(gelu(inter(a))) + a)
        a = attn_ab(ops, h, W, p, ("attention.self.query", "attention.self.key", "attention.self.value",
                                   "attention.output.dense"), nh, **kw)
        a = ln(ops, a + h, W, p + "attention.output.LayerNorm", eps)
        x = ops.gelu(lin(ops, a, W, p + "intermediate.dense"))
        h = ln(ops, lin(ops, x, W, p + "output.dense") + a, W, p + "output.LayerNorm", eps)
        hs.append(h)
    pool = torch.tanh(lin(ops, h[:, 0], W, "pooler.dense"))
    return {"last_hidden_state": h, "pooler_output": pool, "hidden_states": hs,
            "inputs_embeds": inputs_embeds, "position_ids": pos}


def roberta_config():
    return {
        "architectures": ["RobertaModel"],
        "model_type": "roberta",
        "attention_probs_dropout_prob": 0.1,
        "bos_token_id": 0,
        "classifier_dropout": None,
        "eos_token_id": 2,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": 32,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "layer_norm_eps": 1e-05,
        "max_position_embeddings": 40,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "pad_token_id": 1,
        "position_embedding_type": "absolute",
        "type_vocab_size": 1,
        "use_cache": True,
        "vocab_size": 100,
        "torch_dtype": "float32",
    }


# --------------------------------------------------------------------------
# Random weights / inputs
# --------------------------------------------------------------------------


class Rng:
    def __init__(self, seed):
        self.g = torch.Generator().manual_seed(seed)

    def n(self, *shape, std=1.0):
        return torch.randn(*shape, generator=self.g, dtype=torch.float32) * std

    def gain(self, n):
        return 1.0 + 0.1 * torch.randn(n, generator=self.g, dtype=torch.float32)

    def lin(self, W, name, out_f, in_f, std, bias=True):
        W[name + ".weight"] = self.n(out_f, in_f, std=std)
        if bias:
            W[name + ".bias"] = self.n(out_f, std=0.1)

    def ln(self, W, name, n):
        W[name + ".weight"] = self.gain(n)
        W[name + ".bias"] = self.n(n, std=0.1)


def mat_std(fan_in):
    return 1.1 / math.sqrt(fan_in)  # ~0.2 for fan_in 32: activations of order 1


def vit_weights(cfg, r):
    C, I, P = cfg["hidden_size"], cfg["intermediate_size"], cfg["patch_size"]
    N = (cfg["image_size"] // P) ** 2
    W = {
        "embeddings.cls_token": r.n(1, 1, C, std=0.5),
        "embeddings.position_embeddings": r.n(1, N + 1, C, std=0.5),
        "embeddings.patch_embeddings.projection.weight": r.n(C, 3, P, P, std=mat_std(3 * P * P)),
        "embeddings.patch_embeddings.projection.bias": r.n(C, std=0.1),
    }
    for i in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % i
        r.ln(W, p + "layernorm_before", C)
        for m in ("query", "key", "value"):
            r.lin(W, p + "attention.attention." + m, C, C, mat_std(C))
        r.lin(W, p + "attention.output.dense", C, C, mat_std(C))
        r.ln(W, p + "layernorm_after", C)
        r.lin(W, p + "intermediate.dense", I, C, mat_std(C))
        r.lin(W, p + "output.dense", C, I, mat_std(I))
    r.ln(W, "layernorm", C)
    r.lin(W, "pooler.dense", C, C, mat_std(C))
    return W


def clip_layer_weights(cfg, r, W, p0):
    """The encoder layers and post_layernorm of CLIP's and SigLIP's vision towers (the same names)."""
    C, I = cfg["hidden_size"], cfg["intermediate_size"]
    for i in range(cfg["num_hidden_layers"]):
        p = p0 + "encoder.layers.%d." % i
        for m in ("k_proj", "v_proj", "q_proj", "out_proj"):
            r.lin(W, p + "self_attn." + m, C, C, mat_std(C))
        r.ln(W, p + "layer_norm1", C)
        r.lin(W, p + "mlp.fc1", I, C, mat_std(C))
        r.lin(W, p + "mlp.fc2", C, I, mat_std(I))
        r.ln(W, p + "layer_norm2", C)
    r.ln(W, p0 + "post_layernorm", C)


def clip_weights(cfg, r, with_projection):
    C, P = cfg["hidden_size"], cfg["patch_size"]
    N = (cfg["image_size"] // P) ** 2
    p0 = "vision_model."
    W = {
        p0 + "embeddings.class_embedding": r.n(C, std=0.5),
        p0 + "embeddings.patch_embedding.weight": r.n(C, 3, P, P, std=mat_std(3 * P * P)),
        p0 + "embeddings.position_embedding.weight": r.n(N + 1, C, std=0.5),
    }
    r.ln(W, p0 + "pre_layrnorm", C)
    clip_layer_weights(cfg, r, W, p0)
    if with_projection:
        W["visual_projection.weight"] = r.n(cfg["projection_dim"], C, std=mat_std(C))
    return W


def siglip_weights(cfg, r):
    C, I, P = cfg["hidden_size"], cfg["intermediate_size"], cfg["patch_size"]
    N = (cfg["image_size"] // P) ** 2
    p0 = "vision_model."
    W = {
        p0 + "embeddings.patch_embedding.weight": r.n(C, 3, P, P, std=mat_std(3 * P * P)),
        p0 + "embeddings.patch_embedding.bias": r.n(C, std=0.1),
        p0 + "embeddings.position_embedding.weight": r.n(N, C, std=0.5),
    }
    clip_layer_weights(cfg, r, W, p0)
    H = p0 + "head."
    W[H + "probe"] = r.n(1, 1, C, std=1.0)
    W[H + "attention.in_proj_weight"] = r.n(3 * C, C, std=mat_std(C))
    W[H + "attention.in_proj_bias"] = r.n(3 * C, std=0.1)
    r.lin(W, H + "attention.out_proj", C, C, mat_std(C))
    r.ln(W, H + "layernorm", C)
    r.lin(W, H + "mlp.fc1", I, C, mat_std(C))
    r.lin(W, H + "mlp.fc2", C, I, mat_std(I))
    return W


def llava_weights(cfg, r):
    """CLIP tower + projector; every matrix (2-D / 4-D weight, the position table) rounded to float16 so the
    Hugging Face folder (F32) and the mmproj (the converter's f16 matrices) hold the same values."""
    W = clip_weights(cfg, r, False)
    C, D = cfg["hidden_size"], cfg["text_hidden_size"]
    r.lin(W, "multi_modal_projector.linear_1", D, C, mat_std(C))
    r.lin(W, "multi_modal_projector.linear_2", D, D, mat_std(D))
    for k in W:
        if W[k].dim() >= 2:
            W[k] = W[k].half().float()
    return W


def swin_weights(cfg, r):
    P, E, ws = cfg["patch_size"], cfg["embed_dim"], cfg["window_size"]
    W = {
        "embeddings.patch_embeddings.projection.weight": r.n(E, 3, P, P, std=mat_std(3 * P * P)),
        "embeddings.patch_embeddings.projection.bias": r.n(E, std=0.1),
    }
    r.ln(W, "embeddings.norm", E)
    n_st = len(cfg["depths"])
    for s in range(n_st):
        C = E * 2 ** s
        nh = cfg["num_heads"][s]
        I = int(cfg["mlp_ratio"] * C)
        for bi in range(cfg["depths"][s]):
            p = "encoder.layers.%d.blocks.%d." % (s, bi)
            r.ln(W, p + "layernorm_before", C)
            W[p + "attention.self.relative_position_bias_table"] = r.n((2 * ws - 1) ** 2, nh, std=0.5)
            # persistent buffer -> part of state_dict -> written by save_pretrained (int64)
            W[p + "attention.self.relative_position_index"] = swin_relative_position_index(ws)
            for m in ("query", "key", "value"):
                r.lin(W, p + "attention.self." + m, C, C, mat_std(C))
            r.lin(W, p + "attention.output.dense", C, C, mat_std(C))
            r.ln(W, p + "layernorm_after", C)
            r.lin(W, p + "intermediate.dense", I, C, mat_std(C))
            r.lin(W, p + "output.dense", C, I, mat_std(I))
        if s < n_st - 1:
            p = "encoder.layers.%d.downsample." % s
            r.ln(W, p + "norm", 4 * C)
            r.lin(W, p + "reduction", 2 * C, 4 * C, mat_std(4 * C), bias=False)
    r.ln(W, "layernorm", E * 2 ** (n_st - 1))
    return W


def roberta_weights(cfg, r):
    C, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    W = {
        "embeddings.word_embeddings.weight": r.n(V, C, std=0.5),
        "embeddings.position_embeddings.weight": r.n(cfg["max_position_embeddings"], C, std=0.5),
        "embeddings.token_type_embeddings.weight": r.n(cfg["type_vocab_size"], C, std=0.5),
    }
    r.ln(W, "embeddings.LayerNorm", C)
    for i in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % i
        for m in ("query", "key", "value"):
            r.lin(W, p + "attention.self." + m, C, C, mat_std(C))
        r.lin(W, p + "attention.output.dense", C, C, mat_std(C))
        r.ln(W, p + "attention.output.LayerNorm", C)
        r.lin(W, p + "intermediate.dense", I, C, mat_std(C))
        r.lin(W, p + "output.dense", C, I, mat_std(I))
        r.ln(W, p + "output.LayerNorm", C)
    r.lin(W, "pooler.dense", C, C, mat_std(C))
    return W


def image_inputs(r, B, H, W):
    return {"pixel_values": r.n(B, 3, H, W)}


def roberta_inputs(r, cfg, T=12, real_len=(12, 8)):
    pad = cfg["pad_token_id"]
    rows, masks = [], []
    for L in real_len:
        body = (torch.randint(3, cfg["vocab_size"], (L - 2,), generator=r.g)).tolist()
        row = [cfg["bos_token_id"]] + body + [cfg["eos_token_id"]] + [pad] * (T - L)
        rows.append(row)
        masks.append([1] * L + [0] * (T - L))
    ids = torch.tensor(rows, dtype=torch.long)
    assert not bool((ids[:, :min(real_len)] == pad).any())
    return {"input_ids": ids, "attention_mask": torch.tensor(masks, dtype=torch.long)}


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------


class Case:
    def __init__(self, name, cfg, seed, kind, forward, weights, inputs, pool_key="pooler_output", note="",
                 last_key="last_hidden_state", extra_keys=(), unused=(), after=None):
        self.name, self.cfg, self.seed, self.kind = name, cfg, seed, kind
        self.forward, self.weights, self.inputs = forward, weights, inputs
        self.pool_key, self.note = pool_key, note
        self.last_key = last_key      # the loss's first term (and out.<last_key>)
        self.extra_keys = extra_keys  # more outputs recorded (not in the loss)
        self.unused = unused          # name prefixes of tensors the output does not read: exactly zero gradient
        self.after = after            # extra files written from (case, out_dir, weights, inputs, path-A outputs)


def run(case, ops, Wfile, inp, r_last, r_pool, dtype=DT, need_grad=True):
    """Forward + loss (+ gradients) along one path.  Wfile: tensors as read from model.safetensors."""
    W = {}
    for k, v in Wfile.items():
        W[k] = v.to(dtype).requires_grad_(need_grad) if v.is_floating_point() else v
    x = {}
    for k, v in inp.items():
        x[k] = v.to(dtype).requires_grad_(need_grad) if v.is_floating_point() else v
    out = case.forward(ops, case.cfg, W, x)
    L = (out[case.last_key] * r_last.to(dtype)).sum()
    if case.pool_key is not None:
        L = L + (out[case.pool_key] * r_pool.to(dtype)).sum()
    grads = {}
    if need_grad:
        pnames = [k for k in W if W[k].is_floating_point()]
        if case.kind == "vision":
            wrt, gnames = [W[k] for k in pnames] + [x["pixel_values"]], pnames + ["input.pixel_values"]
        else:
            wrt, gnames = [W[k] for k in pnames] + [out["inputs_embeds"]], pnames + ["input.inputs_embeds"]
        gs = torch.autograd.grad(L, wrt, allow_unused=True)  # unused: tensors past a feature layer
        grads = {n: (g if g is not None else torch.zeros_like(w)) for n, g, w in zip(gnames, gs, wrt)}
    return out, L, grads


def flat_outputs(case, out):
    d = {"out." + case.last_key: out[case.last_key]}
    if case.pool_key is not None:
        d["out." + case.pool_key] = out[case.pool_key]
    for k in case.extra_keys:
        d["out." + k] = out[k]
    for i, h in enumerate(out["hidden_states"]):
        d["out.hidden_states.%d" % i] = h
    return d


def maxdiff(a, b):
    return (a.detach().double() - b.detach().double()).abs().max().item()


def fd_checks(case, Wfile, inp, r_last, r_pool, grads, rng):
    """Central finite differences (float64, path A) along a random direction per tensor."""
    def loss_with(Wmod, inpmod):
        with torch.no_grad():
            return run(case, OpsA, Wmod, inpmod, r_last, r_pool, need_grad=False)[1].item()

    W64 = {k: (v.double() if v.is_floating_point() else v) for k, v in Wfile.items()}
    inp64 = {k: (v.double() if v.is_floating_point() else v) for k, v in inp.items()}
    L0 = loss_with(W64, inp64)
    worst = 0.0
    n_keyb = 0
    targets = [k for k in W64 if W64[k].is_floating_point()]
    if case.kind == "vision":
        targets.append("input.pixel_values")
    for k in targets:
        base = inp64["pixel_values"] if k == "input.pixel_values" else W64[k]
        d = torch.randn(base.shape, generator=rng, dtype=DT)
        an = (grads[k] * d).sum().item()
        def cdiff(eps):
            vals = []
            for sgn in (1.0, -1.0):
                if k == "input.pixel_values":
                    vals.append(loss_with(W64, dict(inp64, pixel_values=base + sgn * eps * d)))
                else:
                    vals.append(loss_with(dict(W64, **{k: base + sgn * eps * d}), inp64))
            return (vals[0] - vals[1]) / (2 * eps)
        gnorm = grads[k].norm().item()
        if k.startswith(tuple(case.unused)):
            # past the feature layer / a norm the output does not read: no gradient, no effect
            Lp = loss_with(dict(W64, **{k: base + 0.05 * d}), inp64)
            assert gnorm == 0.0 and Lp == L0, (case.name, k, gnorm, Lp - L0)
            continue
        fd = (4.0 * cdiff(0.5e-4) - cdiff(1e-4)) / 3.0  # Richardson: O(eps^4)
        if k.endswith(KEY_BIAS_SUFFIXES):
            # softmax is invariant to q.b_k (the same for every key of a query row): exact zero gradient
            assert gnorm < 1e-12 and abs(fd) < 1e-8, (case.name, k, gnorm, fd)
            n_keyb += 1
            continue
        err = abs(fd - an) / max(abs(an), 1e-3)
        worst = max(worst, err)
        assert err < 1e-7, (case.name, k, fd, an)
        # "perturbing this tensor changes the loss"
        Lp = loss_with(W64, dict(inp64, pixel_values=base + 0.05 * d)) if k == "input.pixel_values" else \
            loss_with(dict(W64, **{k: base + 0.05 * d}), inp64)
        assert gnorm > 1e-6 and abs(Lp - L0) > 1e-6, (case.name, k, gnorm, Lp - L0)
    return worst, len(targets), n_keyb


KEY_BIAS_SUFFIXES = ("attention.attention.key.bias", "attention.self.key.bias", "self_attn.k_proj.bias")


def summarize(t):
    f = t.detach().double().reshape(-1)
    return {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""),
            "max_abs": float("%.6g" % f.abs().max().item()),
            "first": [float("%.8g" % v) for v in f[:4].tolist()]}


def build(case):
    out_dir = os.path.join(HERE, case.name)
    os.makedirs(out_dir, exist_ok=True)
    r = Rng(case.seed)
    W32 = case.weights(case.cfg, r)
    inp = case.inputs(case.cfg, r)

    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(case.cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    st = os.path.join(out_dir, "model.safetensors")
    write_safetensors(st, W32)
    Wf = read_safetensors(st)
    assert set(Wf) == set(W32) and all(torch.equal(Wf[k], W32[k]) for k in Wf)

    # shapes of the loss projections from a forward pass
    with torch.no_grad():
        probe, _, _ = run(case, OpsA, Wf, inp, torch.zeros(1), torch.zeros(1), need_grad=False)
    r_last = r.n(*probe[case.last_key].shape)
    r_pool = r.n(*probe[case.pool_key].shape) if case.pool_key is not None else None
    if case.kind == "text":
        r_last = r_last * inp["attention_mask"][:, :, None].to(torch.float32)  # pad rows do not count

    outA, LA, gA = run(case, OpsA, Wf, inp, r_last, r_pool)
    outB, LB, gB = run(case, OpsB, Wf, inp, r_last, r_pool)
    checks = []

    # ---- path A vs path B: outputs and every gradient
    fa, fb = flat_outputs(case, outA), flat_outputs(case, outB)
    d_out = max(maxdiff(fa[k], fb[k]) for k in fa)
    d_grad = max(maxdiff(gA[k], gB[k]) for k in gA)
    assert set(fa) == set(fb) and set(gA) == set(gB)
    assert d_out < 1e-10 and d_grad < 1e-10 and abs(LA.item() - LB.item()) < 1e-10, (case.name, d_out, d_grad)
    checks.append("path A (hand-written) vs path B (torch building blocks): max|d out| = %.2e, "
                  "max|d grad| = %.2e over %d gradients" % (d_out, d_grad, len(gA)))

    # ---- finite differences + 'every parameter matters'
    worst, n, n_keyb = fd_checks(case, Wf, inp, r_last, r_pool, gA, torch.Generator().manual_seed(case.seed + 7))
    checks.append("Richardson-extrapolated central finite differences (eps 1e-4, 5e-5) along a random direction agree with autograd for "
                  "all %d tensors (worst rel err %.1e, key biases: |fd| < 1e-8); every tensor except the %d attention KEY biases has "
                  "grad norm > 1e-6 and a 0.05*dir perturbation changes the loss; the key-bias gradients are "
                  "< 1e-12 (mathematically 0: softmax shift invariance)" % (n, worst, n_keyb))

    # ---- case-specific semantic checks
    if case.name.startswith("swin"):
        for s in range(len(case.cfg["depths"])):
            with torch.no_grad():
                o2, _, _ = run(case, OpsA, Wf, inp, r_last, r_pool, need_grad=False)
                case_fwd = case.forward
                case.forward = lambda ops, cfg, W, x, _s=s: swin_forward(ops, cfg, W, x, disable_mask_stage=_s)
                o3, _, _ = run(case, OpsA, Wf, inp, r_last, r_pool, need_grad=False)
                o4, _, _ = run(case, OpsB, Wf, inp, r_last, r_pool, need_grad=False)
                case.forward = case_fwd
            dm = maxdiff(o2["last_hidden_state"], o3["last_hidden_state"])
            dab = maxdiff(o3["last_hidden_state"], o4["last_hidden_state"])
            assert dab < 1e-10
            has_shift = stage_has_shift(case, inp, s)
            if has_shift:
                assert dm > 1e-3, (case.name, s, dm)
                checks.append("stage %d: dropping the shifted-window mask changes last_hidden_state by "
                              "max %.3g (both paths agree without it too)" % (s, dm))
            else:
                assert dm == 0.0
                checks.append("stage %d: no shifted block (resolution <= window), mask irrelevant" % s)
    if case.kind == "text":
        ids, am = inp["input_ids"], inp["attention_mask"]
        for b in range(ids.shape[0]):
            Lb = int(am[b].sum())
            sub = {"input_ids": ids[b:b + 1, :Lb], "attention_mask": am[b:b + 1, :Lb]}
            with torch.no_grad():
                o1, _, _ = run(case, OpsA, Wf, sub, torch.zeros(1, Lb, 1), torch.zeros(1, 1), need_grad=False)
            dd = max(maxdiff(o1["hidden_states"][i][0], outA["hidden_states"][i][b, :Lb])
                     for i in range(len(o1["hidden_states"])))
            dp = maxdiff(o1["pooler_output"][0], outA["pooler_output"][b])
            assert dd < 1e-12 and dp < 1e-12, (b, dd, dp)
        checks.append("each sequence run alone, unpadded (T = its length), reproduces the non-pad rows of every "
                      "hidden state and the pooler output of the padded batch (max diff < 1e-12)")
        pad = case.cfg["pad_token_id"]
        gw = gA["embeddings.word_embeddings.weight"][pad]
        gp = gA["embeddings.position_embeddings.weight"][pad]
        assert gw.abs().max().item() == 0.0 and gp.abs().max().item() == 0.0
        gi = gA["input.inputs_embeds"]
        gw_rebuilt = torch.zeros_like(gA["embeddings.word_embeddings.weight"]).index_add_(
            0, ids.reshape(-1), gi.reshape(-1, gi.shape[-1]))
        dw = maxdiff(gw_rebuilt, gA["embeddings.word_embeddings.weight"])
        assert dw < 1e-12, dw
        checks.append("grad.embeddings.word_embeddings.weight == index_add over input_ids of "
                      "grad.input.inputs_embeds (max diff %.1e)" % dw)
        checks.append("gradient rows word_embeddings[pad] and position_embeddings[pad] are exactly 0 on both "
                      "paths (path B: nn.Embedding padding_idx; path A: masked keys + zero r_last on pad rows)")

    # ---- float32 rerun of path A: tolerance hint for a float32 engine
    o32, L32, g32 = run(case, OpsA, Wf, inp, r_last, r_pool, dtype=torch.float32)
    f32 = flat_outputs(case, o32)
    e_out = max(maxdiff(f32[k], fa[k]) for k in fa)
    e_grad = max(maxdiff(g32[k], gA[k]) for k in gA)
    rel_grad = max(maxdiff(g32[k], gA[k]) / max(gA[k].abs().max().item(), 1e-30)
                   for k in gA if not k.endswith(KEY_BIAS_SUFFIXES))
    keyb_grad = max([maxdiff(g32[k], gA[k]) for k in gA if k.endswith(KEY_BIAS_SUFFIXES)] + [0.0])

    # ---- expected.safetensors
    E = {}
    for k, v in inp.items():
        E["input." + k] = v.to(torch.int32) if not v.is_floating_point() else v
    if case.kind == "text":
        E["input.position_ids"] = outA["position_ids"].to(torch.int32)
    for k, v in fa.items():
        E[k] = v.detach().to(torch.float32)
    E["loss.r_last"] = r_last
    if r_pool is not None:
        E["loss.r_pool"] = r_pool
    E["loss.value"] = LA.detach().reshape(1).to(torch.float32)
    for k, v in gA.items():
        E["grad." + k] = v.detach().to(torch.float32)
    write_safetensors(os.path.join(out_dir, "expected.safetensors"), E)
    back = read_safetensors(os.path.join(out_dir, "expected.safetensors"))
    assert set(back) == set(E) and all(torch.equal(back[k], E[k]) for k in E)

    summary = {
        "case": case.name,
        "architecture": case.cfg["architectures"][0],
        "note": case.note,
        "loss": {"formula": ("sum(out.last_hidden_state * loss.r_last) + sum(out.%s * loss.r_pool)" % case.pool_key)
                 if case.pool_key is not None else "sum(out.%s * loss.r_last)" % case.last_key,
                 "value_float64": LA.item()},
        "float32_rerun_of_reference": {
            "max_abs_err_outputs": float("%.3g" % e_out),
            "max_abs_err_grads": float("%.3g" % e_grad),
            "max_rel_err_grads_vs_tensor_max_excluding_key_biases": float("%.3g" % rel_grad),
            "max_abs_key_bias_grad_in_float32": float("%.3g" % keyb_grad),
            "loss_abs_err": float("%.3g" % abs(L32.item() - LA.item())),
        },
        "checks": checks,
        "tensors": {k: summarize(v) for k, v in sorted(E.items())},
    }
    if case.after is not None:
        checks += case.after(case, out_dir, Wf, inp, outA)
        summary["checks"] = checks
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(out_dir, fn)) for fn in os.listdir(out_dir))
    print("%-22s loss %+.6f  A/B out %.1e grad %.1e  fd worst %.1e  fp32 out %.1e grad %.1e  %6d bytes"
          % (case.name, LA.item(), d_out, d_grad, worst, e_out, e_grad, size))
    for c in checks[2:]:
        print("    " + c)
    return size


# --------------------------------------------------------------------------
# llama.cpp's mmproj GGUF, written by llama.cpp's own gguf-py the way
# examples/llava/convert_image_encoder_to_gguf.py (llama.cpp c392e50) writes a LLaVA image encoder
# --------------------------------------------------------------------------

GGUF_PY = os.environ.get("LLAMA_CPP_GGUF_PY", "/work/llama.cpp/gguf-py")


def import_gguf_py():
    """gguf-py's package __init__ imports its vocab module, which needs sentencepiece; the writer and
    reader need only numpy, so the package is entered without running __init__."""
    import importlib
    import types
    if "gguf" not in sys.modules:
        pkg = types.ModuleType("gguf")
        pkg.__path__ = [os.path.join(GGUF_PY, "gguf")]
        sys.modules["gguf"] = pkg
    return importlib.import_module("gguf.gguf_writer"), importlib.import_module("gguf.gguf_reader")


def converter_tensor_name(name):
    """convert_image_encoder_to_gguf.py's get_tensor_name, verbatim in effect (its fc1 -> ffn_down swap included)."""
    if "projection" in name:
        return name
    if "mm_projector" in name:
        return name.replace("model.mm_projector", "mm")
    return name.replace("text_model", "t").replace("vision_model", "v").replace("encoder.layers", "blk").replace(
        "embeddings.", "").replace("_proj", "").replace("self_attn.", "attn_").replace("layer_norm", "ln").replace(
        "layernorm", "ln").replace("mlp.fc1", "ffn_down").replace("mlp.fc2", "ffn_up").replace("embedding", "embd").replace(
        "final", "post").replace("layrnorm", "ln")


MMPROJ_NAME = "mmproj-model-f16.gguf"
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def write_llava_mmproj(case, out_dir, W, inp, outA):
    """The converter's steps for `--clip-model-is-vision --llava-projector` (f16): keys, the vision tower's
    last layer popped (block_count = num_hidden_layers - 1), visual_projection and post_layernorm
    skipped, 2-D / 4-D tensors f16 (the projector's too), 1-D f32. The LLaVA projector comes from its
    original checkpoint names (model.mm_projector.0 / .2)."""
    gw, gr = import_gguf_py()
    cfg = case.cfg
    L = cfg["num_hidden_layers"]
    path = os.path.join(out_dir, MMPROJ_NAME)
    fout = gw.GGUFWriter(path=path, arch="clip")
    fout.add_bool("clip.has_text_encoder", False)
    fout.add_bool("clip.has_vision_encoder", True)
    fout.add_bool("clip.has_llava_projector", True)
    fout.add_file_type(1)
    fout.add_name(case.name)
    fout.add_description("image encoder for LLaVA")
    fout.add_string("clip.projector_type", "mlp")
    fout.add_uint32("clip.vision.image_size", cfg["image_size"])
    fout.add_uint32("clip.vision.patch_size", cfg["patch_size"])
    fout.add_uint32("clip.vision.embedding_length", cfg["hidden_size"])
    fout.add_uint32("clip.vision.feed_forward_length", cfg["intermediate_size"])
    fout.add_uint32("clip.vision.projection_dim", cfg["projection_dim"])
    fout.add_uint32("clip.vision.attention.head_count", cfg["num_attention_heads"])
    fout.add_float32("clip.vision.attention.layer_norm_epsilon", cfg["layer_norm_eps"])
    fout.add_uint32("clip.vision.block_count", L - 1)
    fout.add_array("clip.vision.image_mean", CLIP_MEAN)
    fout.add_array("clip.vision.image_std", CLIP_STD)
    fout.add_bool("clip.use_gelu", cfg["hidden_act"] == "gelu")
    written = {}
    projector = {"model.mm_projector.0.weight": W["multi_modal_projector.linear_1.weight"],
                 "model.mm_projector.0.bias": W["multi_modal_projector.linear_1.bias"],
                 "model.mm_projector.2.weight": W["multi_modal_projector.linear_2.weight"],
                 "model.mm_projector.2.bias": W["multi_modal_projector.linear_2.bias"]}
    for name, data in projector.items():
        name = converter_tensor_name(name)
        data = data.detach().squeeze().numpy().astype(np.float16 if data.ndim in (2, 4) else np.float32)
        fout.add_tensor(name, data)
        written[name] = data
    last = "vision_model.encoder.layers.%d." % (L - 1)  # layers.pop(-1)
    for name, data in W.items():
        if name in ("visual_projection.weight", "vision_model.post_layernorm.weight",
                    "vision_model.post_layernorm.bias") or name.startswith(last) or name.startswith("multi_modal"):
            continue
        name = converter_tensor_name(name)
        data = data.detach().squeeze().numpy()
        if data.ndim == 4 or (name.endswith(".weight") and data.ndim == 2):
            data = data.astype(np.float16)
        else:
            data = data.astype(np.float32)
        fout.add_tensor(name, data)
        written[name] = data
    fout.write_header_to_file()
    fout.write_kv_data_to_file()
    fout.write_tensors_to_file()
    fout.close()
    # Read back with gguf-py's reader: every tensor's values, and no value changed by the f16 storage
    # (llava_weights rounded the matrices to f16 already).
    rd = gr.GGUFReader(path)
    n = 0
    for t in rd.tensors:
        back = np.array(t.data).reshape(written[t.name].shape)
        assert np.array_equal(back, written[t.name]), t.name
        n += 1
    for k in ("vision_model.encoder.layers.0.mlp.fc1.weight", "vision_model.embeddings.patch_embedding.weight"):
        assert np.array_equal(written[converter_tensor_name(k)].astype(np.float32), W[k].detach().numpy()), k
    checks = ["%s: written by llama.cpp's gguf-py (%s) as convert_image_encoder_to_gguf.py writes a LLaVA image "
              "encoder: %d tensors (block_count %d of %d layers, post_layernorm dropped, fc1 stored as ffn_down), "
              "read back identical; out.mmproj_features = clip.cpp's graph on it (block_count - 1 = %d layers)"
              % (MMPROJ_NAME, GGUF_PY, n, L - 1, L, L - 2)]
    return checks + check_clipcpp_pins(case, out_dir, W)


CLIPCPP_IMAGE = "portrait_90x150"


def check_clipcpp_pins(case, out_dir, W):
    """clipcpp/run_clipcpp.sh pins clip.cpp's own preprocessed pixels and embedding of one image on the mmproj.
    When they are there: the float64 reference of the mmproj semantics (out.mmproj_features' formula) on
    clip.cpp's pixels agrees with clip.cpp's embedding (f16 weights and activations, f16-table GELU), and the
    HF vision_feature_layer -2 features do not (clip.cpp runs one block fewer)."""
    base = os.path.join(out_dir, "clipcpp_%s." % CLIPCPP_IMAGE)
    if not (os.path.exists(base + "pixels.f32") and os.path.exists(base + "embedding.f32")):
        return ["clip.cpp pins absent (run clipcpp/run_clipcpp.sh): not compared"]
    S, D = case.cfg["image_size"], case.cfg["text_hidden_size"]
    px = np.fromfile(base + "pixels.f32", dtype="<f4").reshape(S, S, 3).transpose(2, 0, 1)[None].copy()
    emb = np.fromfile(base + "embedding.f32", dtype="<f4").reshape(-1, D)
    W64 = {k: v.detach().double() for k, v in W.items()}
    with torch.no_grad():
        out = llava_forward(OpsA, case.cfg, W64, {"pixel_values": torch.from_numpy(px).double()})
    ref, hf = out["mmproj_features"][0].numpy(), out["image_features"][0].numpy()
    err = np.abs(ref - emb).max() / np.abs(ref).max()
    err_hf = np.abs(hf - emb).max() / np.abs(hf).max()
    assert err < 5e-3 and err_hf > 0.1, (err, err_hf)
    return ["clip.cpp's embedding of %s.png (pinned) vs the float64 mmproj reference on clip.cpp's own pixels: max "
            "rel err %.1e (f16 arithmetic); vs HF's vision_feature_layer -2 features: %.2f (one block more)"
            % (CLIPCPP_IMAGE, err, err_hf)]


def stage_has_shift(case, inp, s):
    cfg = case.cfg
    H, Wd = inp["pixel_values"].shape[2:]
    P = cfg["patch_size"]
    dims = (-(-H // P), -(-Wd // P))
    for _ in range(s):
        dims = ((dims[0] + 1) // 2, (dims[1] + 1) // 2)
    return cfg["depths"][s] > 1 and min(dims) > cfg["window_size"]


CASES = [
    Case("vit_tiny", vit_config(), 101, "vision", vit_forward, vit_weights,
         lambda cfg, r: image_inputs(r, 2, 32, 32),
         note="ViTModel with pooler; 4x4 patches of 8x8 -> 1 CLS + 16 tokens"),
    Case("clip_vision_tiny", clip_config(False), 202, "vision", clip_forward,
         lambda cfg, r: clip_weights(cfg, r, False), lambda cfg, r: image_inputs(r, 2, 32, 32),
         note="CLIPVisionModel; pooler_output = post_layernorm(last_hidden_state[:, 0])"),
    Case("clip_vision_proj_tiny", clip_config(True), 303, "vision",
         lambda ops, cfg, W, x: clip_forward(ops, cfg, W, x, with_projection=True),
         lambda cfg, r: clip_weights(cfg, r, True), lambda cfg, r: image_inputs(r, 2, 32, 32),
         pool_key="image_embeds",
         note="CLIPVisionModelWithProjection; image_embeds = visual_projection(post_layernorm(last[:, 0])); "
              "loss.r_pool multiplies image_embeds"),
    Case("swin_tiny", swin_config(32), 404, "vision", swin_forward, swin_weights,
         lambda cfg, r: image_inputs(r, 2, 32, 32),
         note="32x32 input, patch 2 -> 16x16 tokens (16 windows of 4x4, shift 2 in block 1), merge -> 8x8 "
              "(4 windows, shift 2)"),
    Case("swin_tiny_pad", swin_config(32), 505, "vision", swin_forward, swin_weights,
         lambda cfg, r: image_inputs(r, 2, 13, 15),
         note="13x15 input: pixel pad -> 14x16, tokens 7x8; stage 1 pads to 8x8 for windows (shift 2); merge "
              "pads 7 -> 8 rows -> 4x4; stage 2 resolution 4 <= window 4 -> shift forced to 0"),
    Case("siglip_tiny", siglip_config(), 707, "vision", siglip_forward, siglip_weights,
         lambda cfg, r: image_inputs(r, 2, 32, 32),
         note="SiglipVisionModel with the attention-pooling head; 16 patches, no class token; last_hidden_state "
              "= post_layernorm(every row); pooler_output = head(last_hidden_state)"),
    Case("llava_clip_tiny", llava_config(), 808, "vision", llava_forward, llava_weights,
         lambda cfg, r: image_inputs(r, 2, 32, 32), pool_key=None, last_key="image_features",
         extra_keys=("mmproj_features",),
         unused=("vision_model.post_layernorm.", "vision_model.encoder.layers.2."),
         after=lambda case, d, W, inp, outA: write_llava_mmproj(case, d, W, inp, outA),
         note="CLIPVisionModel (3 layers) + LLaVA: hidden_states[-2], class row dropped ('default'), "
              "multi_modal_projector (linear_1, gelu, linear_2) -> image_features (2, 16, 48); loss = "
              "sum(image_features * r_last); matrices are float16 values. mmproj-model-f16.gguf: the same "
              "weights as llama.cpp's converter writes them; out.mmproj_features is what clip.cpp computes "
              "from it (hidden_states[1]: one block fewer, llama.cpp issue #25817)"),
    Case("roberta_tiny", roberta_config(), 606, "text", roberta_forward, roberta_weights,
         lambda cfg, r: roberta_inputs(r, cfg),
         note="RobertaModel with pooler; batch of 2, T = 12, second sequence has 8 real tokens + 4 pads (id 1)"),
]


def main():
    torch.set_grad_enabled(True)
    total = 0
    for c in CASES:
        total += build(c)
    print("total %d bytes" % total)
    assert total <= 3 * 1024 * 1024
    return 0


if __name__ == "__main__":
    sys.exit(main())
