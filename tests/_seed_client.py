"""The guide's reference client function, shared by the tests that run it.

`extract_attention_from_response` is the seed guide's Python client
(vLLM's examples/offline_inference/attention_instrumentation, Apache-2.0,
copyright the vLLM contributors), unchanged. Tests put this folder on
`sys.path` and import it, so every test runs the one same copy.
"""

import base64
import gzip

import numpy as np


def extract_attention_from_response(response):
    data = response.get("attn_capture_data", [])
    if not data:
        return None
    out = {}
    for item in data:
        b64, shape = item.get("data"), item.get("shape")
        if not (b64 and shape):
            continue
        scores = np.frombuffer(gzip.decompress(base64.b64decode(b64)), dtype=np.float16).astype(np.float32).reshape(shape)
        out[item.get("layer_idx")] = {"scores": scores, "token_meta": item.get("token_meta", {})}
    return out or None
