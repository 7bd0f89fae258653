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
/usr/bin/time -f "validate: %e s wall, %U s user, %S s sys, peak RSS %M KB" \
    $moeq validate "$quant" --base "$base" --text validation/fixtures/trained/kjv-heldout.txt --ctx 512 --chunks 4 \
    --no-weight-errors --events 2> "$work/events.txt" | tee "$work/report.txt"
grep -E '"summary"|^validate:' "$work/events.txt"
$moeq bench product --shapes 2048x4096x1536 128x4096x1536 --repeats 3
