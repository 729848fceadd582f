#!/usr/bin/env python3
"""Times the Python reference client decoding a response body from bytes.

`extract_attention_from_response` below is the reference client's function
(vLLM's examples/offline_inference/attention_instrumentation, Apache-2.0,
copyright the vLLM contributors), unchanged but for the `dtype` switch: with
`float16` it keeps the float16 array (skips `.astype(np.float32)`), the
counterpart of attnscope's `{ dtype: "float16" }`.

Usage: reference_client.py BODY.json [float32|float16] [RUNS]
Prints one JSON line: {"dtype", "runs_ms": [...], "layers", "checksum"}.
The timed span is json.loads of the bytes already in memory plus the
extraction, the same span `bench/compare.ts` times for attnscope.
"""

import base64
import gzip
import json
import sys
import time

import numpy as np


def extract_attention_from_response(response: dict, dtype=np.float32) -> dict | None:
    data = response.get("attn_capture_data", [])
    if not data:
        return None
    out = {}
    for item in data:
        b64, shape = item.get("data"), item.get("shape")
        if not (b64 and shape):
            continue
        scores = np.frombuffer(gzip.decompress(base64.b64decode(b64)), dtype=np.float16)
        if dtype is not np.float16:
            scores = scores.astype(np.float32)
        scores = scores.reshape(shape)
        li = item.get("layer_idx")
        out[li] = {
            "scores": scores,
            "token_meta": item.get("token_meta", {}),
            "model": response.get("model"),
            "layer": li,
        }
    return out or None


def main() -> None:
    path = sys.argv[1]
    dtype = sys.argv[2] if len(sys.argv) > 2 else "float32"
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    with open(path, "rb") as f:
        body = f.read()
    times = []
    checksum = 0.0
    layers = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = extract_attention_from_response(
            json.loads(body), np.float16 if dtype == "float16" else np.float32
        )
        times.append((time.perf_counter() - t0) * 1000)
        layers = sorted(out)
        # Touch the result outside the timed span so it is really used.
        checksum = float(sum(float(out[k]["scores"][-1, 0].sum(dtype=np.float64)) for k in layers))
        del out
    print(json.dumps({"dtype": dtype, "runs_ms": times, "layers": layers, "checksum": checksum}))


if __name__ == "__main__":
    main()
