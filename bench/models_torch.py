#!/usr/bin/python3
"""PyTorch side of `deno task bench:models`: times the eager float32
transcription (tests/models/torch/families.py) on a checkpoint, 2 threads.

    /usr/bin/python3 bench/models_torch.py CKPT_DIR --prompt-len 256 --reps 1

Prints one JSON line: prefill_ms (one full forward over the prompt, every
layer's attention materialized) and head_ms (the part of it that computes
full-vocabulary logits for every position, timed alone, since the engine
computes the last position only). The transcription has no KV cache, so
it gives no decode time."""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "models", "torch"))
from families import forward, text_config  # noqa: E402
from reference import load  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("ckpt")
    p.add_argument("--prompt-len", type=int, default=256)
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(2)
    config, weights, dtype = load(a.ckpt)
    # Eager float32: widen once, as the engine does inside its kernels.
    weights = {k: v.to(torch.float32) for k, v in weights.items()}
    c = text_config(config)
    vocab = c["vocab_size"]
    g = torch.Generator().manual_seed(a.seed)
    ids = torch.randint(0, vocab, (a.prompt_len,), generator=g).tolist()
    head = next(v for k, v in weights.items() if k.endswith("lm_head.weight")) if any(
        k.endswith("lm_head.weight") for k in weights) else next(
        v for k, v in weights.items() if k.endswith("embed_tokens.weight") or k.endswith("wte.weight"))
    head = head.to(torch.float32)
    hidden = head.shape[1]
    with torch.no_grad():
        forward(config, weights, ids[:8], (), dtype)  # warm-up
        pre = []
        for _ in range(a.reps):
            t = time.perf_counter()
            forward(config, weights, ids, (), dtype)
            pre.append((time.perf_counter() - t) * 1e3)
        x = torch.randn(a.prompt_len, hidden, generator=g)
        hs = []
        for _ in range(max(3, a.reps)):
            t = time.perf_counter()
            x @ head.t()
            hs.append((time.perf_counter() - t) * 1e3)
    print(json.dumps({"ids": ids, "prefill_ms": sorted(pre)[len(pre) // 2], "head_ms": sorted(hs)[len(hs) // 2]}))


if __name__ == "__main__":
    main()
