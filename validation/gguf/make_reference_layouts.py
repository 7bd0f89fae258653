#!/usr/bin/env python3
"""Describe llama.cpp-made reference GGUFs as compact JSON (an oracle for moeq's GGUF writer).

For each arch it reads REF_DIR/<arch>-f32.gguf (made by llama.cpp's convert_hf_to_gguf.py) and the
llama-quantize outputs REF_DIR/<arch>-<QTYPE>.gguf (+ the quantize log REF_DIR/<arch>-<QTYPE>.log),
and writes OUT_DIR/<arch>.json with:

  * header: GGUF version, counts, data section offset, general.alignment (present or default 32)
  * metadata: every KV in file order: {key, type, value}; arrays: {key, type: "ARRAY", element_type,
    length, head (first 5 elements), sha256} where sha256 = sha256 of
    json.dumps(whole_list, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
  * tensors: every tensor in file order: {name, type (ggml type name), ne (ggml order, innermost
    first), offset (relative to the data section), nbytes}
  * quantized: per QTYPE the per-tensor type llama-quantize chose, in that file's order
    ({name, type} and, where llama-quantize logged a fallback, "wanted": the type the Q4_K_M/Q8_0
    mixture rules asked for before the ncols % block_size fallback), plus the KVs that differ
    from the F32 file.

Needs gguf-py (the copy vendored with llama.cpp: PYTHONPATH=<llama.cpp>/gguf-py) and numpy.
This file is the only code; the GGUFs themselves live outside the repository (see README.md).
"""
import argparse
import hashlib
import json
import os
import re
import sys

import gguf  # gguf-py
import numpy as np

QTYPES = ["Q4_K_M", "Q8_0"]

# How the files in REF_DIR were made (see README.md); recorded verbatim in every JSON.
PROVENANCE = {
    "convert_command": "/tmp/venv-fix/bin/python validation/gguf/convert_unknown_pre.py "
                       "validation/fixtures/{arch}-f32 --outtype f32 --outfile /tmp/llama-ref/{arch}-f32.gguf",
    "converter_workaround": "convert_hf_to_gguf.py refuses the fixtures' tokenizer (BPE pre-tokenizer hash "
                            "07c1aabdfbeb43427d027616b60ccfc5d7a66ce2400e69c249b5d8859a9f3fd2 unknown); "
                            "validation/gguf/convert_unknown_pre.py runs the unmodified converter but returns "
                            "tokenizer.ggml.pre = \"gpt-2\" for unknown hashes. Nothing else is changed.",
    "quantize_command": "/tmp/peers/llama-build/bin/llama-quantize /tmp/llama-ref/{arch}-f32.gguf "
                        "/tmp/llama-ref/{arch}-{q}.gguf {q} 2",
    "llama_cpp": {"commit": "0c1e57098bba43ac29e6e3b677cdceebdd22334f", "commit_date": "2026-10-01",
                  "llama_version": "0.5.0-dev (build 1, commit 0c1e570)", "ggml": "0.25.3",
                  "source": "vendored in llama-cpp-python 0.3.36 (PyPI sdist)", "gguf_py": "0.19.0 (vendored)",
                  "converter_python": "torch 2.15.0, transformers 5.24.0, numpy 2.4.6"},
}


