#!/usr/bin/env python3
"""Interop between moeq and the Python `safetensors` package, both ways (CI runs this).

1. moeq's writer -> safetensors' reader: `moeq synth` checkpoints (bf16, f32, fp8, int4) are parsed by
   `safetensors.deserialize` (the Rust validator); names, dtypes and shapes must equal moeq's own listing,
   and each logical weight decoded here with numpy (independently of moeq) must equal `moeq dump`.
2. safetensors' writer -> moeq's reader: `safetensors.numpy.save_file` writes every numpy dtype; moeq must
   list them identically and `moeq dump --raw` / `moeq dump` must reproduce the arrays.
3. A corrupted header makes moeq exit non-zero with an error naming the file.

Usage: check_safetensors.py PATH/TO/moeq
"""
import json
import os
import tempfile

import numpy as np
import safetensors
from safetensors.numpy import save_file

from harness import check, finish, moeq


# --- independent numpy decoders (formats.md §3, §4) -----------------------------------------------

def e4m3_table():
    codes = np.arange(256, dtype=np.uint32)
    sign = np.where(codes & 0x80, -1.0, 1.0)
    exponent = (codes >> 3) & 0xF
    mantissa = (codes & 7).astype(np.float64)
    value = np.where(exponent == 0, mantissa / 8 * 2.0 ** -6, (1 + mantissa / 8) * 2.0 ** (exponent.astype(np.float64) - 7))
    value = sign * value
    value[(codes & 0x7F) == 0x7F] = np.nan
    return value.astype(np.float32)


E4M3 = e4m3_table()


def raw_array(entry):
    dtype = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "F8_E4M3": "u1", "I32": "<i4", "I64": "<i8", "U8": "u1"}[entry["dtype"]]
    return np.frombuffer(bytes(entry["data"]), dtype=dtype).reshape(entry["shape"])


def as_float(entry):
    array = raw_array(entry)
    if entry["dtype"] == "BF16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    if entry["dtype"] == "F8_E4M3":
        return E4M3[array]
    return array.astype(np.float32)


def logical_weights(tensors, config):
    """Decodes every logical weight of a checkpoint with numpy: name -> float32 array."""
    out = {}
    for name, entry in tensors.items():
        if name.endswith("_scale_inv") or any(name.endswith("." + s) for s in ("weight_scale", "weight_shape", "weight_zero_point")):
            continue
        if name.endswith(".weight_packed"):
            module = name[: -len(".weight_packed")]
            words = raw_array(entry).astype(np.uint32)
            nibbles = np.stack([(words >> (4 * i)) & 0xF for i in range(8)], axis=-1).reshape(words.shape[0], -1)
            rows, columns = [int(v) for v in raw_array(tensors[module + ".weight_shape"])]
            scale = as_float(tensors[module + ".weight_scale"])
            group = config["quantization_config"]["config_groups"]["group_0"]["weights"]["group_size"]
            q = nibbles[:, :columns].astype(np.float32) - 8
            out[module + ".weight"] = q * np.repeat(scale, group, axis=1)[:, :columns]
            continue
        value = as_float(entry)
        if entry["dtype"] == "F8_E4M3":
            scale = as_float(tensors[name + "_scale_inv"])
            expanded = np.repeat(np.repeat(scale, 128, axis=0), 128, axis=1)[: value.shape[0], : value.shape[1]]
            value = value * expanded
        out[name] = value
    return out


# --- 1. our writer -> their reader ----------------------------------------------------------------

def check_synth(dtype, work):
    directory = os.path.join(work, "synth-" + dtype)
    result = moeq("synth", "--arch", "deepseek_v3", "--preset", "tiny", "--dtype", dtype, "--seed", "3", "--out", directory)
    check(result.returncode == 0, f"synth {dtype}: {result.stderr}")
    listing = json.loads(moeq("inspect", directory, "--json", "--tensors", "*").stdout)
    ours = {row["name"]: row for row in listing["tensor_table"]}
    config = json.load(open(os.path.join(directory, "config.json")))
    tensors = {}
    shards = sorted(f for f in os.listdir(directory) if f.endswith(".safetensors"))
    index = json.load(open(os.path.join(directory, "model.safetensors.index.json"))) if len(shards) > 1 else None
    for shard in shards:
        data = open(os.path.join(directory, shard), "rb").read()
        header_length = int.from_bytes(data[:8], "little")
        check(header_length % 8 == 0, f"{shard}: header length {header_length} not 8-aligned")
        metadata = json.loads(data[8 : 8 + header_length]).get("__metadata__", {})
        check(metadata.get("format") == "pt", f"{shard}: __metadata__ {metadata}")
        for name, entry in safetensors.deserialize(data):
            tensors[name] = entry
            if index:
                check(index["weight_map"].get(name) == shard, f"{name}: index says {index['weight_map'].get(name)}, file {shard}")
    check(set(tensors) == set(ours), f"synth {dtype}: tensor sets differ")
    for name, entry in tensors.items():
        check(ours[name]["dtype"] == entry["dtype"] and ours[name]["shape"] == list(entry["shape"]), f"{name}: header mismatch")
    decoded = logical_weights(tensors, config)
    compared = 0
    for name, value in decoded.items():
        out = os.path.join(work, "dump.npy")
        result = moeq("dump", directory, name, "-o", out, "--force")
        check(result.returncode == 0, f"dump {name}: {result.stderr}")
        if result.returncode != 0:
            continue
        dumped = np.load(out)
        check(dumped.shape == value.shape and np.array_equal(dumped, value.astype(np.float32)), f"synth {dtype}: {name} values differ")
        compared += 1
    print(f"synth {dtype}: {len(tensors)} stored tensors read by safetensors {safetensors.__version__}, {compared} weights equal")


