#!/usr/bin/env python3
"""Convert the checkpoint fixtures with `moeq convert`, load the GGUFs in llama.cpp (llama-cpp-python) and
compare llama.cpp's logits with transformers'.

    /tmp/peers/venv-llama/bin/python validation/gguf/validate_moeq_gguf.py [--moeq .build/release/moeq]
        [--out /tmp/moeq-gguf] [--seq-len 128] [--llama-ref /tmp/llama-ref] [--skip-convert] [--kv f32|f16]

Run from the repository root. The driver needs llama-cpp-python + numpy (venv-llama); the transformers
side runs as a child process in --hf-python (default /tmp/venv-fix/bin/python, torch + transformers +
tokenizers) through this same file's `hf` subcommand.

What it does:

1. `moeq convert FIXTURE -o OUT/<fixture>-<recipe>.gguf --recipe R --threads 2` for
   {deepseek_v3,qwen3_moe,mixtral}-f32 x {F32, Q8_0, Q4_K_M} and {deepseek_v3,mixtral}-bf16-sharded x F32.
2. "short": the fixture's 16 reference.json tokens (one batch, positions 0..15) against logits.npy.
3. "long": LONG_TEXT (below; not the tokenizer's training text) tokenized with the fixture's tokenizer.json
   (python `tokenizers`, no specials), cut into sequences of --seq-len ids = [BOS] + seq_len-1 text ids (the
   last sequence may be shorter). Transformers runs each sequence from the fixture dir in float32 (eager
   attention, use_cache=False; BF16 fixtures are loaded with dtype=bfloat16 and then .float(), exactly as their
   logits.npy was made); llama.cpp runs the same ids, each sequence in a fresh KV cache. Every position of every
   sequence is compared. The transformers side first re-computes the 16-token reference and reports its max |Δ|
   to logits.npy, which checks the harness itself.
4. With --dequant-diag, each quantized moeq GGUF is also rewritten with every tensor dequantized to F32
   (gguf-py) and run: that isolates the weight rounding from ggml's activation quantization.
5. With --llama-ref, each of moeq's fixture GGUFs is compared tensor by tensor (type, shape, bytes; by name)
   with llama.cpp's file of the same recipe, and the same logit comparisons are run for llama.cpp's own GGUFs (convert_hf_to_gguf.py + llama-quantize,
   made as in README.md) as a baseline: deepseek_v3 uses the `deepseek_v3_scoring-*` files (config with
   scoring_func), since llama.cpp's converter gets DeepSeek-V3's gating wrong without it.

llama.cpp settings: n_threads 2, flash_attn off, logits_all, KV cache F32 unless --kv f16.

Metrics per (GGUF, fixture, token set): max_abs_diff, ref_max_abs, max_rel_err = max|Δ| / max|ref|,
max_row_rel_l2, top-1 agreement (count/positions), KL(ref || llama.cpp) mean/max (float64),
tokenize_matches (llama.cpp's tokenizer on the same text gives the same ids as `tokenizers`), and for
positions where top-1 differs, the reference's top-1 minus top-2 logit margin (median / max).
Writes OUT/results.jsonl (one JSON object per row) and prints a markdown table.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np

FIXTURES_F32 = ["deepseek_v3-f32", "qwen3_moe-f32", "mixtral-f32", "glm4_moe-f32", "minimax_m2-f32",
                "gpt_oss-f32"]
RECIPES_F32 = ["F32", "Q8_0", "Q4_K_M"]
FIXTURES_BF16 = ["deepseek_v3-bf16-sharded", "mixtral-bf16-sharded", "deepseek_v32-bf16-sharded",
                 "glm_moe_dsa-bf16-sharded", "kimi_linear-bf16-sharded"]
RECIPES_BF16 = ["F32"]
BOS = 0

# Written for this script (plain prose; the tokenizer only knows 141 merges, so most of it falls back to
# short pieces and byte tokens, which is fine: any ids below 400 are valid model input).
LONG_TEXT = """\
The harbour town wakes slowly in winter. Before sunrise the bakers light their ovens, and the smell of bread
drifts down the narrow streets toward the water. Fishing boats leave in a loose line, their lamps swinging,
while gulls argue over the scraps left on the pier. By eight o'clock the market square is full: crates of
apples and potatoes, wheels of cheese, knitted hats, second-hand books with cracked spines, and a man who
repairs clocks at a folding table. Children walk to school in pairs, counting the steps of the old stone
staircase that climbs from the quay to the church, and every morning they disagree about the number.

In the library on the hill, a retired engineer keeps a notebook of tides. He writes the time of each high
and low water, the height of the waves, the direction of the wind, and a short remark: calm, grey, rain at
noon, fog lifting. After forty years the notebook has become a shelf of notebooks, and students from the
university come to copy his tables. They fit curves to the numbers, compare them with the predictions of
their models, and argue about whether the small differences are errors of measurement or something real.

