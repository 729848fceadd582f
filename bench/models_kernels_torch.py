#!/usr/bin/python3
"""torch side of bench/models_kernels.ts: median ms of F.linear(x, W) per
shape on 2 threads (float32). Shapes as M,N,K arguments; prints JSON."""
import json
import sys
import time

import torch

torch.set_num_threads(2)
out = {}
for spec in sys.argv[1:]:
    m, n, k = (int(v) for v in spec.split(","))
    x = torch.randn(m, k)
    w = torch.randn(n, k)
    for _ in range(2):
        torch.nn.functional.linear(x, w)
    ts = []
    for _ in range(7):
        t = time.perf_counter()
        torch.nn.functional.linear(x, w)
        ts.append((time.perf_counter() - t) * 1e3)
    out[spec] = sorted(ts)[3]
print(json.dumps(out))