def field_value(f):
    """Return (type_name, value-or-array-description) of a GGUFReader field."""
    vt = f.types[0]
    if vt == gguf.GGUFValueType.ARRAY:
        et = f.types[1] if len(f.types) > 1 else None
        vals = f.contents()
        vals = [v.item() if isinstance(v, np.generic) else v for v in vals]
        blob = json.dumps(vals, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return "ARRAY", {"element_type": et.name if et is not None else None, "length": len(vals),
                         "head": vals[:5], "sha256": hashlib.sha256(blob).hexdigest()}
    v = f.contents()
    if isinstance(v, np.generic):
        v = v.item()
    return vt.name, v


def sha256_file(p):
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def describe_kv(r):
    out = []
    for key, f in r.fields.items():
        if key.startswith("GGUF."):
            continue  # header pseudo-fields, recorded separately
        t, v = field_value(f)
        if t == "ARRAY":
            out.append({"key": key, "type": t, **v})
        else:
            out.append({"key": key, "type": t, "value": v})
    return out


def describe_tensors(r):
    out = []
    for t in r.tensors:
        out.append({"name": t.name, "type": t.tensor_type.name, "ne": [int(x) for x in t.shape],
                    "offset": int(t.data_offset - r.data_offset), "nbytes": int(t.n_bytes)})
    return out


def header(r, path):
    al = r.fields.get("general.alignment")
    return {"gguf_version": int(r.fields["GGUF.version"].contents()),
            "tensor_count": len(r.tensors), "kv_count": int(r.fields["GGUF.kv_count"].contents()),
            "data_offset": int(r.data_offset), "file_size": os.path.getsize(path),
            "general.alignment": {"present": al is not None, "effective": int(r.alignment)}}


FALLBACK_RE = re.compile(r"^warning: (\S+)\s+- ncols\s+\d+ not divisible by\s+\d+ \(required for type\s+(\S+)\)")


def parse_fallbacks(log_path):
    wanted = {}
    if os.path.exists(log_path):
        for line in open(log_path, encoding="utf-8", errors="replace"):
            m = FALLBACK_RE.match(line)
            if m:
                wanted[m.group(1)] = m.group(2).upper()
    return wanted


def kv_diff(base_kv, q_kv):
    b = {e["key"]: e for e in base_kv}
    q = {e["key"]: e for e in q_kv}
    diff = []
    for k, e in q.items():
        if k not in b:
            diff.append({"added": e})
        elif e != b[k]:
            diff.append({"changed": e, "f32_value": b[k].get("value", b[k].get("sha256"))})
    for k in b:
        if k not in q:
            diff.append({"removed": k})
    return diff


def dump(obj):
    """Pretty JSON, but one line per metadata/tensor entry so the file stays small and diffable."""
    def enc(o, ind):
        pad = " " * ind
        if isinstance(o, dict):
            if not o:
                return "{}"
            items = [f'{pad} {json.dumps(k)}: {enc(v, ind + 1)}' for k, v in o.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(o, list) and o and all(isinstance(x, dict) for x in o):
            items = [pad + " " + json.dumps(x, ensure_ascii=False, separators=(", ", ": ")) for x in o]
            return "[\n" + ",\n".join(items) + "\n" + pad + "]"
        return json.dumps(o, ensure_ascii=False)
    return enc(obj, 0) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ref-dir", default="/tmp/llama-ref")
    ap.add_argument("--out-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference_layouts"))
    ap.add_argument("--arch", action="append", default=None)
    ap.add_argument("--variant", action="append", default=[], metavar="ARCH=NAME:GGUF:NOTE",
                    help="record how another conversion of the same arch differs (KVs, tensor table)")
    a = ap.parse_args()
    prov = PROVENANCE
    variants = {}
    for v in a.variant:
        arch, rest = v.split("=", 1)
        name, path, note = rest.split(":", 2)
        variants.setdefault(arch, []).append((name, path, note))
    os.makedirs(a.out_dir, exist_ok=True)
    for arch in a.arch or ["deepseek_v3", "qwen3_moe", "mixtral"]:
        p = os.path.join(a.ref_dir, f"{arch}-f32.gguf")
        r = gguf.GGUFReader(p)
        kv = describe_kv(r)
        doc = {"arch": arch, "source_fixture": f"validation/fixtures/{arch}-f32",
               "gguf_file": os.path.basename(p),
               "converter_command": prov["convert_command"].format(arch=arch),
               "converter_workaround": prov["converter_workaround"],
               "llama_cpp": prov["llama_cpp"],
               "gguf_sha256": sha256_file(p),
               "header": header(r, p), "metadata": kv, "tensors": describe_tensors(r), "quantized": {},
               "quantize_commands": {}, "quantized_kv_changes": {}}
        for q in QTYPES:
            qp = os.path.join(a.ref_dir, f"{arch}-{q}.gguf")
            qr = gguf.GGUFReader(qp)
            wanted = parse_fallbacks(os.path.join(a.ref_dir, f"{arch}-{q}.log"))
            rows = []
            for t in qr.tensors:
                e = {"name": t.name, "type": t.tensor_type.name}
                if t.name in wanted:
                    e["wanted"] = wanted[t.name]
                rows.append(e)
            doc["quantized"][q] = rows
            doc["quantize_commands"][q] = prov["quantize_command"].format(arch=arch, q=q)
            doc["quantized_kv_changes"][q] = kv_diff(kv, describe_kv(qr))
        for name, vp, note in variants.get(arch, []):
            vr = gguf.GGUFReader(vp)
            vt = describe_tensors(vr)
            same = [dict(t, offset=None) for t in vt] == [dict(t, offset=None) for t in doc["tensors"]]
            doc.setdefault("variants", {})[name] = {
                "gguf_file": os.path.basename(vp), "note": note, "kv_changes_vs_this": kv_diff(kv, describe_kv(vr)),
                "tensor_table_same_names_types_ne_nbytes": same,
                "tensor_data_identical": same and all(
                    np.array_equal(x.data, y.data) for x, y in zip(r.tensors, vr.tensors))}
        out = os.path.join(a.out_dir, f"{arch}.json")
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(dump(doc))
        print(out, os.path.getsize(out), "bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