def to_bf16(values):
    """float32 -> bfloat16 bits, round-to-nearest-even (torch's .to(torch.bfloat16) for finite values)."""
    bits = values.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def check_export(dtype, work):
    """moeq convert --format safetensors: safetensors parses every shard, and each tensor equals numpy's own decode of
    the FP8 / INT4 source rounded to BF16 (F32 sources stay F32); config.json drops quantization_config."""
    source = os.path.join(work, "synth-" + dtype)
    out = os.path.join(work, "export-" + dtype)
    result = moeq("convert", source, "-o", out, "--format", "safetensors", "--recipe", "BF16")
    check(result.returncode == 0, f"export {dtype}: {result.stderr}")
    if result.returncode != 0:
        return
    config = json.load(open(os.path.join(source, "config.json")))
    source_tensors = {}
    for shard in sorted(f for f in os.listdir(source) if f.endswith(".safetensors")):
        source_tensors.update(dict(safetensors.deserialize(open(os.path.join(source, shard), "rb").read())))
    expected = logical_weights(source_tensors, config)
    exported = {}
    for shard in sorted(f for f in os.listdir(out) if f.endswith(".safetensors")):
        exported.update(dict(safetensors.deserialize(open(os.path.join(out, shard), "rb").read())))
    check(set(exported) == set(expected), f"export {dtype}: tensor sets differ")
    for name, entry in exported.items():
        want = expected.get(name)
        if want is None:
            continue
        if entry["dtype"] == "F32":
            check(source_tensors[name]["dtype"] == "F32" and np.array_equal(raw_array(entry), want), f"export {dtype}: {name} (F32) differs")
        else:
            check(entry["dtype"] == "BF16" and np.array_equal(raw_array(entry), to_bf16(want).reshape(entry["shape"])), f"export {dtype}: {name} differs from the BF16 rounding of the source")
    check("quantization_config" not in json.load(open(os.path.join(out, "config.json"))), f"export {dtype}: quantization_config kept")
    print(f"export {dtype} -> BF16 safetensors: {len(exported)} tensors read by safetensors, all equal numpy's decode rounded to BF16")


# --- 2. their writer -> our reader ----------------------------------------------------------------

def check_python_written(work):
    rng = np.random.default_rng(11)
    arrays = {
        "f64": rng.standard_normal((3, 4)), "f32": rng.standard_normal((2, 5)).astype(np.float32),
        "f16": rng.standard_normal((4,)).astype(np.float16), "i64": np.array([[-(2 ** 62), 5]], dtype=np.int64),
        "i32": np.arange(-6, 6, dtype=np.int32).reshape(3, 4), "i16": np.array([-32768, 32767], dtype=np.int16),
        "i8": np.array([-128, 0, 127], dtype=np.int8), "u8": np.arange(10, dtype=np.uint8),
        "u16": np.array([65535, 1], dtype=np.uint16), "u32": np.array([2 ** 32 - 1], dtype=np.uint32),
        "u64": np.array([2 ** 64 - 1, 0], dtype=np.uint64), "bool": np.array([True, False, True]),
        "scalar": np.array(1.5, dtype=np.float32), "empty": np.zeros((0, 3), dtype=np.float32),
    }
    path = os.path.join(work, "numpy.safetensors")
    save_file(arrays, path, metadata={"format": "np", "by": "check_safetensors.py"})
    listing = moeq("inspect", path, "--json", "--tensors", "*")
    check(listing.returncode == 0, f"inspect numpy file: {listing.stderr}")
    rows = {row["name"]: row for row in json.loads(listing.stdout)["tensor_table"]}
    for name, array in arrays.items():
        check(rows[name]["shape"] == list(array.shape), f"{name}: shape {rows[name]['shape']} vs {array.shape}")
        out = os.path.join(work, name + ".npy")
        result = moeq("dump", path, name, "-o", out, "--raw", "--force")
        check(result.returncode == 0 and np.array_equal(np.load(out), array), f"{name}: raw dump differs ({result.stderr})")
        if array.dtype.kind == "f":
            result = moeq("dump", path, name, "-o", out, "--force")
            check(result.returncode == 0 and np.array_equal(np.load(out), array.astype(np.float32)), f"{name}: f32 dump differs")
    print(f"numpy-written file: {len(arrays)} tensors read back by moeq")

    # 3. A corrupted header: data_offsets of one tensor shortened.
    data = bytearray(open(path, "rb").read())
    header_length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_length])
    begin, end = header["f32"]["data_offsets"]
    header["f32"]["data_offsets"] = [begin, end - 4]
    text = json.dumps(header).encode()
    text += b" " * (header_length - len(text)) if len(text) <= header_length else b""
    bad = os.path.join(work, "bad.safetensors")
    open(bad, "wb").write(len(text).to_bytes(8, "little") + text + data[8 + header_length :])
    result = moeq("inspect", bad)
    check(result.returncode != 0 and "bad.safetensors" in result.stderr and "f32" in result.stderr, f"corrupt header not reported: {result.stderr}")
    print("corrupted header:", result.stderr.strip())


with tempfile.TemporaryDirectory() as work:
    for dtype in ["bf16", "f32", "fp8", "int4"]:
        check_synth(dtype, work)
    for dtype in ["fp8", "int4"]:
        check_export(dtype, work)
    check_python_written(work)

finish("safetensors interop")
