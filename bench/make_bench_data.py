#!/usr/bin/env python3
"""Writes synthetic attention-capture responses in the exact wire format.

Each file is a Chat Completions response body whose `attn_capture_data` holds
`layers` layers of causal softmax attention `[T, H, T]`, float16, compressed
with `gzip.compress` (level 9, as the server does) and base64-encoded, exactly
as vLLM's attention instrumentation sends them. Row distributions are seeded,
peaked softmaxes with a strict causal mask, so they compress about as real
captures do (about 5x at T=4096: small probabilities round to 0 in float16).

Usage: make_bench_data.py OUT.json T H LAYERS [SEED]
The body is streamed to disk: a 9-layer T=4096 file is larger than 512 MiB.
"""

import base64
import gzip
import json
import sys

import numpy as np


def layer_scores(t: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Causal softmax attention [t, h, t] as float16, built in row blocks."""
    out = np.empty((t, h, t), dtype=np.float16)
    keys = np.arange(t)
    # A few "sink" and "needle" keys that many queries attend to, as real
    # heads do, plus a local (recent-token) bias.
    sinks = rng.choice(t, size=max(1, t // 256), replace=False)
    block = 128
    for q0 in range(0, t, block):
        q1 = min(t, q0 + block)
        q = np.arange(q0, q1)[:, None, None]
        logits = rng.standard_normal((q1 - q0, h, t), dtype=np.float32) * 2.0
        logits[:, :, sinks] += 4.0
        logits -= 0.01 * np.maximum(q - keys[None, None, :], 0).astype(np.float32)
        logits[:, :, 0] += 3.0
        logits = np.where(keys[None, None, :] <= q, logits, -np.inf)
        logits -= logits.max(axis=2, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=2, keepdims=True)
        out[q0:q1] = p.astype(np.float16)
    return out


def main() -> None:
    path, t, h, layers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    rng = np.random.default_rng(seed)
    prompt_len = t - 8
    head = {
        "id": f"chatcmpl-bench-{t}-{h}-{layers}",
        "object": "chat.completion",
        "created": 1764000000,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "1729"},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_len,
            "completion_tokens": t - prompt_len + 1,
            "total_tokens": t + 1,
        },
    }
    with open(path + ".tmp", "w", encoding="ascii") as f:
        f.write(json.dumps(head)[:-1] + ', "attn_capture_data": [')
        for i in range(layers):
            scores = layer_scores(t, h, rng)
            b64 = base64.b64encode(gzip.compress(scores.tobytes())).decode("ascii")
            del scores
            meta = {
                "token_idx": list(range(t)),
                "prompt_len": prompt_len,
                "total_len": t,
                "vision_ranges": [],
                "lang_ranges": [{"start": 0, "end": prompt_len}],
                "token_idx_basis": "window_local",
            }
            f.write(", " if i else "")
            f.write('{"data": ' + json.dumps(b64) + ", ")
            del b64
            f.write(f'"shape": [{t}, {h}, {t}], "dtype": "torch.float16", ')
            f.write(f'"layer_idx": {i * 9}, "token_meta": {json.dumps(meta)}}}')
        f.write("]}")
    import os

    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