Spring arrives with a week of storms. The ferry stops running for three days; the shop shelves empty of
milk and batteries; the river behind the town rises to the second mark on the bridge. Then the wind turns
south, the sky clears, and the whole town seems to step outside at once. People repaint doors in blue and
yellow, the café puts its tables on the pavement, and someone hangs a string of flags between two lamp
posts. The engineer writes one word in his notebook for that day: bright.

Summer brings visitors who photograph everything: the boats, the steep roofs, the cat asleep on the warm
wall of the post office. They ask the way to the lighthouse, which is four kilometres along the cliff path,
and most of them underestimate the distance. In the evening they come back sunburnt and hungry, and the
restaurants stay open late. The fishermen complain about the prices and the noise, but they also sell more
fish in August than in the rest of the year together, and nobody really wants the season to end.

Autumn is the quiet season again. The leaves on the hill turn red and brown, the visitors leave, and the
students return to their tables of tides. One of them finds a pattern that nobody noticed before: every
nineteen years the highest spring tides repeat almost exactly. The engineer smiles when she shows him the
graph. He had written the same remark, in pencil, in the margin of a notebook from long ago.
"""


# ---------------------------------------------------------------------------------------------- helpers

def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def sequences(ids, seq_len):
    body = seq_len - 1
    return [[BOS] + ids[i:i + body] for i in range(0, len(ids), body)]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- transformers side

def hf_main(a):
    """Runs in the transformers venv: tokenize LONG_TEXT, run the fixture model, save ids + logits."""
    import torch
    import transformers
    from tokenizers import Tokenizer

    torch.set_num_threads(2)
    ref = json.load(open(os.path.join(a.fixture, "reference.json")))
    tok = Tokenizer.from_file(os.path.join(a.fixture, "tokenizer.json"))
    ids = tok.encode(LONG_TEXT, add_special_tokens=False).ids
    seqs = sequences(ids, a.seq_len)
    bf16 = ref["dtype"] == "bfloat16"
    cls = getattr(transformers, ref["architecture"])
    model = cls.from_pretrained(a.fixture, dtype=torch.bfloat16 if bf16 else torch.float32,
                                attn_implementation="eager")
    if bf16:
        model = model.float()
    model.eval()

    @torch.no_grad()
    def run(t):
        return model(input_ids=torch.tensor([t]), use_cache=False).logits[0].to(torch.float32).numpy()

    check = float(np.abs(run(ref["tokens"]) - np.load(os.path.join(a.fixture, "logits.npy"))).max())
    logits = [run(s) for s in seqs]
    np.savez(a.out, ids=np.array(ids, dtype=np.int64), seq_len=a.seq_len,
             lengths=np.array([len(s) for s in seqs]), logits=np.concatenate(logits, 0))
    print(json.dumps({"fixture": os.path.basename(os.path.normpath(a.fixture)), "text_ids": len(ids),
                      "sequences": len(seqs), "positions": sum(len(s) for s in seqs),
                      "reference_recompute_max_abs_diff": check,
                      "transformers": transformers.__version__, "torch": torch.__version__}), flush=True)


# ---------------------------------------------------------------------------------------------- llama.cpp side

def metrics(L, R):
    d = np.abs(L - R)
    lr, ll = log_softmax(R), log_softmax(L)
    kl = (np.exp(lr) * (lr - ll)).sum(-1)
    agree = L.argmax(-1) == R.argmax(-1)
    srt = np.sort(R, -1)
    margin = (srt[:, -1] - srt[:, -2])[~agree]
    return {"positions": int(len(R)), "max_abs_diff": float(d.max()), "ref_max_abs": float(np.abs(R).max()),
            "max_rel_err": float(d.max() / np.abs(R).max()),
            "max_row_rel_l2": float((np.linalg.norm(L - R, axis=1) / np.linalg.norm(R, axis=1)).max()),
            "top1_agree": int(agree.sum()), "top1_frac": float(agree.mean()),
            "kld_mean": float(kl.mean()), "kld_max": float(kl.max()),
            "top1_agree_where_ref_margin_ge_0.1": f"{int(agree[srt[:, -1] - srt[:, -2] >= 0.1].sum())}/"
                                                    f"{int((srt[:, -1] - srt[:, -2] >= 0.1).sum())}",
            "disagree_ref_margin_median": float(np.median(margin)) if len(margin) else None,
            "disagree_ref_margin_max": float(margin.max()) if len(margin) else None}


def llama_eval(gguf, seqs, kv, n_ctx):
    import llama_cpp
    kvt = {"f32": 0, "f16": 1}[kv]
    llm = llama_cpp.Llama(gguf, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=True, n_threads=2,
                          n_threads_batch=2, flash_attn=False, type_k=kvt, type_v=kvt, verbose=False)
    out = []
    for s in seqs:
        llm.reset()
        llm.eval(s)
        out.append(np.array(llm.scores[:len(s)], dtype=np.float32))
    return llm, out


def compare(gguf, fixture, hf, kv, source):
    ref = json.load(open(os.path.join(fixture, "reference.json")))
    R16 = np.load(os.path.join(fixture, "logits.npy")).astype(np.float32)
    ids = [int(x) for x in hf["ids"]]
    seqs = sequences(ids, int(hf["seq_len"]))
    n_ctx = max(int(hf["seq_len"]), 64)
    llm, outs = llama_eval(gguf, [ref["tokens"]] + seqs, kv, n_ctx)
    short = metrics(outs[0], R16)
    long_ = metrics(np.concatenate(outs[1:], 0), hf["logits"])
    long_["sequences"] = len(seqs)
    tok_short = llm.tokenize(ref["text"].encode(), add_bos=False, special=False)[:len(ref["tokens"]) - 1] \
        == ref["tokens"][1:]
    tok_long = llm.tokenize(LONG_TEXT.encode(), add_bos=False, special=False) == ids
    base = {"gguf": gguf, "fixture": os.path.basename(os.path.normpath(fixture)), "source": source, "kv_cache": kv}
    return [dict(base, tokens="short", tokenize_matches=tok_short, **short),
            dict(base, tokens="long", tokenize_matches=tok_long, **long_)]


def dequantized_copy(src, dst):
    """Write dst = src with every tensor dequantized to F32 (same KVs, same tensor order). llama.cpp then runs
    F32 matmuls on exactly the quantized weight values, which separates the effect of rounding the weights
    from ggml's quantization of the activations (Q8_0 / Q8_K) in quantized matmuls."""
    import gguf
    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(dst, arch=r.fields["general.architecture"].contents())
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        sub = f.types[1] if f.types[0] == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(name, f.contents(), f.types[0], sub)
    for t in r.tensors:
        shape = tuple(int(x) for x in reversed(t.shape))
        w.add_tensor(t.name, np.ascontiguousarray(gguf.quants.dequantize(t.data, t.tensor_type),
                                                  dtype=np.float32).reshape(shape))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def tensor_identity(a_path, b_path):
    """Per-tensor comparison by name (llama-quantize reorders tensors): (identical, total, differing names)."""
    import gguf
    ta = {t.name: t for t in gguf.GGUFReader(a_path).tensors}
    tb = {t.name: t for t in gguf.GGUFReader(b_path).tensors}
    bad = [n for n in sorted(set(ta) | set(tb))
           if n not in ta or n not in tb or ta[n].tensor_type != tb[n].tensor_type
           or list(ta[n].shape) != list(tb[n].shape) or ta[n].data.tobytes() != tb[n].data.tobytes()]
    return len(set(ta) | set(tb)) - len(bad), len(set(ta) | set(tb)), bad


