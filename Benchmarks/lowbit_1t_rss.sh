#!/usr/bin/env bash
# 1 T-scale low-bit conversion: a sparse Kimi K2-shaped checkpoint (real names, shapes, dtypes and shards, zero
# data) cut to its first LAYERS layers (real widths: 384 experts of 7168 × 2048), converted with RECIPE (default
# IQ2_XXS) and an importance matrix naming every matrix llama-quantize wants one for. Prints wall time, peak RSS,
# bytes written and the output's size; the point is that peak memory stays bounded (issue 14: under 2 GB) however
# large the model. Needs a release build, ~15 GB free under WORKDIR for 4 layers, and a Python with gguf-py.
# Usage: Benchmarks/lowbit_1t_rss.sh [WORKDIR]     (LAYERS=4 RECIPE=IQ2_XXS PYTHON=/work/peers/venv-llama/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/moeq-1t}
layers=${LAYERS:-4}
recipe=${RECIPE:-IQ2_XXS}
moeq=.build/release/moeq
python=${PYTHON:-/work/peers/venv-llama/bin/python}
[ -x "$moeq" ] || swift build -c release
"$python" -c "import gguf" || { echo "need a Python with gguf-py: PYTHON=..."; exit 1; }
mkdir -p "$work"
model="$work/kimi-k2-$layers"
[ -d "$model" ] || "$moeq" synth --arch deepseek_v3 --preset kimi-k2 --sparse --layers "$layers" --out "$model" >/dev/null

# The importance matrix: llama-imatrix's GGUF layout (W.in_sum2 [ne0, matrices], W.counts [1, matrices]) for every
# per-layer matrix of the plan, written by gguf-py; all-ones sums over one token, so every importance is 1.
"$moeq" convert "$model" --recipe F32 --dry-run --json -o "$work/plan.gguf" >"$work/plan.json"
"$python" - "$work/plan.json" "$work/imatrix.gguf" <<'EOF'
import json, sys
import numpy as np
import gguf
plan = json.load(open(sys.argv[1]))
writer = gguf.GGUFWriter(sys.argv[2], arch="imatrix")
writer.add_type("imatrix")
writer.add_array("imatrix.datasets", ["synthetic"])
writer.add_uint32("imatrix.chunk_count", 1)
writer.add_uint32("imatrix.chunk_size", 1)
n = 0
for t in plan["tensors"]:
    name, ne = t["name"], t["ne"]
    if not name.startswith("blk.") or len(ne) < 2:
        continue
    matrices = ne[2] if "_exps" in name and len(ne) == 3 else 1
    width = ne[0] * (ne[2] if len(ne) == 3 and matrices == 1 else 1)
    writer.add_tensor(name + ".in_sum2", np.ones((matrices, width), dtype=np.float32))
    writer.add_tensor(name + ".counts", np.ones((matrices, 1), dtype=np.float32))
    n += 1
writer.write_header_to_file(); writer.write_kv_data_to_file(); writer.write_tensors_to_file(); writer.close()
print(f"imatrix: {n} entries")
EOF

out="$work/kimi-k2-$layers-$recipe.gguf"
rm -f "$out" "$out.manifest.json"
line=$( { /usr/bin/time -f "%e %M" "$moeq" convert "$model" --recipe "$recipe" --imatrix "$work/imatrix.gguf" -o "$out" >"$work/convert.log"; } 2>&1 | tail -1)
bytes=$(stat -c %s "$out")
printf "moeq convert %s, %s layers of Kimi K2 (sparse): %s s, peak RSS %d MB, output %d bytes (%.2f GiB)\n" \
  "$recipe" "$layers" "${line%% *}" $(( ${line##* } / 1024 )) "$bytes" "$(awk -v b="$bytes" 'BEGIN{print b/2^30}')"
rm -f "$out" "$out.manifest.json"
