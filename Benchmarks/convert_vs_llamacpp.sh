#!/usr/bin/env bash
# End-to-end conversion benchmark, measured in one run on one machine with the same thread count:
#   llama.cpp:  convert_hf_to_gguf.py --outtype bf16  (HF safetensors -> BF16 GGUF)
#               then llama-quantize BF16 GGUF -> Q4_K_M with $THREADS threads
#   moeq:       moeq convert --recipe Q4_K_M --threads $THREADS  (HF safetensors -> Q4_K_M GGUF, one pass)
# on a synthetic BF16 checkpoint with real widths (`moeq synth`, default Qwen3-30B-A3B shapes, first 2 layers,
# ~3.5 GB). Prints wall time, peak RSS (/usr/bin/time) and peak anonymous RSS (sampled from /proc every 0.2 s;
# peak RSS also counts the pages of memory-mapped input files) per step, the ratio moeq / (convert + quantize),
# and whether every tensor of the two Q4_K_M files is byte-identical (gguf-py, matched by name, since
# llama-quantize reorders tensors; type, shape and data bytes are compared). Metadata differences are listed.
#
# Usage: Benchmarks/convert_vs_llamacpp.sh            (variables below can be overridden from the environment)
# Needs: a release build of moeq; the llama.cpp peers of /work/shared/peers (setup_peers.sh: llama-quantize,
# llama.cpp's source tree with convert_hf_to_gguf.py and gguf-py, a Python with gguf); a Python with torch +
# transformers for the converter. The synthetic tokenizer's BPE pre-tokenizer hash is unknown to the converter,
# so it runs through validation/gguf/convert_unknown_pre.py (unknown hash -> tokenizer.ggml.pre "gpt-2").
# The input checkpoint is read once (cat > /dev/null) before each step that reads it, so every step starts with
# it in the page cache; the outputs go to $OUT on the same disk.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MOEQ=${MOEQ:-$ROOT/.build/release/moeq}
THREADS=${THREADS:-2}
ARCH=${ARCH:-qwen3_moe}
PRESET=${PRESET:-qwen3-30b-a3b}
LAYERS=${LAYERS:-2}
CKPT=${CKPT:-/tmp/bench-ckpt}
OUT=${OUT:-/tmp/bench-out}
PEERS=${PEERS:-/tmp/peers}
LLAMA_CPP_DIR=${LLAMA_CPP_DIR:-$PEERS/llama_cpp_python-0.3.36/vendor/llama.cpp}
QUANTIZE=${QUANTIZE:-$PEERS/llama-build/bin/llama-quantize}
CONVERT_PY=${CONVERT_PY:-/tmp/venv-fix/bin/python}          # torch + transformers
GGUF_PY=${GGUF_PY:-$PEERS/venv-llama/bin/python}            # numpy + gguf
WRAPPER=${WRAPPER:-$ROOT/validation/gguf/convert_unknown_pre.py}
export LLAMA_CPP_DIR OMP_NUM_THREADS=$THREADS

for x in "$MOEQ" "$QUANTIZE" "$CONVERT_PY" "$GGUF_PY" /usr/bin/time; do
  [ -x "$x" ] || { echo "missing: $x" >&2; exit 1; }
done
mkdir -p "$OUT"
if [ ! -f "$CKPT/config.json" ]; then
  "$MOEQ" synth --arch "$ARCH" --preset "$PRESET" --layers "$LAYERS" --dtype bf16 --out "$CKPT" >/dev/null
fi

# busy CPU seconds of the whole machine so far (user+nice+system+irq+softirq+steal from /proc/stat)
busy() { awk -v hz="$(getconf CLK_TCK)" '/^cpu /{printf "%.2f", ($2+$3+$4+$7+$8+$9)/hz}' /proc/stat; }

