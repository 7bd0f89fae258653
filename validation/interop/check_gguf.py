#!/usr/bin/env python3
"""Interop between moeq's GGUF output and gguf-py (CI runs this).

For the transformers-made fixtures of all three architectures and every recipe, `moeq convert` writes a GGUF;
gguf-py's GGUFReader must parse it (header, metadata, tensor table), its dequantization of every tensor must
equal `moeq dump` of that tensor bit for bit, and for the types gguf-py quantizes faithfully (Q8_0, Q4_0, F16,
BF16) its quantization of the source weight must equal our bytes. A truncated file must make moeq fail with an
error naming the file.

Usage: check_gguf.py PATH/TO/moeq
"""
import json
import os
import tempfile

import numpy as np
from gguf import GGUFReader, GGMLQuantizationType, quants

from harness import check, finish, moeq
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def same(a, b):
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


with tempfile.TemporaryDirectory() as work:
    total = 0
    for fixture in ["deepseek_v3-f32", "deepseek_v3-bf16-sharded", "qwen3_moe-f32", "mixtral-bf16-sharded"]:
        source = os.path.join(ROOT, "validation", "fixtures", fixture)
        recipes = ["F32", "F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q4_K_M", "Q4_K_S", "Q4_0"] if fixture.endswith("f32") else ["BF16", "Q8_0", "Q4_K_M"]
        for recipe in recipes:
            out = os.path.join(work, f"{fixture}-{recipe}.gguf")
            dry = moeq("convert", source, "-o", out, "--recipe", recipe, "--dry-run", "--json")
            result = moeq("convert", source, "-o", out, "--recipe", recipe, "--json")
            check(result.returncode == 0, f"{fixture} {recipe}: {result.stderr}")
            if result.returncode != 0:
                continue
            check(json.loads(dry.stdout)["bytes"] == os.path.getsize(out), f"{fixture} {recipe}: --dry-run size differs from the file")
            reader = GGUFReader(out)
            for tensor in reader.tensors:
                dumped = os.path.join(work, "t.npy")
                r = moeq("dump", out, tensor.name, "-o", dumped, "--force")
                check(r.returncode == 0, f"dump {tensor.name}: {r.stderr}")
                ours = np.load(dumped)
                theirs = quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32).reshape(ours.shape)
                check(same(ours, theirs), f"{fixture} {recipe} {tensor.name} ({tensor.tensor_type.name}): gguf-py dequantization differs")
                total += 1
            # gguf-py's own quantizers on the token embedding, for the types it implements faithfully.
            embd = next(t for t in reader.tensors if t.name == "token_embd.weight")
            if embd.tensor_type in (GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q4_0, GGMLQuantizationType.F16, GGMLQuantizationType.BF16):
                src = os.path.join(work, "src.npy")
                moeq("dump", source, "model.embed_tokens.weight", "-o", src, "--force")
                expected = quants.quantize(np.load(src), embd.tensor_type)
                check(bytes(expected.tobytes()) == bytes(embd.data.tobytes()), f"{fixture} {recipe}: gguf-py quantization of token_embd differs")
            print(f"{fixture} {recipe}: {len(reader.tensors)} tensors read by gguf-py, dequantization equal")
    # --events: one JSON object per stderr line; every tensor gguf-py sees appears once, in file order, then the summary.
    ev_out = os.path.join(work, "events.gguf")
    r = moeq("convert", os.path.join(ROOT, "validation", "fixtures", "qwen3_moe-f32"), "-o", ev_out, "--recipe", "Q4_K_M", "--events")
    check(r.returncode == 0, f"convert --events: {r.stderr}")
    events = [json.loads(line) for line in r.stderr.splitlines() if line.strip()]
    names = [e["name"] for e in events if e["event"] == "tensor"]
    check(names == [t.name for t in GGUFReader(ev_out).tensors], "convert --events: tensor events differ from the file's tensors")
    check(events[0]["event"] == "plan" and events[-1]["event"] == "summary" and events[-1]["bytes"] == os.path.getsize(ev_out),
          "convert --events: plan first, summary with the file size last")
    check(all(e["done"] <= e["total"] for e in events if e["event"] == "tensor") and [e for e in events if e["event"] == "tensor"][-1]["done"]
          == [e for e in events if e["event"] == "tensor"][-1]["total"], "convert --events: done reaches total")
    print(f"convert --events: {len(events)} JSON events, {len(names)} tensors in file order")

    # A damaged file is refused with the file named.
    damaged = os.path.join(work, "damaged.gguf")
    with open(os.path.join(work, "deepseek_v3-f32-Q4_K_M.gguf"), "rb") as f:
        data = f.read()
    with open(damaged, "wb") as f:
        f.write(data[: len(data) // 2])
    r = moeq("inspect", damaged)
    check(r.returncode != 0 and "damaged.gguf" in r.stderr, f"truncated GGUF not reported: {r.stderr}")
    print("truncated GGUF:", r.stderr.strip())
    print(f"{total} tensors compared")

finish("GGUF interop")
