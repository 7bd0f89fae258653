#!/usr/bin/env python3
"""make_vectors.py - quantization test vectors produced by ggml itself.

Calls ggml (the libggml-base.so that the `llama-cpp-python` PyPI package builds) through ctypes:
    ggml_quantize_chunk(type, src, dst, start=0, nrows=8, n_per_row=512, imatrix=NULL | w)
    ggml_get_type_traits(type)->from_float_ref / ->to_float
    ggml_validate_row_data(type, data, nbytes)
and compares the bytes with the numpy quantizers of gguf-py (`gguf.quants`).

Run with the python of the venv that has llama-cpp-python, numpy and gguf (setup_peers.sh makes it):
    /tmp/peers/venv-llama/bin/python validation/quant/make_vectors.py [--out DIR] [--lib-dir DIR]
Everything is seeded; two runs with the same packages give byte-identical files (manifest included).

Internal: `--child JSON` runs one risky experiment (NaN/Inf input, bad row length, zero imatrix) in a
separate process, so an abort inside ggml is recorded instead of killing this script.
"""
from __future__ import annotations

import argparse
import ctypes
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROWS, COLS = 8, 512

# ggml_type ids from ggml.h (enum ggml_type); each is checked against ggml_type_name() at start-up.
TYPE_IDS = {"F16": 1, "BF16": 30, "Q8_0": 8, "Q4_0": 2, "Q4_1": 3, "Q5_0": 6, "Q5_1": 7,
            "Q2_K": 10, "Q3_K": 11, "Q4_K": 12, "Q5_K": 13, "Q6_K": 14, "MXFP4": 39,
            "IQ4_NL": 20, "IQ4_XS": 23, "IQ3_XXS": 18, "IQ3_S": 21, "IQ2_XXS": 16, "IQ2_XS": 17, "IQ2_S": 22,
            "IQ1_S": 19, "IQ1_M": 29}
TYPES = list(TYPE_IDS)
KINDS = ["normal", "heavy", "zero", "constant", "outlier", "denormal", "mixed"]
GGML_TYPE_COUNT = 43  # ggml.h of ggml 0.25.x
GGUF_PY_QUANTIZE_TYPES = ["F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "MXFP4"]

# Types whose from_float_ref is not a reference: quantize_row_iq4_nl_ref runs the scale search with ntry = -1, which
# never writes the codes of an all-zero block, so those bytes are whatever the stack held (two runs differ).
# ggml_quantize_chunk (what llama-quantize calls, ntry = 7) is deterministic and is what the tests compare.
REF_UNDEFINED = {"IQ4_NL": "not recorded: quantize_row_iq4_nl_ref leaves the codes of all-zero blocks uninitialized "
                           "(ntry = -1 skips the final code pass), so its bytes differ between runs"}

# Imatrix policy for the committed vectors: exp(N(0,1)) with this many entries set to exactly 0.0
# (the zero-imatrix experiments in the manifest show whether ggml copes with that).
IMATRIX_ZEROS = 4


# ------------------------------------------------------------------------------------------ ggml

TO_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)     # (x, y, k)
FROM_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)   # (x, y, k)


class TypeTraits(ctypes.Structure):
    """struct ggml_type_traits (ggml.h of ggml 0.25.x). Layout is cross-checked at load time against
    ggml_type_name / ggml_blck_size / ggml_type_size for every type used here."""
    _fields_ = [("type_name", ctypes.c_char_p),
                ("blck_size", ctypes.c_int64),
                ("blck_size_interleave", ctypes.c_int64),
                ("type_size", ctypes.c_size_t),
                ("is_quantized", ctypes.c_bool),
                ("to_float", ctypes.c_void_p),
                ("from_float_ref", ctypes.c_void_p)]


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed (library from --lib-dir)"


def default_lib_dir() -> str:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.origin:
        sys.exit("make_vectors: llama_cpp package not found; pass --lib-dir")
    return os.path.join(os.path.dirname(spec.origin), "lib")


