#!/usr/bin/env bash
# Streaming bound, measured in one run: read the input once with `cat > /dev/null`, then `moeq convert` it, each
# from a cold page cache (drop_caches; needs root, else both run warm and the script says so). Prints wall
# seconds, the ratio convert / cat, and moeq's peak RSS (/usr/bin/time -v: resident pages, including the mapped
# input pages still resident; convert releases each chunk's source pages once written).
#
# Usage: [ROUNDS=N] Benchmarks/convert_vs_cat.sh [CHECKPOINT_DIR] [RECIPE]
#   ROUNDS (default 1) repeats cat + convert and prints every round's ratio and the median: on a virtual disk the
#   host's own cache makes cat's time vary between rounds.
#   default: /tmp/moeq-20g, made here if missing with
#   `moeq synth --arch qwen3_moe --preset qwen3-30b-a3b --dtype bf16 --layers 16` (21.2 GB BF16, real widths).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-/tmp/moeq-20g}
recipe=${2:-BF16}
moeq=.build/release/moeq
out=${OUT:-/tmp/moeq-20g-out.gguf}
[ -f "$src/config.json" ] || $moeq synth --arch qwen3_moe --preset qwen3-30b-a3b --dtype bf16 --layers 16 --out "$src"
bytes=$(du -cb "$src"/*.safetensors | tail -1 | cut -f1)
cold() { sync; if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then echo cold; else echo warm; fi; }
rounds=${ROUNDS:-1}
ratios=()
for round in $(seq 1 "$rounds"); do
  state=$(cold)
  t0=$(date +%s.%N); cat "$src"/*.safetensors > /dev/null; t1=$(date +%s.%N)
  cat_s=$(echo "$t1 - $t0" | bc)
  rm -f "$out" "$out.manifest.json"
  state2=$(cold)
  /usr/bin/time -v $moeq convert "$src" -o "$out" --recipe "$recipe" --threads "$(nproc)" > /tmp/convert_vs_cat.out 2> /tmp/convert_vs_cat.time
  conv_s=$(grep "Elapsed (wall" /tmp/convert_vs_cat.time | awk '{print $NF}' | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss_kb=$(grep "Maximum resident" /tmp/convert_vs_cat.time | awk '{print $NF}')
  printf 'round %d: input %s: %.2f GB in %s files (%s cache for cat, %s for convert)\n' "$round" "$src" "$(echo "$bytes / 1000000000" | bc -l)" "$(ls "$src"/*.safetensors | wc -l)" "$state" "$state2"
  printf 'cat > /dev/null            %8.2f s  %7.1f MB/s\n' "$cat_s" "$(echo "$bytes / $cat_s / 1000000" | bc -l)"
  printf 'moeq convert --recipe %-5s %8.2f s  %7.1f MB/s  peak RSS %d MB  output %.2f GB\n' "$recipe" "$conv_s" "$(echo "$bytes / $conv_s / 1000000" | bc -l)" $((rss_kb / 1024)) "$(echo "$(stat -c %s "$out") / 1000000000" | bc -l)"
  ratio=$(echo "$conv_s / $cat_s" | bc -l)
  ratios+=("$ratio")
  printf 'ratio convert / cat        %8.2f\n' "$ratio"
done
if [ "$rounds" -gt 1 ]; then
  printf 'median ratio over %d rounds %7.2f\n' "$rounds" "$(printf '%s\n' "${ratios[@]}" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')"
fi
$moeq verify "$out"
rm -f "$out" "$out.manifest.json"
