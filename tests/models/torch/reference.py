#!/usr/bin/python3
"""Runs a checkpoint greedily with the eager transcription (families.py) and
dumps what the engine must reproduce:

    /usr/bin/python3 reference.py CKPT_DIR OUT_DIR --prompt 3,4,5 --max-tokens N
        [--stop ID ...] [--ablate LAYER:HEAD ...]

OUT_DIR gets result.json ({"prompt", "tokens", "numLayers", "shapes"}),
logits.npy ([steps, vocab], the last-position logits of every step, each
from a full forward over the sequence so far: no cache), and
attn_L.npy ([T, H, T] per layer, T = prompt + generated - 1, from one full
forward over that sequence). Float32 compute, weights widened."""
import argparse
import glob
import json
import os

import numpy as np
import torch

from families import forward
from safetensors_io import read_safetensors


def load(ckpt):
    with open(os.path.join(ckpt, "config.json")) as f:
        config = json.load(f)
    weights = {}
    for path in sorted(glob.glob(os.path.join(ckpt, "*.safetensors"))):
        weights.update(read_safetensors(path))
    dtype = next(v.dtype for k, v in weights.items() if k.endswith("embed_tokens.weight") or k.endswith("wte.weight"))
    return config, weights, dtype


def main():
    p = argparse.ArgumentParser()
    p.add_argument("ckpt")
    p.add_argument("out")
    p.add_argument("--prompt", required=True)
    p.add_argument("--max-tokens", type=int, default=4)
    p.add_argument("--stop", type=int, nargs="*", default=[])
    p.add_argument("--ablate", nargs="*", default=[])
    a = p.parse_args()
    torch.set_num_threads(1)
    config, weights, dtype = load(a.ckpt)
    ablate = [tuple(int(x) for x in s.split(":")) for s in a.ablate]
    seq = [int(x) for x in a.prompt.split(",")]
    prompt_len = len(seq)
    tokens, steps = [], []
    with torch.no_grad():
        for _ in range(a.max_tokens):
            logits, _ = forward(config, weights, seq, ablate, dtype)
            last = logits[-1]
            steps.append(last.numpy().astype(np.float32))
            nxt = int(torch.argmax(last))
            tokens.append(nxt)
            seq.append(nxt)
            if nxt in a.stop:
                break
        _, attns = forward(config, weights, seq[:-1], ablate, dtype)
    os.makedirs(a.out, exist_ok=True)
    np.save(os.path.join(a.out, "logits.npy"), np.stack(steps))
    for i, at in enumerate(attns):
        np.save(os.path.join(a.out, f"attn_{i}.npy"), at.numpy().astype(np.float32))
    with open(os.path.join(a.out, "result.json"), "w") as f:
        json.dump({"prompt": seq[:prompt_len], "tokens": tokens, "numLayers": len(attns),
                   "shapes": [list(at.shape) for at in attns]}, f)


if __name__ == "__main__":
    main()
