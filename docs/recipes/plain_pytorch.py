"""A plain PyTorch attention module: keep its softmax weights, save them.

Run: python3 plain_pytorch.py OUT_DIR   (writes attn.npz and attn.safetensors)
Then in Deno: await loadAttention("OUT_DIR/attn.npz")
"""

import sys

import torch

from attnscope_save import save_npz, save_safetensors


class CausalSelfAttention(torch.nn.Module):
    def __init__(self, d_model=32, n_heads=4):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = torch.nn.Linear(d_model, 3 * d_model)
        self.out = torch.nn.Linear(d_model, d_model)
        self.pattern = None  # [batch, heads, query, key], kept for attnscope

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_heads, -1).unbind(2)
        q, k, v = (z.transpose(1, 2) for z in (q, k, v))
        scores = q @ k.transpose(-1, -2) / k.shape[-1] ** 0.5
        mask = torch.ones(t, t, dtype=torch.bool).triu(1)
        self.pattern = scores.masked_fill(mask, float("-inf")).softmax(-1)
        y = (self.pattern @ v).transpose(1, 2).reshape(b, t, d)
        return self.out(y)


if __name__ == "__main__":
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "."
    torch.manual_seed(0)
    layers = torch.nn.ModuleList(CausalSelfAttention() for _ in range(2))
    x = torch.randn(1, 10, 32)
    with torch.no_grad():
        for layer in layers:
            x = x + layer(x)
    tokens = [f"t{i}" for i in range(10)]
    patterns = [layer.pattern for layer in layers]
    save_npz(f"{out_dir}/attn.npz", patterns, tokens=tokens)
    save_safetensors(f"{out_dir}/attn.safetensors", patterns, tokens=tokens)
