"""Tiny safetensors reader/writer in pure Python + torch (the `safetensors` package is not installed).

Format: 8-byte little-endian u64 header length N, then N bytes of JSON
{name: {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}},
then the raw little-endian tensor bytes (offsets relative to the end of the header).

Supported dtypes: F32, F64, I32, I64 (plus F16/BF16/I8/U8/I16 for reading).
"""
import json
import struct
from collections import OrderedDict

import torch

_DT = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_DT_INV = {v: k for k, v in _DT.items()}


def load(path):
    """Return (OrderedDict name -> torch.Tensor (a copy, in file order), metadata dict or None)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", None)
    base = 8 + n
    out = OrderedDict()
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        dt = _DT[info["dtype"]]
        b, e = info["data_offsets"]
        shape = info["shape"]
        buf = bytearray(data[base + b : base + e])
        if len(buf) == 0:
            t = torch.empty(shape, dtype=dt)
        else:
            t = torch.frombuffer(buf, dtype=dt).reshape(shape).clone()
        out[name] = t
    return out, meta


def load_tensors(path):
    return load(path)[0]


def header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n).decode("utf-8"))


def save(tensors, path, metadata=None):
    """Write {name: tensor} (order kept; safetensors readers do not care). Tensors keep their dtype."""
    hdr = OrderedDict()
    if metadata:
        hdr["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    off = 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        if t.dtype not in _DT_INV:
            raise TypeError(f"{name}: unsupported dtype {t.dtype}")
        raw = t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.view(torch.int16).numpy().tobytes()
        hdr[name] = {"dtype": _DT_INV[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hj = json.dumps(hdr, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)  # align data start to 8 bytes, as the reference writer does
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for raw in blobs:
            f.write(raw)