class Ggml:
    def __init__(self, lib_dir: str):
        self.lib_dir = os.path.abspath(lib_dir)
        self.path = os.path.join(self.lib_dir, "libggml-base.so")
        lib = ctypes.CDLL(self.path, mode=ctypes.RTLD_GLOBAL)
        self.lib = lib
        c_int, i64, sz, vp = ctypes.c_int, ctypes.c_int64, ctypes.c_size_t, ctypes.c_void_p
        lib.ggml_type_name.argtypes = [c_int]; lib.ggml_type_name.restype = ctypes.c_char_p
        lib.ggml_blck_size.argtypes = [c_int]; lib.ggml_blck_size.restype = i64
        lib.ggml_type_size.argtypes = [c_int]; lib.ggml_type_size.restype = sz
        lib.ggml_row_size.argtypes = [c_int, i64]; lib.ggml_row_size.restype = sz
        lib.ggml_is_quantized.argtypes = [c_int]; lib.ggml_is_quantized.restype = ctypes.c_bool
        lib.ggml_quantize_requires_imatrix.argtypes = [c_int]; lib.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
        lib.ggml_quantize_chunk.argtypes = [c_int, vp, vp, i64, i64, i64, vp]
        lib.ggml_quantize_chunk.restype = sz
        lib.ggml_get_type_traits.argtypes = [c_int]; lib.ggml_get_type_traits.restype = ctypes.POINTER(TypeTraits)
        self.has_validate = hasattr(lib, "ggml_validate_row_data")
        if self.has_validate:
            lib.ggml_validate_row_data.argtypes = [c_int, vp, sz]; lib.ggml_validate_row_data.restype = ctypes.c_bool
        for f in ("ggml_version", "ggml_commit"):
            if hasattr(lib, f):
                getattr(lib, f).argtypes = []; getattr(lib, f).restype = ctypes.c_char_p
        for name, t in TYPE_IDS.items():
            tr = self.traits(t)
            got = lib.ggml_type_name(t).decode()
            if got.upper() != name or tr.type_name.decode() != got:
                sys.exit(f"type id {t}: ggml says {got!r}, expected {name}")
            if tr.blck_size != lib.ggml_blck_size(t) or tr.type_size != lib.ggml_type_size(t):
                sys.exit(f"struct ggml_type_traits layout mismatch for {name}")

    def version(self) -> dict:
        out = {}
        for f in ("ggml_version", "ggml_commit"):
            if hasattr(self.lib, f):
                out[f] = getattr(self.lib, f)().decode()
        return out

    def traits(self, t: int) -> TypeTraits:
        return self.lib.ggml_get_type_traits(t).contents

    def row_size(self, t: int, n: int) -> int:
        return int(self.lib.ggml_row_size(t, n))

    def quantize_chunk(self, t: int, x: np.ndarray, imatrix: np.ndarray | None = None) -> bytes:
        x = np.ascontiguousarray(x, dtype=np.float32)
        n_per_row = x.shape[-1]
        nrows = x.size // n_per_row
        assert n_per_row % self.traits(t).blck_size == 0
        dst = ctypes.create_string_buffer(self.row_size(t, n_per_row) * nrows)
        imp = None
        if imatrix is not None:
            imatrix = np.ascontiguousarray(imatrix, dtype=np.float32)
            assert imatrix.size == n_per_row
            imp = imatrix.ctypes.data
        n = self.lib.ggml_quantize_chunk(t, x.ctypes.data, ctypes.addressof(dst), 0, nrows, n_per_row, imp)
        return dst.raw[:n]

    def from_float_ref(self, t: int, x: np.ndarray) -> bytes:
        x = np.ascontiguousarray(x, dtype=np.float32)
        tr = self.traits(t)
        dst = ctypes.create_string_buffer(x.size // tr.blck_size * tr.type_size)
        FROM_FLOAT(tr.from_float_ref)(x.ctypes.data, ctypes.addressof(dst), x.size)
        return dst.raw

    def to_float(self, t: int, buf: bytes, n: int) -> np.ndarray:
        tr = self.traits(t)
        assert len(buf) == n // tr.blck_size * tr.type_size
        src = ctypes.create_string_buffer(buf, len(buf))
        y = np.empty(n, dtype=np.float32)
        TO_FLOAT(tr.to_float)(ctypes.addressof(src), y.ctypes.data, n)
        return y

    def validate(self, t: int, buf: bytes) -> bool | None:
        if not self.has_validate:
            return None
        src = ctypes.create_string_buffer(buf, len(buf))
        return bool(self.lib.ggml_validate_row_data(t, ctypes.addressof(src), len(buf)))


# ---------------------------------------------------------------------------------------- inputs

def make_input(kind: str) -> np.ndarray:
    seed = 1000 + KINDS.index(kind)
    rng = np.random.default_rng(seed)
    shape = (ROWS, COLS)
    if kind == "normal":
        x = rng.standard_normal(shape) * 0.02
    elif kind == "heavy":
        x = rng.standard_t(2.0, shape) * 0.02
    elif kind == "zero":
        x = np.zeros(shape)
    elif kind == "constant":
        x = np.full(shape, 0.37)
        x[5] = -1.25
    elif kind == "outlier":
        x = rng.standard_normal(shape) * 0.02
        # one +-1e4 per row; positions hit the first/last element of 32-blocks and 256-superblocks
        pos = [0, 31, 32, 255, 256, 300, 479, 511]
        for r, p in enumerate(pos):
            x[r, p] = 1e4 if r % 2 == 0 else -1e4
    elif kind == "denormal":
        sub = lambda n: rng.uniform(0.1, 1.0, n) * 1e-40 * rng.choice([-1.0, 1.0], n)   # f32 subnormal
        tiny = lambda n: rng.uniform(1.0, 5.0, n) * 1e-38 * rng.choice([-1.0, 1.0], n)  # smallest normals
        x = np.zeros(shape)
        x[0] = sub(COLS)                                          # entirely subnormal
        pick = rng.integers(0, 3, (ROWS, COLS))
        for r in range(1, ROWS):
            s, t = sub(COLS), tiny(COLS)
            x[r] = np.where(pick[r] == 0, s, np.where(pick[r] == 1, t, 0.0))
        x[2] = np.abs(x[2])                                       # all >= 0
        x[3] = -np.abs(x[3])                                      # all <= 0
        x[4, :256] = 0.0                                          # first superblock zero, second mixed
        x[5] = tiny(COLS)                                         # only tiny normals
        x[6, ::2] = 1.401298464324817e-45                         # min subnormal / max subnormal pairs
        x[6, 1::2] = -1.1754942106924411e-38
        # row 7: mixed subnormal / tiny normal / zero (as drawn)
    elif kind == "mixed":
        scales = [1e-8, 1e-6, 1e-4, 1e-3, 1e-1, 1.0, 1e3, 1e4]
        x = rng.standard_normal(shape) * np.array(scales)[:, None]
    else:
        raise ValueError(kind)
    x = x.astype(np.float32)
    if kind == "denormal":
        assert (np.abs(x[0]) < np.float32(1.1754944e-38)).all() and (x[0] != 0).all()
    return x


def make_imatrix(kind: str, zeros: int = IMATRIX_ZEROS) -> np.ndarray:
    rng = np.random.default_rng(2000 + KINDS.index(kind))
    w = np.exp(rng.standard_normal(COLS)).astype(np.float32)
    if zeros:
        w[rng.choice(COLS, zeros, replace=False)] = 0.0
    return w


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def block_diff(a: bytes, b: bytes, type_size: int, block_size: int) -> dict:
    A = np.frombuffer(a, np.uint8).reshape(-1, type_size)
    B = np.frombuffer(b, np.uint8).reshape(-1, type_size)
    bad = np.nonzero((A != B).any(axis=1))[0]
    per_row = COLS // block_size
    return {"differing_blocks": int(bad.size), "of_blocks": int(A.shape[0]),
            "rows_with_diffs": sorted({int(i // per_row) for i in bad})}


def nonfinite(y: np.ndarray) -> dict:
    return {"nan": int(np.isnan(y).sum()), "inf": int(np.isinf(y).sum())}


# ----------------------------------------------------------------------- child experiments

def child(spec: dict) -> None:
    g = Ggml(spec["lib_dir"])
    t = TYPE_IDS[spec["type"]]
    tr = g.traits(t)
    out = {}
    if spec["what"] == "hostile":
        x = make_input("normal")
        case = spec["case"]
        if case == "nan_one":
            x[0, 5] = np.nan
        elif case == "pos_inf_one":
            x[1, 40] = np.inf
        elif case == "neg_inf_one":
            x[2, 300] = -np.inf
        elif case == "nan_row":
            x[3, :] = np.nan
        elif case == "huge_1e8":
            x[4, 7] = 1e8            # finite, overflows F16 and every F16 block scale
        im = make_imatrix("normal") if spec["imatrix"] else None
        if case == "bad_n_per_row":
            # n_per_row = 500 is not a multiple of 32 / 256. ggml_row_size only has a C assert() (compiled
            # out with NDEBUG), so nothing stops the call: measure what it returns and what it writes,
            # into a buffer with generous slack pre-filled with two different sentinels.
            x = x.reshape(-1)[: 8 * 500].reshape(8, 500).copy()
            im = im[:500].copy() if im is not None else None
            cap = x.size * 4 + 4096
            written, returned = 0, None
            for fill in (0x00, 0xFF):
                dst = ctypes.create_string_buffer(bytes([fill]) * cap, cap)
                returned = int(g.lib.ggml_quantize_chunk(t, x.ctypes.data, ctypes.addressof(dst), 0, 8, 500,
                                                         im.ctypes.data if im is not None else None))
                raw = np.frombuffer(dst.raw, np.uint8)
                changed = np.nonzero(raw != fill)[0]
                written = max(written, int(changed[-1]) + 1 if changed.size else 0)
            out["returned_bytes"] = returned
            out["bytes_written"] = written
            out["row_size_if_exact"] = 500 * int(tr.type_size) / int(tr.blck_size)
            sys.stdout.write(json.dumps(out))
            return
        clean = g.quantize_chunk(t, make_input("normal"), im)
        b = g.quantize_chunk(t, x, im)
        out["returned_bytes"] = len(b)
        out["validate_row_data"] = g.validate(t, b)
        y = g.to_float(t, b, x.size)
        out["dequant"] = nonfinite(y)
        out["dequant_rows_nonfinite"] = sorted({int(i // COLS) for i in np.nonzero(~np.isfinite(y))[0]})
        out["vs_clean_input"] = block_diff(clean, b, int(tr.type_size), int(tr.blck_size))
        out["sha256"] = sha256(b)
    elif spec["what"] == "imatrix_zeros":
        case = spec["case"]
        for kind in KINDS:
            x = make_input(kind)
            w = make_imatrix(kind, zeros=0)
            if case == "scattered":
                w = make_imatrix(kind, zeros=IMATRIX_ZEROS)
            elif case == "block32":
                w[64:96] = 0.0
            elif case == "superblock256":
                w[256:512] = 0.0
            elif case == "all":
                w[:] = 0.0
            b = g.quantize_chunk(t, x, w)
            y = g.to_float(t, b, x.size)
            out[kind] = {"validate_row_data": g.validate(t, b), "dequant": nonfinite(y),
                         "rmse": float(np.sqrt(np.mean((y.astype(np.float64) - x.reshape(-1)) ** 2)))
                         if np.isfinite(y).all() else None,
                         "equals_no_imatrix": None if g.lib.ggml_quantize_requires_imatrix(t)
                         else b == g.quantize_chunk(t, x, None)}
    sys.stdout.write(json.dumps(out))


def run_child(spec: dict, timeout: float = 120.0) -> dict:
    env = dict(os.environ, GGML_NO_BACKTRACE="1")
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)],
                       capture_output=True, text=True, timeout=timeout, env=env)
    res = {"exit": p.returncode}
    if p.returncode < 0:
        res["signal"] = signal.Signals(-p.returncode).name
    if p.returncode == 0:
        res.update(json.loads(p.stdout))
    # keep only ggml's own messages (asserts, validate_row_data complaints); no addresses
    msgs = [ln.strip() for ln in p.stderr.splitlines()
            if ("GGML_ASSERT" in ln or "ggml_validate_row_data" in ln or "error" in ln.lower())]
    if msgs:
        res["stderr"] = [m.split("/ggml/src/")[-1] for m in msgs[:4]]
    return res


# ------------------------------------------------------------------------------------------ main

def write(path: str, data: bytes, files: dict, rel_root: str) -> dict:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    ent = {"sha256": sha256(data), "size": len(data)}
    files[os.path.relpath(path, rel_root)] = ent
    return ent


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(HERE, "vectors"))
    ap.add_argument("--lib-dir", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        return child(json.loads(a.child))

    lib_dir = os.path.abspath(a.lib_dir or default_lib_dir())
    g = Ggml(lib_dir)
    import gguf
    from gguf import quants
    from gguf.constants import GGMLQuantizationType as GT

    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    files: dict[str, dict] = {}
    n = ROWS * COLS

    manifest = {
        "generator": "validation/quant/make_vectors.py",
        "command": "/tmp/peers/venv-llama/bin/python validation/quant/make_vectors.py",
        "versions": {"llama_cpp_python": package_version("llama_cpp_python"), **g.version(),
                     "gguf_py": importlib.metadata.version("gguf"), "numpy": np.__version__,
                     "python": platform.python_version()},
        "library": {"libggml_base": g.path,
                    "ggml_quantize_chunk": "size_t ggml_quantize_chunk(enum ggml_type type, const float * src, "
                                           "void * dst, int64_t start, int64_t nrows, int64_t n_per_row, "
                                           "const float * imatrix)  // called with start=0, nrows=8, n_per_row=512",
                    "type_traits": "ggml_get_type_traits(type) -> const struct ggml_type_traits * {const char * "
                                   "type_name @0; int64_t blck_size @8; int64_t blck_size_interleave @16; size_t "
                                   "type_size @24; bool is_quantized @32; ggml_to_float_t to_float @40; "
                                   "ggml_from_float_t from_float_ref @48} (x86-64 offsets)",
                    "to_float": "void (const void * x, float * y, int64_t k), k = 8*512",
                    "from_float_ref": "void (const float * x, void * y, int64_t k), k = 8*512",
                    "ggml_validate_row_data_exported": g.has_validate},
        "shape": {"rows": ROWS, "n_per_row": COLS, "layout": "row-major; .f32 = raw little-endian float32; "
                  ".bin = raw ggml blocks, rows back to back (row r at r*row_size)"},
        "inputs": {},
        "types": {},
    }

    # --- inputs
    X, W = {}, {}
    descr = {
        "normal": "N(0,1)*0.02, seed 1000",
        "heavy": "Student-t(2 dof)*0.02, seed 1001",
        "zero": "all 0.0",
        "constant": "all 0.37, row 5 all -1.25",
        "outlier": "N(0,1)*0.02 (seed 1004); row r has one value +1e4 (even r) / -1e4 (odd r) at column "
                   "[0,31,32,255,256,300,479,511][r]",
        "denormal": "seed 1005; row 0 all f32 subnormal (|x| in [1e-41,1e-40], random sign); rows 1,7 per element "
                    "subnormal / tiny normal (|x| in [1e-38,5e-38]) / 0; row 2 same but >= 0; row 3 same but <= 0; "
                    "row 4 same with columns 0..255 zero; row 5 only tiny normals; row 6 alternating "
                    "+1.4e-45 (min subnormal) and -1.1754942e-38 (max subnormal)",
        "mixed": "N(0,1) (seed 1006) times row scale [1e-8,1e-6,1e-4,1e-3,1e-1,1,1e3,1e4]",
    }
    for kind in KINDS:
        x = make_input(kind)
        w = make_imatrix(kind)
        X[kind], W[kind] = x, w
        e1 = write(os.path.join(out, "inputs", f"{kind}.f32"), x.astype("<f4").tobytes(), files, out)
        e2 = write(os.path.join(out, "inputs", f"{kind}.imatrix.f32"), w.astype("<f4").tobytes(), files, out)
        manifest["inputs"][kind] = {"description": descr[kind], "file": f"inputs/{kind}.f32", **e1,
                                    "imatrix": {"file": f"inputs/{kind}.imatrix.f32", **e2,
                                                "description": f"exp(N(0,1)) float32, seed {2000 + KINDS.index(kind)}, "
                                                               f"{IMATRIX_ZEROS} entries set to 0.0",
                                                "zero_positions": np.nonzero(w == 0)[0].tolist()}}

    # --- quantize every type x kind
    for name in TYPES:
        t = TYPE_IDS[name]
        tr = g.traits(t)
        bs, ts = int(tr.blck_size), int(tr.type_size)
        info = {"ggml_type_id": t, "ggml_type_name": g.lib.ggml_type_name(t).decode(),
                "block_size": int(g.lib.ggml_blck_size(t)), "type_size": int(g.lib.ggml_type_size(t)),
                "row_size": g.row_size(t, COLS), "is_quantized": bool(g.lib.ggml_is_quantized(t)),
                "requires_imatrix": bool(g.lib.ggml_quantize_requires_imatrix(t)),
                "has_from_float_ref": bool(tr.from_float_ref), "has_to_float": bool(tr.to_float)}
        chunk, chunk_im = {}, {}
        required = info["requires_imatrix"]
        for kind in KINDS:
            # ggml_quantize_chunk GGML_ASSERTs an imatrix for these types: only the weighted bytes exist.
            chunk_im[kind] = g.quantize_chunk(t, X[kind], W[kind])
            chunk[kind] = None if required else g.quantize_chunk(t, X[kind], None)
        consumes = required or any(chunk[k] != chunk_im[k] for k in KINDS)
        info["imatrix"] = "consumed" if consumes else "ignored (bytes identical with and without imatrix on all kinds)"
        per = {}
        for kind in KINDS:
            x, b = X[kind], chunk[kind]
            if required:
                # no unweighted bytes: the imatrix file stands in for the dequant and reference records below
                e = {"bin": None, "imatrix_bin": write(os.path.join(out, name, f"{kind}.imatrix.bin"), chunk_im[kind], files, out)}
                b = chunk_im[kind]
                e["imatrix_validate_row_data"] = g.validate(t, b)
                e["ref"] = "none: ggml has no from_float_ref for a type that needs an imatrix"
                y = g.to_float(t, b, n)
                e["dequant"] = write(os.path.join(out, name, f"{kind}.dequant.f32"), y.astype("<f4").tobytes(), files, out)
                e["dequant_of"] = "imatrix_bin"
                e["dequant_nonfinite"] = nonfinite(y)
                d = y.astype(np.float64) - x.reshape(-1).astype(np.float64)
                e["rmse_vs_input"] = float(np.sqrt(np.mean(d * d))) if np.isfinite(d).all() else None
                per[kind] = e
                continue
            assert len(b) == info["row_size"] * ROWS
            e = {"bin": write(os.path.join(out, name, f"{kind}.bin"), b, files, out)}
            if consumes:
                e["imatrix_bin"] = write(os.path.join(out, name, f"{kind}.imatrix.bin"), chunk_im[kind], files, out)
                e["imatrix_bin_equals_bin"] = chunk_im[kind] == b
                e["imatrix_validate_row_data"] = g.validate(t, chunk_im[kind])
                yi = g.to_float(t, chunk_im[kind], n)
                e["imatrix_dequant_nonfinite"] = nonfinite(yi)
            if name in REF_UNDEFINED:
                e["ref"] = REF_UNDEFINED[name]
                e["ref_equals_bin"] = None
                ref = b
            elif not tr.from_float_ref:
                e["ref"] = "none: ggml_type_traits.from_float_ref is NULL"
                e["ref_equals_bin"] = None
                ref = b
            else:
                ref = g.from_float_ref(t, x)
                e["ref_equals_bin"] = ref == b
            if ref != b:
                e["ref_bin"] = write(os.path.join(out, name, f"{kind}.ref.bin"), ref, files, out)
                e["ref_vs_bin"] = block_diff(ref, b, ts, bs)
            y = g.to_float(t, b, n)
            e["dequant"] = write(os.path.join(out, name, f"{kind}.dequant.f32"), y.astype("<f4").tobytes(), files, out)
            e["dequant_nonfinite"] = nonfinite(y)
            e["validate_row_data"] = g.validate(t, b)
            d = y.astype(np.float64) - x.reshape(-1).astype(np.float64)
            e["rmse_vs_input"] = float(np.sqrt(np.mean(d * d))) if np.isfinite(d).all() else None
            per[kind] = e
        refs = [per[k].get("ref_equals_bin") for k in KINDS]
        info["ref_equals_chunk_all_kinds"] = None if None in refs else all(refs)
        info["files"] = per
        manifest["types"][name] = info

    # --- gguf-py (numpy) quantizers and dequantizers vs ggml
    gp = {"gguf_py_version": importlib.metadata.version("gguf"), "quantize": {}, "dequantize": {}}
    for name in TYPES:
        T = GT[name]
        bs, ts = gguf.GGML_QUANT_SIZES[T]
        assert (bs, ts) == (manifest["types"][name]["block_size"], manifest["types"][name]["type_size"])
        if name in GGUF_PY_QUANTIZE_TYPES:
            res = {}
            for kind in KINDS:
                with np.errstate(all="ignore"):   # gguf-py warns about 1/d overflow on the denormal kind
                    pb = np.ascontiguousarray(quants.quantize(X[kind], T)).tobytes()
                gb = open(os.path.join(out, name, f"{kind}.bin"), "rb").read()
                r = {"identical": pb == gb}
                if pb != gb:
                    r.update(block_diff(pb, gb, ts, bs))
                res[kind] = r
            gp["quantize"][name] = res
        res = {}
        for kind in KINDS:
            stem = f"{kind}.imatrix.bin" if manifest["types"][name]["requires_imatrix"] else f"{kind}.bin"
            gb = open(os.path.join(out, name, stem), "rb").read()
            yg = np.fromfile(os.path.join(out, name, f"{kind}.dequant.f32"), dtype="<f4")
            raw = np.frombuffer(gb, np.uint8).reshape(quants.quant_shape_to_byte_shape((ROWS, COLS), T))
            with np.errstate(all="ignore"):
                yp = np.asarray(quants.dequantize(raw, T), dtype=np.float32).reshape(-1)
            res[kind] = bool(np.array_equal(yg.view(np.uint32), yp.view(np.uint32)))
        gp["dequantize"][name] = {"bitwise_equal_to_ggml_to_float": res}
    gp["summary"] = {
        "quantize_identical": {n_: [k for k, r in v.items() if r["identical"]] for n_, v in gp["quantize"].items()},
        "quantize_mismatch": {n_: [k for k, r in v.items() if not r["identical"]] for n_, v in gp["quantize"].items()
                              if any(not r["identical"] for r in v.values())},
        "dequantize_mismatch": {n_: [k for k, ok in v["bitwise_equal_to_ggml_to_float"].items() if not ok]
                                for n_, v in gp["dequantize"].items()
                                if not all(v["bitwise_equal_to_ggml_to_float"].values())},
        "no_numpy_quantizer_in_gguf_py": [n_ for n_ in TYPES if n_ not in GGUF_PY_QUANTIZE_TYPES],
    }
    manifest["gguf_py"] = gp

    # --- which ggml types refuse to quantize without an imatrix (all ids below GGML_TYPE_COUNT = 43)
    req = [g.lib.ggml_type_name(t).decode() for t in range(GGML_TYPE_COUNT)
           if g.lib.ggml_type_name(t) and g.lib.ggml_quantize_requires_imatrix(t)]
    manifest["requires_imatrix_all_types"] = {
        "ggml_quantize_requires_imatrix_true_for": req,
        "note": "ggml_quantize_chunk GGML_ASSERTs imatrix != NULL for these; their vectors have only .imatrix.bin"}

    # --- MXFP4 shared exponent for tiny blocks: e = (uint8_t)(floorf(log2f(amax)) - 2 + 127) is a
    # float -> uint8 conversion of a negative number when amax < 2^-125 (undefined behaviour in C)
    mx = {}
    for kind in KINDS:
        xb = X[kind].reshape(-1, 32).astype(np.float64)
        amax = np.abs(xb).max(axis=1)
        with np.errstate(divide="ignore"):
            ex = np.where(amax > 0, np.floor(np.log2(np.maximum(amax, 1e-300))) - 2 + 127, 0)
        neg = np.nonzero(ex < 0)[0]
        if neg.size:
            eb = np.frombuffer(open(os.path.join(out, "MXFP4", f"{kind}.bin"), "rb").read(), np.uint8).reshape(-1, 17)[:, 0]
            mx[kind] = {"blocks_with_negative_exponent": int(neg.size),
                        "rows": sorted({int(i // (COLS // 32)) for i in neg}),
                        "e_bytes_written": sorted({int(v) for v in eb[neg]}),
                        "validate_row_data_of_file": manifest["types"]["MXFP4"]["files"][kind]["validate_row_data"]}
    manifest["mxfp4_tiny_blocks"] = {
        "note": "quantize_row_mxfp4_ref computes e = (uint8_t)(floorf(log2f(amax)) - 2 + 127). For 0 < amax < 2^-125 "
                "this converts a negative float to uint8, which C leaves undefined. On x86-64 (gcc, cvttss2si then "
                "truncation) it wraps: -1 -> 255 (0xFF, which ggml_validate_row_data rejects as the E8M0 NaN code), "
                "-8 -> 248. All nibbles are then 0, so these blocks still dequantize to 0.0. ARM64 (fcvtzu) "
                "saturates to 0 instead, so these bytes are x86-specific. gguf-py (numpy astype(uint8)) "
                "matched ggml here on x86-64.",
        "kinds": mx}

    # --- hostile inputs (each in its own process)
    hostile = {"what_it_checks": "ggml_quantize_chunk on the `normal` input with one injected value, run in a "
                                 "subprocess (exit < 0 = killed by signal). ggml_quantize_chunk itself does no "
                                 "input validation; ggml_validate_row_data checks only the F16/BF16 values and the "
                                 "per-block scales (d, dmin, e) for NaN/Inf.",
               "cases": {"nan_one": "x[0,5] = NaN", "pos_inf_one": "x[1,40] = +Inf", "neg_inf_one": "x[2,300] = -Inf",
                         "nan_row": "x[3,:] = NaN", "huge_1e8": "x[4,7] = 1e8 (finite; overflows F16)",
                         "bad_n_per_row": "n_per_row = 500, nrows = 8 (not a multiple of the block size for the "
                                          "quantized types); records the size ggml returns and how many bytes it "
                                          "actually writes (buffer pre-filled with sentinels)"},
               "undefined_behaviour": "NaN/Inf reach float->int conversions (roundf(NaN) -> int8 etc.), which C "
                                      "leaves undefined; the byte patterns here are what gcc/x86-64 produces.",
               "results": {}}
    for name in TYPES:
        consumes = manifest["types"][name]["imatrix"] == "consumed"
        r = {}
        for case in hostile["cases"]:
            for use_im in ([False, True] if consumes else [False]):
                key = case + ("+imatrix" if use_im else "")
                r[key] = run_child({"what": "hostile", "lib_dir": lib_dir, "type": name, "case": case,
                                    "imatrix": use_im})
        hostile["results"][name] = r
    manifest["hostile"] = hostile

    # --- zeros in the importance matrix
    iz = {"what_it_checks": "ggml_quantize_chunk with an imatrix containing zeros, every kind; dequant NaN/Inf "
                            "counts, ggml_validate_row_data, rmse vs input",
          "cases": {"none": "exp(N(0,1)), no zeros", "scattered": f"{IMATRIX_ZEROS} scattered zeros (as committed)",
                    "block32": "columns 64..95 zero (one whole 32-block)",
                    "superblock256": "columns 256..511 zero (one whole 256-superblock)", "all": "all zero"},
          "results": {}}
    for name in TYPES:
        if manifest["types"][name]["imatrix"] != "consumed":
            continue
        iz["results"][name] = {case: run_child({"what": "imatrix_zeros", "lib_dir": lib_dir, "type": name,
                                                "case": case}) for case in iz["cases"]}
    manifest["imatrix_zeros"] = iz

    manifest["files"] = dict(sorted(files.items()))
    manifest["total_bytes_excluding_manifest"] = sum(v["size"] for v in files.values())
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=0)  # indent 0: one value per line without the indentation bytes
        f.write("\n")
    print(json.dumps({"out": out, "files": len(files) + 1,
                      "bytes": manifest["total_bytes_excluding_manifest"] + os.path.getsize(os.path.join(out, "manifest.json"))}))


if __name__ == "__main__":
    main()
