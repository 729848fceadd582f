"""Save attention for attnscope: npz (numpy) or safetensors (numpy + struct).

Copy this file next to your notebook; it needs numpy and torch only.

    out = model(**inputs, output_attentions=True)          # transformers
    save_npz("attn.npz", out.attentions, tokens=tokens)

    _, cache = model.run_with_cache(prompt)                  # TransformerLens
    save_safetensors("attn.safetensors",
                     [cache["pattern", l] for l in range(model.cfg.n_layers)],
                     tokens=model.to_str_tokens(prompt))

    gen = model.generate(**inputs, output_attentions=True,   # transformers generate()
                         return_dict_in_generate=True, max_new_tokens=8)
    save_npz("gen.npz", gen.attentions, tokens=tokens, steps=True)

Each layer is a [batch, heads, query, key] tensor (attnscope's default
layout for rank 4). Layers are named "layers.N"; generate() steps
"steps.S.layers.N". numpy has no bfloat16, so save_npz upcasts it to
float32; save_safetensors keeps BF16 as it is.
"""

import json
import struct

import numpy as np
import torch


def _named(attentions, steps):
    """{name: tensor} for per-layer tensors, or per-step tuples of them."""
    if not steps:
        return {f"layers.{l}": a for l, a in enumerate(attentions)}
    return {
        f"steps.{s}.layers.{l}": a
        for s, layers in enumerate(attentions)
        for l, a in enumerate(layers)
    }


def save_npz(path, attentions, tokens=None, steps=False, compressed=True):
    """Writes an .npz: one float array per layer (per step), plus tokens."""
    arrays = {}
    for name, a in _named(attentions, steps).items():
        a = a.detach().cpu()
        if a.dtype == torch.bfloat16:  # numpy has no bfloat16
            a = a.float()
        arrays[name] = a.numpy()
    if tokens is not None:
        arrays["tokens"] = np.array(tokens, dtype=str)
    (np.savez_compressed if compressed else np.savez)(path, **arrays)


_DTYPES = {torch.float16: "F16", torch.bfloat16: "BF16",
           torch.float32: "F32", torch.float64: "F64"}


def save_safetensors(path, attentions, tokens=None, steps=False):
    """Writes safetensors with numpy and struct; BF16 stays BF16."""
    header, blobs, offset = {}, [], 0
    if tokens is not None:
        header["__metadata__"] = {"tokens": json.dumps(list(tokens))}
    for name, a in _named(attentions, steps).items():
        a = a.detach().cpu().contiguous()
        raw = (a.view(torch.int16) if a.dtype == torch.bfloat16 else a).numpy()
        blob = raw.astype(raw.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
