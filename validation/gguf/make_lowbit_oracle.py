#!/usr/bin/env python3
"""Per-tensor oracle of llama-quantize's low-bit recipes on moeq's own F32 GGUFs of the trained fixtures.

For each fixture below: `moeq convert FIXTURE --recipe F32` gives the F32 GGUF; `moeq imatrix FIXTURE --text
validation/fixtures/trained/kjv-heldout.txt --ctx 64 --chunks 8` gives the importance matrix (committed under
validation/gguf/imatrix/<fixture>.moeq.imatrix.gguf, so the test converts with the very same file); then
`llama-quantize [--imatrix IM] F32.gguf OUT.gguf RECIPE` for every recipe in RECIPES, with and without the imatrix.
Every tensor's ggml type, ne and XXH3-64 of its bytes go to validation/gguf/llama_quantize_lowbit.json; the Swift
test `lowBitRecipesMatchLlamaQuantizeTensorForTensor` converts the checkpoint itself and must match.

With LLAMA_IMATRIX given, `llama-imatrix -m F32.gguf -f kjv-heldout.txt -c 64 --chunks 8` on the same F32 GGUF
writes validation/gguf/imatrix/<fixture>.llama-imatrix.gguf: the Swift test `importanceMatrixEqualsLlamaImatrix`
runs moeq's collector on the same tokens and compares entry names, token counts and values.

Run from the repository root with the llama venv of setup_peers.sh (needs gguf and xxhash):
    /work/peers/venv-llama/bin/python validation/gguf/make_lowbit_oracle.py .build/release/moeq \
        /work/peers/llama-build/bin/llama-quantize [/work/peers/llama-build/bin/llama-imatrix] [--new-imatrix]
"""
import json
import os
import subprocess
import sys
import tempfile

import xxhash
from gguf import GGUFReader

FIXTURES = ["trained-qwen3_moe_wide", "trained-deepseek_v3_wide", "trained-mixtral"]
RECIPES = ["IQ4_XS", "IQ4_NL", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K", "Q2_K_S", "IQ3_M", "IQ3_S", "IQ3_XS", "IQ3_XXS",
           "IQ2_M", "IQ2_S", "IQ2_XS", "IQ2_XXS", "IQ1_M", "IQ1_S"]
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run(*argv, allow_refusal=False):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    if r.returncode != 0:
        if allow_refusal:
            return r
        sys.exit(f"failed: {' '.join(map(str, argv))}\n{r.stderr[-2000:]}")
    return r


def refusal(r):
    """The reason llama-quantize gives when it will not make a very-low-bit file (no imatrix, or no entry)."""
    for line in (r.stdout + r.stderr).splitlines():
        for marker in ("Missing importance matrix for tensor", "offending tensor:", "this quantization requires an imatrix"):
            if marker in line:
                return line.strip()
    sys.exit(f"llama-quantize failed without a refusal message:\n{r.stderr[-2000:]}")


def tensors_of(path):
    return {t.name: {"type": t.tensor_type.name, "ne": [int(n) for n in t.shape], "xxh3": xxhash.xxh3_64_hexdigest(t.data.tobytes())}
            for t in GGUFReader(path).tensors}


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    moeq, quantize = os.path.abspath(args[0]), os.path.abspath(args[1])
    llama_imatrix = os.path.abspath(args[2]) if len(args) > 2 else None
    result = {"made_by": "validation/gguf/make_lowbit_oracle.py", "llama_quantize": "llama-cpp-python 0.3.36 (ggml 0.25.3) tools build",
              "files": {}}
    text = os.path.join(ROOT, "validation", "fixtures", "trained", "kjv-heldout.txt")
    with tempfile.TemporaryDirectory() as tmp:
        for fixture in FIXTURES:
            source = os.path.join(ROOT, "validation", "fixtures", fixture)
            f32 = os.path.join(tmp, f"{fixture}-F32.gguf")
            run(moeq, "convert", source, "-o", f32, "--recipe", "F32")
            imatrix = os.path.join(HERE, "imatrix", f"{fixture}.moeq.imatrix.gguf")
            if not os.path.exists(imatrix) or "--new-imatrix" in sys.argv:
                run(moeq, "imatrix", source, "--text", text, "--ctx", "64", "--chunks", "8", "-o", imatrix, "--force")
            if llama_imatrix:
                theirs = os.path.join(HERE, "imatrix", f"{fixture}.llama-imatrix.gguf")
                run(llama_imatrix, "-m", f32, "-f", text, "-c", "64", "--chunks", "8", "-t", "2", "--no-ppl",
                    "--output-format", "gguf", "-o", theirs)
                print(fixture, "llama-imatrix:", len(GGUFReader(theirs).tensors) // 2, "entries")
            for recipe in RECIPES:
                for with_imatrix in (False, True):
                    out = os.path.join(tmp, f"{fixture}-{recipe}{'-im' if with_imatrix else ''}.gguf")
                    r = run(quantize, *(["--imatrix", imatrix] if with_imatrix else []), f32, out, recipe, "2",
                            allow_refusal=True)
                    key = f"{fixture}/{recipe}{'+imatrix' if with_imatrix else ''}"
                    if r.returncode != 0:
                        result["files"][key] = {"refused": refusal(r)}
                        print(key, "refused:", result["files"][key]["refused"])
                        continue
                    result["files"][key] = {"tensors": tensors_of(out)}
                    print(key, len(result["files"][key]["tensors"]), "tensors")
    with open(os.path.join(HERE, "llama_quantize_lowbit.json"), "w") as f:  # one line per file: compact, still diffable
        f.write('{"made_by": %s, "llama_quantize": %s, "files": {\n' % (json.dumps(result["made_by"]), json.dumps(result["llama_quantize"])))
        keys = sorted(result["files"])
        for i, k in enumerate(keys):
            entry = json.dumps(result["files"][k], sort_keys=True, separators=(",", ":"))
            f.write(f' {json.dumps(k)}: {entry}{"," if i < len(keys) - 1 else ""}\n')
        f.write("}}\n")


if __name__ == "__main__":
    main()
