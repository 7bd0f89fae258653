#!/usr/bin/env bash
# Header-scale benchmark: `moeq inspect --json` on a sparse Kimi K2 checkpoint (139,583 tensors, 60 shards)
# against a baseline measured in the same run: the Python `safetensors` package listing every tensor's
# dtype and shape (safe_open + get_slice) over the same shards. Prints seconds, peak RSS and the ratio.
# Usage: Benchmarks/inspect_header_scale.sh [WORKDIR]   (needs a release build and a Python with safetensors)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/moeq-bench}
moeq=.build/release/moeq
python=${PYTHON:-.build/interop-venv/bin/python}
[ -x "$moeq" ] || swift build -c release
"$python" -c "import safetensors" || { echo "need a Python with safetensors: PYTHON=... (bash validation/run-tests.sh makes $python)"; exit 1; }
[ -d "$work/kimi-k2" ] || "$moeq" synth --arch deepseek_v3 --preset kimi-k2 --sparse --out "$work/kimi-k2" >/dev/null

measure() {   # prints "seconds maxrss_kb" of the best of 5 runs
  local best=""
  for _ in 1 2 3 4 5; do
    local line
    line=$( { /usr/bin/time -f "%e %M" "$@" >/dev/null; } 2>&1 | tail -1)
    if [ -z "$best" ] || awk -v a="${line%% *}" -v b="${best%% *}" 'BEGIN{exit !(a<b)}'; then best=$line; fi
  done
  echo "$best"
}

ours=$(measure "$moeq" inspect "$work/kimi-k2" --json)
baseline=$(measure "$python" -c '
import glob, sys
from safetensors import safe_open
n = 0
for path in sorted(glob.glob(sys.argv[1] + "/*.safetensors")):
    with safe_open(path, "numpy") as f:
        for name in f.keys():
            s = f.get_slice(name); s.get_shape(); s.get_dtype(); n += 1
print(n)' "$work/kimi-k2")
printf "%-44s %8s %10s\n" "" "seconds" "peak RSS"
printf "%-44s %8s %8d MB\n" "moeq inspect --json (headers + accounting)" "${ours%% *}" $(( ${ours##* } / 1024 ))
printf "%-44s %8s %8d MB\n" "python safetensors: list dtype+shape" "${baseline%% *}" $(( ${baseline##* } / 1024 ))
awk -v a="${ours%% *}" -v b="${baseline%% *}" 'BEGIN{printf "ratio (baseline / moeq): %.2fx\n", b/a}'
