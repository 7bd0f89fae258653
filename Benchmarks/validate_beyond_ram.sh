#!/usr/bin/env bash
# Validation of a model larger than this machine's RAM (issue 15's check): a random-weight BF16 Qwen3-235B-A22B slice
# of 6 layers at real widths (30.1 GiB) against its Q4_K_M (9.0 GiB), layer-major, with the page cache dropped first.
# Prints wall time, peak RSS (/usr/bin/time), weights read and the read rate (the summary event), and the disk's
# sequential read rate (dd) for the bound wall ≤ 1.5 × (read both files once + compute at the product's rate).
#
# Usage: Benchmarks/validate_beyond_ram.sh [WORKDIR (default /tmp/moeq-beyond-ram, needs ~45 GB)]
# Needs: a release build (swift build -c release), root for drop_caches (skipped otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
moeq=.build/release/moeq
work=${1:-/tmp/moeq-beyond-ram}
mkdir -p "$work"
base=$work/q235-6 quant=$work/q235-6-Q4_K_M.gguf
[ -d "$base" ] || /usr/bin/time -f "synth: %e s, peak RSS %M KB" \
    $moeq synth --arch qwen3_moe --preset qwen3-235b-a22b --layers 6 --dtype bf16 --out "$base"
[ -f "$quant" ] || /usr/bin/time -f "convert: %e s, peak RSS %M KB" \
    $moeq convert "$base" -o "$quant" --recipe Q4_K_M --threads "$(nproc)"
drop() { sync; [ -w /proc/sys/vm/drop_caches ] && echo 3 > /proc/sys/vm/drop_caches || true; }
drop
shard=$(ls "$base"/*.safetensors | head -1)
echo "disk: $(dd if="$shard" of=/dev/null bs=16M count=256 2>&1 | tail -1)"
echo "disk: $(dd if="$quant" of=/dev/null bs=16M count=256 2>&1 | tail -1)"
drop
# Reading both files once, in the same run (this VM's disk varies by ±30 % between days).
started=$(date +%s.%N)
cat "$base"/*.safetensors "$quant" > /dev/null
read_seconds=$(python3 -c 'import sys; print(float(sys.argv[2]) - float(sys.argv[1]))' "$started" "$(date +%s.%N)")
printf 'read both files once (cat): %.1f s\n' "$read_seconds"
drop
# Bytes the device delivered during the run (a page read ahead, evicted unused and read again counts twice).
device=$(basename "$(df --output=source "$work" | tail -1)")
sectors() { awk -v d="$device" '$3 == d { print $6 }' /proc/diskstats; }
before=$(sectors)
/usr/bin/time -f "validate: %e s wall, %U s user, %S s sys, peak RSS %M KB" \
    $moeq validate "$quant" --base "$base" --text validation/fixtures/trained/kjv-heldout.txt --ctx 512 --chunks 4 \
    --no-weight-errors --events 2> "$work/events.txt" | tee "$work/report.txt"
grep -E '"summary"|^validate:' "$work/events.txt"
[ -n "$before" ] && echo "storage read during validate: $(( ($(sectors) - before) * 512 / 1000000 )) MB ($device)"
bench=$($moeq bench product --shapes 2048x4096x1536 128x4096x1536 --threads 2 --repeats 3)
echo "$bench"
# The bound: 1.5 × (read + the run's products at OpenBLAS's 2-thread rate, the lower of the two shapes). Products per
# token and layer: q, k, v, o, router, the routed experts' gate/up/down, attention over on average half the window;
# the head for the scored half of each window; both passes.
python3 - "$base/config.json" "$work/events.txt" "$read_seconds" "$bench" <<'PY'
import json, re, sys
c = json.load(open(sys.argv[1]))
h, heads, kv, d = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
ff, k, experts, vocab, layers = c["moe_intermediate_size"], c["num_experts_per_tok"], c["num_experts"], c["vocab_size"], c["num_hidden_layers"]
ctx, chunks = 512, 4
per_token = h * heads * d * 2 + h * kv * d * 2 + h * experts + 3 * k * h * ff + 2 * heads * d * (ctx + 1) / 2
flops = 2 * 2 * (per_token * layers * ctx * chunks + h * vocab * chunks * ctx // 2)
rate = min(float(m) for m in re.findall(r"^\S+\s+2\s+\S+\s+(\S+)", sys.argv[4], re.M)) * 1e9
wall = [json.loads(l)["seconds"] for l in open(sys.argv[2]) if '"summary"' in l][0]
read = float(sys.argv[3])
bound = 1.5 * (read + flops / rate)
print(f"products {flops / 1e12:.2f} TFLOP at {rate / 1e9:.0f} GFLOP/s = {flops / rate:.1f} s; read {read:.1f} s; "
      f"bound 1.5 × (read + compute) = {bound:.1f} s; validate {wall:.1f} s = {wall / bound:.2f}× the bound")
PY
