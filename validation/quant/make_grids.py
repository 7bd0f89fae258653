#!/usr/bin/env python3
"""make_grids.py - the i-quant lattices read out of ggml itself, and blocks that prove them.

ggml's i-quants (IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S) store, per group of 8 (or 4) values, an index
into a fixed table of lattice points. The tables live in ggml's sources as static arrays that no symbol exports, so this
script reads them back through ggml's public dequantizer (ggml_get_type_traits(type)->to_float of libggml-base): it
builds blocks with scale 1 that name every grid index once (and every sign pattern), dequantizes them with ggml, and
turns the values back into levels.

Writes
  Sources/QuantKernels/IQuantGrids.swift   the tables moeq's kernels use (`--swift PATH`), levels per coordinate
  validation/quant/vectors/grids/TYPE.bin  those crafted blocks plus 16 blocks of random bytes per type (`--out DIR`)
  validation/quant/vectors/grids/TYPE.dequant.f32   ggml's to_float of each .bin
GridTests dequantizes every .bin with moeq and compares bit for bit, so a wrong table entry fails CI.

Run with the python of the venv that has llama-cpp-python and numpy (setup_peers.sh makes it):
    /work/peers/venv-llama/bin/python validation/quant/make_grids.py [--lib-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from make_vectors import Ggml, default_lib_dir  # noqa: E402

IDS = {"IQ2_XXS": 16, "IQ2_XS": 17, "IQ3_XXS": 18, "IQ1_S": 19, "IQ3_S": 21, "IQ2_S": 22, "IQ1_M": 29}
ONE = 0x3C00  # f16 1.0
RANDOM_BLOCKS = 6


def f16(v: float) -> int:
    return int(np.array([v], dtype=np.float16).view(np.uint16)[0])


# ---------------------------------------------------------------- crafted blocks, one per 32 grid indices

def iq2xxs_blocks(n_grid: int) -> list[bytes]:
    """d = 1, every 32-group scale nibble 0 (db = 0.125), signs index 0: y = grid / 8. Then 4 blocks naming the
    128 sign indices with grid point 0."""
    out = []
    for start in range(0, n_grid, 32):
        b = struct.pack("<H", ONE)
        for g in range(8):
            idx = [start + 4 * g + l for l in range(4)]
            b += bytes(idx) + struct.pack("<I", 0)
        out.append(b)
    for start in range(0, 128, 32):
        b = struct.pack("<H", ONE)
        for g in range(8):
            s = [start + 4 * g + l for l in range(4)]
            b += bytes(4) + struct.pack("<I", s[0] | s[1] << 7 | s[2] << 14 | s[3] << 21)
        out.append(b)
    return out


def iq2xs_blocks(n_grid: int) -> list[bytes]:
    out = []
    for start in range(0, n_grid, 32):
        qs = [start + k for k in range(32)]
        out.append(struct.pack("<H", ONE) + struct.pack("<32H", *qs) + bytes(8))
    return out


def iq2s_blocks(n_grid: int) -> list[bytes]:
    out = []
    for start in range(0, n_grid, 32):
        idx = [start + k for k in range(32)]
        qs = bytes(i & 255 for i in idx) + bytes(32)            # low index bytes, then 32 sign bytes (0)
        qh = bytes(sum(((idx[4 * g + l] >> 8) & 3) << (2 * l) for l in range(4)) for g in range(8))
        out.append(struct.pack("<H", ONE) + qs + qh + bytes(8))
    return out


def iq3xxs_blocks(n_grid: int) -> list[bytes]:
    """d = 1, scale nibble 0 (db = 0.25), signs 0: y = grid / 4; 64 indices per block."""
    out = []
    for start in range(0, n_grid, 64):
        out.append(struct.pack("<H", ONE) + bytes(start + k for k in range(64)) + bytes(32))
    return out


def iq3s_blocks(n_grid: int) -> list[bytes]:
    """d = 1, scale nibbles 0 (db = 1), signs 0: y = grid; 64 indices per block, high bits in qh."""
    out = []
    for start in range(0, n_grid, 64):
        idx = [start + k for k in range(64)]
        qs = bytes(i & 255 for i in idx)
        qh = bytes(sum(((idx[8 * g + k] >> 8) & 1) << k for k in range(8)) for g in range(8))
        out.append(struct.pack("<H", ONE) + qs + qh + bytes(32) + bytes(4))
    return out


def iq1s_blocks(n_grid: int) -> list[bytes]:
    """d = 1, scale 0 (dl = 1), delta +1/8: y = grid + 0.125."""
    out = []
    for start in range(0, n_grid, 32):
        idx = [start + k for k in range(32)]
        qs = bytes(i & 255 for i in idx)
        qh = [sum(((idx[4 * g + l] >> 8) & 7) << (3 * l) for l in range(4)) for g in range(8)]
        out.append(struct.pack("<H", ONE) + qs + struct.pack("<8H", *qh))
    return out


def random_blocks(name: str, size: int, rng: np.random.Generator) -> list[bytes]:
    """Random bytes with a finite, moderate f16 scale where the type has one field for it."""
    out = []
    for _ in range(RANDOM_BLOCKS):
        b = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
        d = f16(float(rng.uniform(0.001, 0.1)))
        if name == "IQ1_M":  # the f16 scale is spread over the top nibbles of the four uint16 scale words
            for w in range(4):
                off = 48 + 2 * w
                word = struct.unpack_from("<H", b, off)[0] & 0x0FFF | ((d >> (4 * w)) & 0xF) << 12
                struct.pack_into("<H", b, off, word)
        else:
            struct.pack_into("<H", b, 0, d)
        out.append(bytes(b))
    return out


CRAFT = {"IQ2_XXS": (iq2xxs_blocks, 256), "IQ2_XS": (iq2xs_blocks, 512), "IQ2_S": (iq2s_blocks, 1024),
         "IQ3_XXS": (iq3xxs_blocks, 256), "IQ3_S": (iq3s_blocks, 512), "IQ1_S": (iq1s_blocks, 2048)}


def levels_of(values: np.ndarray, expected: int) -> tuple[list[float], np.ndarray]:
    levels = sorted(set(values.tolist()))
    if len(levels) != expected:
        sys.exit(f"expected {expected} distinct grid values, found {levels}")
    return levels, np.searchsorted(np.array(levels), values)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib-dir", default=None)
    ap.add_argument("--out", default=os.path.join(HERE, "vectors", "grids"))
    ap.add_argument("--swift", default=os.path.join(ROOT, "Sources", "QuantKernels", "IQuantGrids.swift"))
    a = ap.parse_args(argv)
    g = Ggml(os.path.abspath(a.lib_dir or default_lib_dir()))
    rng = np.random.default_rng(4242)
    os.makedirs(a.out, exist_ok=True)
    tables, manifest = {}, {"generator": "validation/quant/make_grids.py", "library": g.path, **g.version(),
                            "random_blocks_per_type": RANDOM_BLOCKS, "types": {}}
    for name, t in IDS.items():
        size = int(g.lib.ggml_type_size(t))
        blocks = []
        if name in CRAFT:
            make, n_grid = CRAFT[name]
            blocks = make(n_grid)
            y = g.to_float(t, b"".join(blocks), 256 * len(blocks))
            if name == "IQ2_XXS":
                grid = y[: 8 * n_grid] * 8
                signs = y[8 * n_grid:].reshape(128, 8) < 0
                ks = [int(sum(1 << j for j in range(8) if signs[s, j])) for s in range(128)]
                if any(ks[s] != s | (bin(s).count("1") % 2) << 7 for s in range(128)):
                    sys.exit("ksigns_iq2xs is not the even-parity completion of the 7-bit index")
                manifest["ksigns_iq2xs"] = "even-parity completion of the 7-bit sign index (checked, all 128)"
            elif name == "IQ2_XS" or name == "IQ2_S":
                grid = y * 8
            elif name == "IQ3_XXS":
                grid = y * 4
            elif name == "IQ3_S":
                grid = y
            else:
                grid = y - np.float32(0.125)
            dims, bits = (4, 3) if name.startswith("IQ3") else (8, 2)
            levels, codes = levels_of(grid.astype(np.float32), 8 if bits == 3 else 3)
            codes = codes.reshape(n_grid, dims)
            packed = [int(sum(int(c) << (bits * i) for i, c in enumerate(row))) for row in codes]
            tables[name] = (packed, levels, dims, bits)
        blocks += random_blocks(name, size, rng)
        data = b"".join(blocks)
        assert len(data) == size * len(blocks)
        y = g.to_float(t, data, 256 * len(blocks))
        with open(os.path.join(a.out, f"{name}.bin"), "wb") as f:
            f.write(data)
        with open(os.path.join(a.out, f"{name}.dequant.f32"), "wb") as f:
            f.write(y.astype("<f4").tobytes())
        manifest["types"][name] = {"ggml_type_id": t, "type_size": size, "blocks": len(blocks),
                                   "crafted_blocks": len(blocks) - RANDOM_BLOCKS}
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")

    names = {"IQ2_XXS": "iq2xxs", "IQ2_XS": "iq2xs", "IQ2_S": "iq2s", "IQ3_XXS": "iq3xxs", "IQ3_S": "iq3s", "IQ1_S": "iq1s"}
    lines = ["// Generated by validation/quant/make_grids.py from ggml's own dequantization (libggml-base of llama-cpp-python);",
             "// do not edit. Each entry is one lattice point: coordinate i is level (code >> (bits·i)) & mask, and the level's",
             "// value is `levels[level]`. GridTests checks these tables by dequantizing ggml-made blocks bit for bit.", "",
             "extension IQuantGrid {"]
    for name, (packed, levels, dims, bits) in tables.items():
        key = names[name]
        lines.append(f"    /// {name}: {len(packed)} points of {dims} coordinates, {bits} bits each; level values {levels}.")
        lines.append(f"    static let {key}Codes: [UInt16] = [")
        for i in range(0, len(packed), 16):
            lines.append("        " + " ".join(f"0x{p:04x}," for p in packed[i:i + 16]))
        lines.append("    ]")
        vals = ", ".join(str(int(v)) if float(v).is_integer() else repr(float(v)) for v in levels)
        lines.append(f"    static let {key}Levels: [Float] = [{vals}]")
    lines.append("}")
    with open(a.swift, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(json.dumps({"swift": a.swift, "out": a.out, "tables": {k: len(v[0]) for k, v in tables.items()}}))


if __name__ == "__main__":
    main()
