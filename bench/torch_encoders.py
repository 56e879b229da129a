"""Plain-torch definitions of the encoders llmforge implements (model/arch/vit.cpp, roberta.cpp,
fusion.cpp), shared by the PyTorch side of the benchmarks (bench/torch_vit_bench.py,
bench/torch_vqa_train_bench.py). Import after setting the thread environment (OMP_NUM_THREADS ...):
this imports torch."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    """A Hugging Face ViTLayer: pre-norm attention and GELU MLP, biases everywhere."""

    def __init__(self, dim, heads, ffn, eps):
        super().__init__()
        self.h, self.d = heads, dim // heads
        self.ln1, self.ln2 = nn.LayerNorm(dim, eps=eps), nn.LayerNorm(dim, eps=eps)
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.fc1, self.fc2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim)

    def attend(self, h, key_mask=None):
        B, T, C = h.shape
        q, k, v = (p(h).view(B, T, self.h, self.d).transpose(1, 2) for p in (self.q, self.k, self.v))
        s = q @ k.transpose(-1, -2) * self.d ** -0.5
        if key_mask is not None:  # (B, T) True for real tokens: padding keys get no weight
            s = s.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        return self.o((torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, C))

    def forward(self, x):
        x = x + self.attend(self.ln1(x))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class PostNormBlock(Block):
    """A Hugging Face RobertaLayer (BERT's post-norm order): h = LN1(h + attn(h)), h = LN2(h + MLP(h))."""

    def forward(self, x, key_mask=None):
        x = self.ln1(x + self.attend(x, key_mask))
        return self.ln2(x + self.fc2(F.gelu(self.fc1(x))))


class ViT(nn.Module):
    """A Hugging Face ViTModel without its pooler: Conv2d patches, class token, positions, pre-norm
    blocks (or nn.TransformerEncoderLayer's fused fast path), final LayerNorm. Returns (last hidden
    state, class row)."""

    def __init__(self, dim, layers, heads, ffn, image, patch, fastpath=False, eps=1e-12):
        super().__init__()
        T = 1 + (image // patch) ** 2
        self.patch = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, T, dim) * 0.02)
        if fastpath:
            self.blocks = nn.ModuleList(
                nn.TransformerEncoderLayer(dim, heads, ffn, dropout=0.0, activation="gelu", layer_norm_eps=eps,
                                           batch_first=True, norm_first=True) for _ in range(layers))
        else:
            self.blocks = nn.ModuleList(Block(dim, heads, ffn, eps) for _ in range(layers))
        self.norm = nn.LayerNorm(dim, eps=eps)
        for n, p in self.named_parameters():
            if p.dim() >= 2 and n not in ("cls", "pos"):
                nn.init.normal_(p, std=0.02)

    def forward(self, pix):
        x = self.patch(pix).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        for b in self.blocks:
            x = b(x)
        x = self.norm(x)
        return x, x[:, 0]


class Roberta(nn.Module):
    """A Hugging Face RobertaModel without its pooler: word + position (from pad_token_id + 1) +
    token-type embeddings, LayerNorm, post-norm blocks with padding keys masked."""

    def __init__(self, vocab, dim, layers, heads, ffn, positions, pad=1, eps=1e-5):
        super().__init__()
        self.pad = pad
        self.word, self.pos = nn.Embedding(vocab, dim), nn.Embedding(positions, dim)
        self.token_type = nn.Embedding(1, dim)
        self.ln = nn.LayerNorm(dim, eps=eps)
        self.blocks = nn.ModuleList(PostNormBlock(dim, heads, ffn, eps) for _ in range(layers))

    def forward(self, ids, key_mask):
        T = ids.shape[1]
        pos = torch.arange(self.pad + 1, self.pad + 1 + T, device=ids.device)
        x = self.ln(self.word(ids) + self.pos(pos)[None] + self.token_type.weight[0])
        for b in self.blocks:
            x = b(x, key_mask)
        return x


class GatedFusion(nn.Module):
    """model/arch/fusion.cpp's "gated" kind: t, v = the encoders' first rows, g = softmax(W2 ·
    GELU(W1 · [t; v])), f = g0·t + g1·v, logits = W_c2 · GELU(W_c1 · f)."""

    def __init__(self, dim, gate_hidden, cls_hidden, answers):
        super().__init__()
        self.gate = nn.Sequential(nn.Linear(2 * dim, gate_hidden), nn.GELU(), nn.Linear(gate_hidden, 2))
        self.cls = nn.Sequential(nn.Linear(dim, cls_hidden), nn.GELU(), nn.Linear(cls_hidden, answers))

    def forward(self, t, v):
        g = torch.softmax(self.gate(torch.cat([t, v], dim=-1)), dim=-1)
        return self.cls(g[:, :1] * t + g[:, 1:] * v)
