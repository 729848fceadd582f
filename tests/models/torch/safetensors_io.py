"""A minimal safetensors writer and reader for torch 1.13 (which has no
`safetensors` package): an 8-byte little-endian header length, the JSON
header, then each tensor's raw little-endian bytes. BF16 is written through
`tensor.view(torch.int16)` since numpy has no bfloat16."""
import json
import struct

import numpy as np
import torch

_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
_TORCH = {v: k for k, v in _DTYPES.items()}


def tensor_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    return t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()


def write_safetensors(path, tensors, metadata=None):
    """Writes `tensors` (name -> torch tensor) to `path` in name order."""
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        data = tensor_bytes(t)
        header[name] = {
            "dtype": _DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Reads every tensor of a safetensors file at its stored dtype."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, e in header.items():
            if name == "__metadata__":
                continue
            a, b = e["data_offsets"]
            f.seek(base + a)
            raw = f.read(b - a)
            dtype = _TORCH[e["dtype"]]
            if dtype == torch.bfloat16:
                t = torch.from_numpy(np.frombuffer(raw, dtype="<i2").copy()).view(torch.bfloat16)
            else:
                np_dtype = "<f4" if dtype == torch.float32 else "<f2"
                t = torch.from_numpy(np.frombuffer(raw, dtype=np_dtype).copy())
            out[name] = t.reshape(e["shape"])
        return out
