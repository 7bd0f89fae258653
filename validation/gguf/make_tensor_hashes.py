#!/usr/bin/env python3
"""Per-tensor oracle of llama.cpp's own GGUFs of the transformers-made fixtures.

For each fixture architecture and each file llama.cpp produced (convert_hf_to_gguf.py --outtype f32, then
llama-quantize Q8_0 and Q4_K_M of that F32 file; see validation/gguf/README.md for how they were made),
records every tensor's ggml type, ne and the XXH3-64 of its data, and every metadata key with its value
type. moeq's tests convert the same fixtures and must match tensor for tensor.

The "+imatrix" files are llama-quantize --imatrix validation/gguf/imatrix/<arch>.imatrix.gguf of the same F32 file;
the imatrix came from llama-imatrix on the F32 file (-f: the first 300 lines of /usr/share/common-licenses/GPL-3,
-c 64 --chunks 4), its .dat twin from `llama-imatrix --in-file … --output-format dat`.

glm4_moe, minimax_m2 and gpt_oss (added later) have the F32, Q8_0 and Q4_K_M files only (gpt_oss also
llama-quantize MXFP4_MOE): `make_tensor_hashes.py DIR OUT.json glm4_moe` adds
those entries to an existing OUT.json and leaves the others as they are.

Usage: make_tensor_hashes.py DIR_WITH_LLAMA_GGUFS OUT.json [ARCH ...]   (needs gguf-py and xxhash from PyPI)
"""
import json
import sys

import xxhash
from gguf import GGUFReader

import os

source, out, chosen = sys.argv[1], sys.argv[2], sys.argv[3:]
if chosen and os.path.exists(out):
    result = json.load(open(out))
else:
    result = {"made_by": "validation/gguf/make_tensor_hashes.py", "files": {}}
PLAIN = [("F32", "f32"), ("Q8_0", "Q8_0"), ("Q4_K_M", "Q4_K_M")]
WITH_IMATRIX = PLAIN + [("Q4_K_M+imatrix", "Q4_K_M-imatrix"), ("Q4_0+imatrix", "Q4_0-imatrix")]
RECIPES = {"deepseek_v3": WITH_IMATRIX, "qwen3_moe": WITH_IMATRIX, "mixtral": WITH_IMATRIX, "glm4_moe": PLAIN, "minimax_m2": PLAIN,
           "gpt_oss": PLAIN + [("MXFP4_MOE", "MXFP4_MOE")],
           # The MXFP4 release layout (fixtures/gpt_oss-mxfp4): convert_hf_to_gguf.py --outtype f32 carries the experts
           # as MXFP4, then llama-quantize MXFP4_MOE keeps them and makes the rest Q8_0.
           "gpt_oss-mxfp4": [("MXFP4_MOE", "MXFP4_MOE")],
           # DeepSeek-V3.2 from its BF16 fixture (the F32 twin is not committed): convert --outtype f32, then quantize.
           "deepseek_v32-bf16-sharded": PLAIN, "glm_moe_dsa-bf16-sharded": PLAIN,
           "kimi_linear-bf16-sharded": PLAIN}
for arch in chosen or ["deepseek_v3", "qwen3_moe", "mixtral"]:
    for recipe, suffix in RECIPES[arch]:
        reader = GGUFReader(f"{source}/{arch}-{suffix}.gguf")
        tensors = {}
        for t in reader.tensors:
            tensors[t.name] = {"type": t.tensor_type.name, "ne": [int(n) for n in t.shape],
                               "xxh3": xxhash.xxh3_64_hexdigest(t.data.tobytes())}
        keys = {}
        for name, field in reader.fields.items():
            if name.startswith("GGUF."):
                continue
            value = field.contents()
            if isinstance(value, list) and len(value) > 8:
                value = {"length": len(value), "xxh3": xxhash.xxh3_64_hexdigest(json.dumps(value).encode())}
            keys[name] = value
        result["files"][f"{arch}/{recipe}"] = {"tensors": tensors, "metadata": keys}
# One line per file entry (validation/ has a size limit; indentation would add a third).
with open(out, "w") as f:
    f.write('{"files": {\n')
    names = sorted(result["files"])
    for i, name in enumerate(names):
        f.write(json.dumps(name) + ": " + json.dumps(result["files"][name], sort_keys=True, separators=(",", ":")))
        f.write(",\n" if i + 1 < len(names) else "\n")
    f.write('}, "made_by": ' + json.dumps(result.get("made_by", "validation/gguf/make_tensor_hashes.py")) + "}\n")
print("wrote", out)