# run NAME CMD...: /usr/bin/time + a sampler of the timed process's RssAnon; log in $OUT/NAME.log
# sets R_SEC, R_RSS_KB, R_ANON_KB, R_CPU (user+sys s of the step), R_OTHER (CPU s used by anything else
# on the machine meanwhile: a check that nothing else was running; expect ~1 s of noise from the sampler)
run() {
  local name=$1; shift
  local b0; b0=$(busy)
  /usr/bin/time -f "%e %M %U %S" -o "$OUT/$name.time" "$@" >"$OUT/$name.log" 2>&1 &
  local tpid=$! peak=0 child a
  while kill -0 "$tpid" 2>/dev/null; do
    child=$(pgrep -P "$tpid" | head -1 || true)
    if [ -n "$child" ]; then
      a=$(awk '/^RssAnon:/{print $2}' "/proc/$child/status" 2>/dev/null || true)
      [ -n "$a" ] && [ "$a" -gt "$peak" ] && peak=$a
    fi
    sleep 0.2
  done
  wait "$tpid" || { echo "FAILED: $* (see $OUT/$name.log)" >&2; tail -20 "$OUT/$name.log" >&2; exit 1; }
  local b1 u sy; b1=$(busy)
  read -r R_SEC R_RSS_KB u sy < "$OUT/$name.time"
  R_ANON_KB=$peak
  R_CPU=$(awk -v u="$u" -v s="$sy" 'BEGIN{printf "%.1f", u + s}')
  R_OTHER=$(awk -v a="$b0" -v b="$b1" -v c="$R_CPU" 'BEGIN{printf "%.1f", b - a - c}')
}
warm() { cat "$@" > /dev/null; }

