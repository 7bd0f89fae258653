#!/usr/bin/env python3
"""make_activation_vectors.py - how ggml's CPU backend rounds matmul inputs, recorded by ggml itself.

llama.cpp's CPU matmul does not multiply a quantized weight by f32 activations: every input row is first
converted to the weight type's `vec_dot_type` (Q8_0 for Q4_0/Q5_0/Q8_0/MXFP4, Q8_1 for Q4_1/Q5_1, Q8_K for
the k-quants, F16 for F16, BF16 for BF16) with that type's `from_float`, and the dot product runs on those
blocks. So a llama.cpp Q8_0 model carries two 8-bit roundings, the weight's and the activation's.
`moeq validate --arithmetic llama-cpu` reproduces the second one; the Swift test
ActivationRoundingTests checks it against the files this script writes.

Calls libggml-cpu.so (the one `llama-cpp-python` 0.3.36 builds; ggml 0.25.3) through ctypes:
    ggml_cpu_init()
    ggml_get_type_traits_cpu(weight type)->vec_dot_type          for every weight type moeq writes
    ggml_get_type_traits_cpu(vec_dot_type)->from_float(x, y, k)  on 8 rows x 512 inputs per kind

Run from the repository root with the python of the llama venv (setup_peers.sh makes it):
    /tmp/peers/venv-llama/bin/python validation/quant/make_activation_vectors.py
Writes validation/quant/activations/: manifest.json (the vec_dot_type table and file list) and
<DOT_TYPE>/<kind>.bin, raw ggml blocks, row r at r * row_size. Inputs are validation/quant/vectors/inputs/<kind>.f32
(8 x 512 float32) plus `ties`, made here: blocks whose scaled values land exactly on .5, which tells
round-half-even from round-half-away.
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS, COLS = 8, 512
WEIGHT_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7, "Q8_0": 8, "Q2_K": 10, "Q3_K": 11,
                "Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "IQ4_NL": 20, "IQ4_XS": 23, "BF16": 30, "MXFP4": 39,
                "IQ2_XXS": 16, "IQ2_XS": 17, "IQ3_XXS": 18, "IQ1_S": 19, "IQ3_S": 21, "IQ2_S": 22, "IQ1_M": 29}
DOT_TYPES = {"F16": 1, "Q8_0": 8, "Q8_1": 9, "Q8_K": 15, "BF16": 30}
KINDS = ["normal", "heavy", "zero", "constant", "outlier", "denormal", "mixed"]


class CPUTraits(ctypes.Structure):
    """struct ggml_type_traits_cpu (ggml-cpu.h of ggml 0.25.x)."""
    _fields_ = [("from_float", ctypes.c_void_p), ("vec_dot", ctypes.c_void_p),
                ("vec_dot_type", ctypes.c_int), ("nrows", ctypes.c_int64)]


FROM_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


def ties() -> np.ndarray:
    """Rows whose Q8 scale is exactly 1 (block max 127) and whose other values are k + 0.5: x * 127/max is
    exactly halfway for Q8_0/Q8_1 (and, with the k-quant scale -127/max, for Q8_K)."""
    rng = np.random.default_rng(7)
    x = (rng.integers(-126, 126, size=(ROWS, COLS)) + 0.5).astype(np.float32)
    x[:, ::32] = 127.0
    return x


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib-dir", default=None)
    ap.add_argument("--out", default=os.path.join(HERE, "activations"))
    a = ap.parse_args()
    lib_dir = a.lib_dir
    if lib_dir is None:
        import importlib.util
        spec = importlib.util.find_spec("llama_cpp")
        if spec is None or not spec.origin:
            sys.exit("llama_cpp not importable; pass --lib-dir")
        lib_dir = os.path.join(os.path.dirname(spec.origin), "lib")
    base = ctypes.CDLL(os.path.join(lib_dir, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    cpu = ctypes.CDLL(os.path.join(lib_dir, "libggml-cpu.so"), mode=ctypes.RTLD_GLOBAL)
    base.ggml_type_name.argtypes = [ctypes.c_int]; base.ggml_type_name.restype = ctypes.c_char_p
    base.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]; base.ggml_row_size.restype = ctypes.c_size_t
    cpu.ggml_cpu_init.argtypes = []; cpu.ggml_cpu_init.restype = None
    cpu.ggml_get_type_traits_cpu.argtypes = [ctypes.c_int]
    cpu.ggml_get_type_traits_cpu.restype = ctypes.POINTER(CPUTraits)
    cpu.ggml_cpu_init()
    for name, t in {**WEIGHT_TYPES, **DOT_TYPES}.items():
        if base.ggml_type_name(t).decode().upper() != name:
            sys.exit(f"type id {t} is {base.ggml_type_name(t).decode()}, expected {name}")

    table = {}
    for name, t in WEIGHT_TYPES.items():
        dot = cpu.ggml_get_type_traits_cpu(t).contents.vec_dot_type
        table[name] = base.ggml_type_name(dot).decode().upper()

    inputs = {k: np.fromfile(os.path.join(HERE, "vectors", "inputs", f"{k}.f32"), dtype="<f4").reshape(ROWS, COLS)
              for k in KINDS}
    inputs["ties"] = ties()
    os.makedirs(os.path.join(a.out, "inputs"), exist_ok=True)
    inputs["ties"].astype("<f4").tofile(os.path.join(a.out, "inputs", "ties.f32"))

    files = {}
    for name, t in DOT_TYPES.items():
        traits = cpu.ggml_get_type_traits_cpu(t).contents
        from_float = FROM_FLOAT(traits.from_float)
        row = int(base.ggml_row_size(t, COLS))
        os.makedirs(os.path.join(a.out, name), exist_ok=True)
        for kind, x in inputs.items():
            x = np.ascontiguousarray(x, dtype=np.float32)
            out = ctypes.create_string_buffer(row * ROWS)
            for r in range(ROWS):    # from_float per row, as ggml's mul_mat does
                from_float(x[r].ctypes.data, ctypes.addressof(out) + r * row, COLS)
            data = out.raw
            rel = f"{name}/{kind}.bin"
            with open(os.path.join(a.out, rel), "wb") as f:
                f.write(data)
            files[rel] = {"bytes": len(data), "row_size": row, "sha256": hashlib.sha256(data).hexdigest()}

    manifest = {"library": os.path.join(lib_dir, "libggml-cpu.so"), "rows": ROWS, "cols": COLS,
                "vec_dot_type": table, "inputs": {k: ("validation/quant/activations/inputs/ties.f32" if k == "ties" else
                                                      f"validation/quant/vectors/inputs/{k}.f32") for k in inputs},
                "block_layouts": {"Q8_0": "f16 d, int8 q[32] (34 B)", "Q8_1": "f16 d, f16 s = d*sum(q), int8 q[32] (36 B)",
                                  "Q8_K": "f32 d, int8 q[256], int16 bsums[16] (292 B)", "F16": "IEEE half", "BF16": "bfloat16"},
                "files": files}
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps(table))


if __name__ == "__main__":
    main()