# ---------------------------------------------------------------------------------------------- driver


def moeq_convert(moeq, src, dst, recipe, skip=False):
    """`moeq convert SRC -o DST --recipe R` (unless skip), exiting on failure; logs the command, time and sha256."""
    if not skip:
        cmd = [moeq, "convert", src, "-o", dst, "--recipe", recipe, "--threads", "2"]
        t = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode:
            sys.exit(f"FAILED: {' '.join(cmd)}\n{p.stdout}{p.stderr}")
        print(f"# {' '.join(cmd)}  ({time.time() - t:.2f} s) -> {p.stdout.strip().splitlines()[-1]}", file=sys.stderr)
    print(f"# sha256 {os.path.basename(dst)} {sha256(dst)}", file=sys.stderr)

def main():
    if len(sys.argv) > 1 and sys.argv[1] == "hf":
        ap = argparse.ArgumentParser(prog="validate_moeq_gguf.py hf")
        ap.add_argument("fixture")
        ap.add_argument("out")
        ap.add_argument("--seq-len", type=int, default=128)
        return hf_main(ap.parse_args(sys.argv[2:]))

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--moeq", default=".build/release/moeq")
    ap.add_argument("--fixtures", default="validation/fixtures")
    ap.add_argument("--out", default="/tmp/moeq-gguf")
    ap.add_argument("--hf-python", default="/tmp/venv-fix/bin/python")
    ap.add_argument("--seq-len", type=int, default=128, help="ids per long sequence incl. BOS (≤ 256 = n_ctx_train)")
    ap.add_argument("--kv", choices=["f32", "f16"], default="f32")
    ap.add_argument("--llama-ref", default=None, help="dir with llama.cpp-made GGUFs (baseline rows)")
    ap.add_argument("--skip-convert", action="store_true", help="reuse OUT/*.gguf")
    ap.add_argument("--only", default=None, help="comma-separated fixture names (default: all)")
    ap.add_argument("--dequant-diag", action="store_true",
                    help="also run F32 copies of moeq's quantized GGUFs (weights dequantized with gguf-py)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    jobs = [(f, r) for f in FIXTURES_F32 for r in RECIPES_F32] + [(f, r) for f in FIXTURES_BF16 for r in RECIPES_BF16]
    if a.only:
        jobs = [(f, r) for f, r in jobs if f in a.only.split(",")]
    pairs = []
    for fx, recipe in jobs:
        src = os.path.join(a.fixtures, fx)
        dst = os.path.join(a.out, f"{fx}-{recipe}.gguf")
        moeq_convert(a.moeq, src, dst, recipe, skip=a.skip_convert)
        pairs.append((dst, src, "moeq"))
    if a.dequant_diag:
        for g, src, _ in list(pairs):
            if not g.endswith("-F32.gguf"):
                d = g[:-5] + "-dequant.gguf"
                dequantized_copy(g, d)
                pairs.append((d, src, "moeq, dequantized to F32"))
    if a.llama_ref:
        for fx in FIXTURES_F32:
            stem = "deepseek_v3_scoring" if fx.startswith("deepseek_v3") else fx[:-4]
            for q in ["f32", "Q8_0", "Q4_K_M"]:
                g = os.path.join(a.llama_ref, f"{stem}-{q}.gguf")
                if os.path.exists(g):
                    pairs.append((g, os.path.join(a.fixtures, fx), "llama.cpp"))
                    mine = os.path.join(a.out, f"{fx}-{q.upper() if q == 'f32' else q}.gguf")
                    same, total, bad = tensor_identity(g, mine)
                    print(f"# tensors {os.path.basename(mine)} vs llama.cpp's {os.path.basename(g)}: "
                          f"{same}/{total} byte-identical{' DIFF ' + ', '.join(bad) if bad else ''}",
                          file=sys.stderr)

    hf = {}
    for fx in sorted({os.path.basename(s) for _, s, _ in pairs}):
        npz = os.path.join(a.out, f"hf-{fx}-L{a.seq_len}.npz")
        cmd = [a.hf_python, os.path.abspath(__file__), "hf", os.path.join(a.fixtures, fx), npz,
               "--seq-len", str(a.seq_len)]
        t = time.time()
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode:
            sys.exit(f"FAILED: {' '.join(cmd)}\n{p.stdout}{p.stderr}")
        print(f"# transformers {p.stdout.strip()}  ({time.time() - t:.1f} s)", file=sys.stderr)
        hf[fx] = dict(np.load(npz))

    rows = []
    with open(os.path.join(a.out, "results.jsonl"), "w") as f:
        for g, src, source in pairs:
            for row in compare(g, src, hf[os.path.basename(src)], a.kv, source):
                rows.append(row)
                f.write(json.dumps(row) + "\n")

    print(f"| source | GGUF | tokens | positions | max abs Δ | rel (max|Δ|/max|ref|) | top-1 | top-1 % | "
          f"KLD mean / max | top-1 where ref margin ≥ 0.1 | tokenizer |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['source']} | {os.path.basename(r['gguf'])} | {r['tokens']} | {r['positions']} | "
              f"{r['max_abs_diff']:.3g} | {r['max_rel_err']:.3g} | {r['top1_agree']}/{r['positions']} | "
              f"{100 * r['top1_frac']:.1f} | {r['kld_mean']:.2g} / {r['kld_max']:.2g} | "
              f"{r['top1_agree_where_ref_margin_ge_0.1']} | "
              f"{'ok' if r['tokenize_matches'] else 'DIFFERS'} |")
    print_criteria(rows)


def print_criteria(rows):
    """The issue's two criteria on moeq's files: F32 rel ≤ 1e-3, Q8_0 top-1 ≥ 95 %."""
    bad = []
    for r in rows:
        if r["source"] != "moeq":
            continue
        name = os.path.basename(r["gguf"])
        if name.endswith("-F32.gguf") and r["max_rel_err"] > 1e-3:
            bad.append(f"{name} {r['tokens']}: F32 rel {r['max_rel_err']:.3g} > 1e-3")
        if name.endswith("-Q8_0.gguf") and r["top1_frac"] < 0.95:
            bad.append(f"{name} {r['tokens']}: Q8_0 top-1 {100 * r['top1_frac']:.1f}% < 95%")
    print("\ncriteria (F32 rel ≤ 1e-3; Q8_0 top-1 ≥ 95%):", "all met" if not bad else "NOT met:")
    for b in bad:
        print("  " + b)


if __name__ == "__main__":
    main()