rm -f "$OUT/llama-bf16.gguf" "$OUT/llama-Q4_K_M.gguf" "$OUT/moeq-Q4_K_M.gguf"
warm "$CKPT"/*.safetensors
run convert "$CONVERT_PY" "$WRAPPER" "$CKPT" --outtype bf16 --outfile "$OUT/llama-bf16.gguf"
C_SEC=$R_SEC C_RSS=$R_RSS_KB C_ANON=$R_ANON_KB C_CPU=$R_CPU C_OTHER=$R_OTHER
run quantize "$QUANTIZE" "$OUT/llama-bf16.gguf" "$OUT/llama-Q4_K_M.gguf" Q4_K_M "$THREADS"
Q_SEC=$R_SEC Q_RSS=$R_RSS_KB Q_ANON=$R_ANON_KB Q_CPU=$R_CPU Q_OTHER=$R_OTHER
warm "$CKPT"/*.safetensors
run moeq "$MOEQ" convert "$CKPT" -o "$OUT/moeq-Q4_K_M.gguf" --recipe Q4_K_M --threads "$THREADS"
M_SEC=$R_SEC M_RSS=$R_RSS_KB M_ANON=$R_ANON_KB M_CPU=$R_CPU M_OTHER=$R_OTHER

PYTHONPATH="$LLAMA_CPP_DIR/gguf-py" "$GGUF_PY" - "$OUT/llama-Q4_K_M.gguf" "$OUT/moeq-Q4_K_M.gguf" \
  > "$OUT/compare.txt" <<'EOF'
import sys
import gguf
a, b = gguf.GGUFReader(sys.argv[1]), gguf.GGUFReader(sys.argv[2])
ta, tb = {t.name: t for t in a.tensors}, {t.name: t for t in b.tensors}
diff = []
for n in sorted(set(ta) | set(tb)):
    x, y = ta.get(n), tb.get(n)
    if x is None or y is None:
        diff.append(f"{n}: only in {'moeq' if x is None else 'llama.cpp'}")
    elif x.tensor_type != y.tensor_type or list(x.shape) != list(y.shape):
        diff.append(f"{n}: llama.cpp {x.tensor_type.name} {list(x.shape)} vs moeq {y.tensor_type.name} {list(y.shape)}")
    elif x.data.tobytes() != y.data.tobytes():
        diff.append(f"{n}: {x.tensor_type.name} {list(x.shape)}, bytes differ")
same = len(set(ta) | set(tb)) - len(diff)
types = {}
for t in tb.values():
    types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + 1
print(f"tensors: llama.cpp {len(ta)}, moeq {len(tb)}; byte-identical (type, shape, data): {same}; differing: {len(diff)}")
print("moeq tensor types: " + ", ".join(f"{v} {k}" for k, v in sorted(types.items())))
for d in diff:
    print("  DIFF " + d)
fa = {k: f.contents() for k, f in a.fields.items() if not k.startswith("GGUF.")}
fb = {k: f.contents() for k, f in b.fields.items() if not k.startswith("GGUF.")}
def show(v):
    if isinstance(v, list):
        return f"array[{len(v)}]"
    return repr(v)[:60]
for k in sorted(set(fa) | set(fb)):
    va, vb = fa.get(k, "<absent>"), fb.get(k, "<absent>")
    if va == vb:
        continue
    extra = ""
    if isinstance(va, list) and isinstance(vb, list) and len(va) == len(vb):
        idx = [i for i in range(len(va)) if va[i] != vb[i]]
        extra = f", {len(idx)} elements differ, first at {idx[0]}: {va[idx[0]]!r} vs {vb[idx[0]]!r}"
    print(f"  metadata {k}: llama.cpp {show(va)} vs moeq {show(vb)}{extra}")
EOF

mb() { echo $(( $1 / 1024 )); }
T_SEC=$(awk -v a="$C_SEC" -v b="$Q_SEC" 'BEGIN{printf "%.2f", a + b}')
echo "moeq: $MOEQ (sha256 $(sha256sum "$MOEQ" | cut -c1-16)…)"
echo "checkpoint: $CKPT ($(du -sh "$CKPT" | cut -f1), $(ls "$CKPT"/*.safetensors | wc -l) shard(s)); threads: $THREADS; $(nproc) cores"
row() { printf "| %-50s | %8s | %13s | %14s | %9s | %13s |\n" "$@"; }
row "step" "wall (s)" "peak RSS (MB)" "peak anon (MB)" "CPU (s)" "other CPU (s)"
echo "|----------------------------------------------------|----------|---------------|----------------|-----------|---------------|"
row "llama.cpp convert_hf_to_gguf.py --outtype bf16" "$C_SEC" "$(mb "$C_RSS")" "$(mb "$C_ANON")" "$C_CPU" "$C_OTHER"
row "llama-quantize BF16 -> Q4_K_M ($THREADS threads)" "$Q_SEC" "$(mb "$Q_RSS")" "$(mb "$Q_ANON")" "$Q_CPU" "$Q_OTHER"
row "llama.cpp total (convert + quantize)" "$T_SEC" "$(mb $(( C_RSS > Q_RSS ? C_RSS : Q_RSS )))" \
    "$(mb $(( C_ANON > Q_ANON ? C_ANON : Q_ANON )))" "$(awk -v a="$C_CPU" -v b="$Q_CPU" 'BEGIN{printf "%.1f", a + b}')" \
    "$(awk -v a="$C_OTHER" -v b="$Q_OTHER" 'BEGIN{printf "%.1f", a + b}')"
row "moeq convert --recipe Q4_K_M --threads $THREADS" "$M_SEC" "$(mb "$M_RSS")" "$(mb "$M_ANON")" "$M_CPU" "$M_OTHER"
awk -v m="$M_SEC" -v t="$T_SEC" 'BEGIN{printf "ratio moeq / (convert + quantize): %.3f  (moeq %.2fx faster)\n", m/t, t/m}'
echo "files: BF16 $(stat -c %s "$OUT/llama-bf16.gguf") B; Q4_K_M llama.cpp $(stat -c %s "$OUT/llama-Q4_K_M.gguf") B, moeq $(stat -c %s "$OUT/moeq-Q4_K_M.gguf") B"
cat "$OUT/compare.txt"
