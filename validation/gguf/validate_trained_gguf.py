#!/usr/bin/env python3
"""Convert the trained fixtures (validation/fixtures/trained-<arch>/) with `moeq convert` and compare llama.cpp
with transformers on the held-out KJV text: logits, top-1 agreement and perplexity.

    /tmp/peers/venv-llama/bin/python validation/gguf/validate_trained_gguf.py [--moeq .build/release/moeq]
        [--out /tmp/moeq-trained-gguf] [--recipes F32,Q8_0,Q4_K_M] [--skip-convert]
        [--llama-perplexity /tmp/peers/llama-build/bin/llama-perplexity] [--dequant-diag] [--kv f32|f16]

Run from the repository root. Same split as validate_moeq_gguf.py (whose helpers it imports): the driver needs
llama-cpp-python + numpy (venv-llama); transformers runs in --hf-python (venv-fix) through this file's `hf`
subcommand.

Token sets, per trained fixture:

* "short": reference.json's 64 tokens ([BOS] + the first 63 ids of the held-out text), one sequence,
  against the committed logits.npy.
* "heldout": validation/fixtures/trained/kjv-heldout.txt tokenized with the fixture's tokenizer.json (python
  `tokenizers`, no specials), then exactly the chunks llama-perplexity makes with add_bos: ids = [BOS] + text ids,
  n_chunk = len(ids) // ctx (ctx 256), chunk i = ids[i*ctx:(i+1)*ctx] with its first id replaced by BOS, each
  chunk in a fresh KV cache. Logit metrics and top-1 agreement use every position of every chunk; perplexity
  uses llama-perplexity's scoring (second half: logits at positions ctx/2..ctx-2 predicting ids ctx/2+1..ctx-1),
  computed in float64 from both sides' logits. Transformers (float32 forward of the bf16 checkpoint, eager
  attention) also re-computes the 64-token reference (max |Δ| to logits.npy is reported) and its perplexity is
  checked against reference.json.

With --llama-perplexity, the llama-perplexity binary is also run on each GGUF and the held-out text file
(-c ctx -b ctx -t 2 -fa off, KV cache type as --kv) and its "Final estimate" is reported: that checks the chunking
above and that the GGUF's tokenizer / add_bos settings reproduce the token stream.

llama.cpp settings (llama-cpp-python): n_threads 2, flash_attn off, logits_all, KV cache F32 unless --kv f16.
Writes OUT/results.jsonl and prints a markdown table.
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from validate_moeq_gguf import dequantized_copy, llama_eval, log_softmax, metrics, moeq_convert, print_criteria, sha256  # noqa: E402

ARCHS = ["qwen3_moe_wide", "deepseek_v3_wide", "mixtral"]
BOS = 0
CTX = 256
HELDOUT = "validation/fixtures/trained/kjv-heldout.txt"


def ppl_chunks(ids, ctx):
    toks = [BOS] + [int(t) for t in ids]
    chunks = [toks[i * ctx:(i + 1) * ctx] for i in range(len(toks) // ctx)]
    for c in chunks:
        c[0] = BOS
    return chunks


def nll_sum(logits, chunk, ctx):
    """Summed NLL (float64) of ids ctx/2+1..ctx-1 from the logits at positions ctx/2..ctx-2, and their count."""
    first = ctx // 2
    lp = log_softmax(np.asarray(logits[first:ctx - 1]))
    tgt = np.asarray(chunk[first + 1:ctx])
    return float(-lp[np.arange(len(tgt)), tgt].sum()), len(tgt)


# ---------------------------------------------------------------------------------------------- transformers side

def hf_main(a):
    import torch
    import transformers
    from tokenizers import Tokenizer

    torch.set_num_threads(2)
    ref = json.load(open(os.path.join(a.fixture, "reference.json")))
    tok = Tokenizer.from_file(os.path.join(a.fixture, "tokenizer.json"))
    ids = tok.encode(open(a.text, encoding="utf-8").read(), add_special_tokens=False).ids
    chunks = ppl_chunks(ids, a.ctx)
    cls = getattr(transformers, ref["architecture"])
    model = cls.from_pretrained(a.fixture, dtype=torch.bfloat16, attn_implementation="eager").float().eval()

    @torch.no_grad()
    def run(t):
        return model(input_ids=torch.tensor([t]), use_cache=False).logits[0].to(torch.float32).numpy()

    check = float(np.abs(run(ref["tokens"]) - np.load(os.path.join(a.fixture, "logits.npy"))).max())
    logits = np.stack([run(c) for c in chunks])
    nll, n = 0.0, 0
    for lg, c in zip(logits, chunks):
        s, k = nll_sum(lg, c, a.ctx)
        nll += s
        n += k
    np.save(a.out, logits)
    print(json.dumps({"fixture": os.path.basename(os.path.normpath(a.fixture)), "text_ids": len(ids),
                      "chunks": len(chunks), "ctx": a.ctx, "ppl": math.exp(nll / n), "scored": n,
                      "reference_json_ppl": ref["perplexity"]["ppl"] if a.ctx == ref["perplexity"]["ctx"] else None,
                      "reference_recompute_max_abs_diff": check, "ids": ids}), flush=True)


# ---------------------------------------------------------------------------------------------- llama.cpp side

def llama_perplexity_bin(binary, gguf, text, ctx, kv):
    cmd = [binary, "-m", gguf, "-f", text, "-c", str(ctx), "-b", str(ctx), "-t", "2", "-fa", "off",
           "-ctk", kv, "-ctv", kv, "--no-warmup"]
    # llama.cpp's logger runs in its own thread; now and then the last lines (the "Final estimate") are lost at
    # exit although the run succeeded (exit 0). Run again in that case.
    for attempt in range(1, 4):
        p = subprocess.run(cmd, capture_output=True, text=True)
        m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", p.stderr + p.stdout)
        n = re.search(r"calculating perplexity over (\d+) chunks", p.stderr + p.stdout)
        if m:
            return {"cmd": " ".join(cmd), "ppl": float(m.group(1)), "ppl_err": float(m.group(2)),
                    "chunks": int(n.group(1)) if n else None, "attempts": attempt}
    return {"cmd": " ".join(cmd), "error": f"exit {p.returncode}: " + (p.stderr + p.stdout)[-2000:]}


def compare(gguf, fixture, hf, hf_logits, a, source):
    import llama_cpp
    ref = json.load(open(os.path.join(fixture, "reference.json")))
    R64 = np.load(os.path.join(fixture, "logits.npy")).astype(np.float32)
    ids = hf["ids"]
    chunks = ppl_chunks(ids, a.ctx)
    llm, outs = llama_eval(gguf, [ref["tokens"]] + chunks, a.kv, a.ctx)
    short = metrics(outs[0], R64)
    L = np.stack(outs[1:])
    long_ = metrics(L.reshape(-1, L.shape[-1]), hf_logits.reshape(-1, hf_logits.shape[-1]))
    nll, n = 0.0, 0
    for lg, c in zip(L, chunks):
        s, k = nll_sum(lg, c, a.ctx)
        nll += s
        n += k
    first = a.ctx // 2
    scored_agree = (L[:, first:a.ctx - 1].argmax(-1) == hf_logits[:, first:a.ctx - 1].argmax(-1))
    text = open(a.text, encoding="utf-8").read()
    long_.update({"chunks": len(chunks), "ctx": a.ctx, "ppl_llama": math.exp(nll / n), "ppl_hf": hf["ppl"],
                  "ppl_rel_diff": math.exp(nll / n) / hf["ppl"] - 1, "scored": n,
                  "top1_agree_scored_positions": int(scored_agree.sum()),
                  "scored_positions": int(scored_agree.size),
                  "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(llama_cpp.llama_model_get_vocab(llm.model)))})
    if a.llama_perplexity:
        long_["llama_perplexity_bin"] = llama_perplexity_bin(a.llama_perplexity, gguf, a.text, a.ctx, a.kv)
    tok_short = llm.tokenize(ref["text"].encode(), add_bos=False, special=False)[:len(ref["tokens"]) - 1] \
        == ref["tokens"][1:]
    tok_long = llm.tokenize(text.encode(), add_bos=False, special=False) == ids
    base = {"gguf": gguf, "fixture": os.path.basename(os.path.normpath(fixture)), "source": source,
            "kv_cache": a.kv}
    return [dict(base, tokens="short", tokenize_matches=tok_short, **short),
            dict(base, tokens="heldout", tokenize_matches=tok_long, **long_)]


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "hf":
        ap = argparse.ArgumentParser(prog="validate_trained_gguf.py hf")
        ap.add_argument("fixture")
        ap.add_argument("text")
        ap.add_argument("out")
        ap.add_argument("--ctx", type=int, default=CTX)
        return hf_main(ap.parse_args(sys.argv[2:]))

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--moeq", default=".build/release/moeq")
    ap.add_argument("--fixtures", default="validation/fixtures")
    ap.add_argument("--text", default=HELDOUT)
    ap.add_argument("--out", default="/tmp/moeq-trained-gguf")
    ap.add_argument("--hf-python", default="/tmp/venv-fix/bin/python")
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--recipes", default="F32,Q8_0,Q4_K_M")
    ap.add_argument("--ctx", type=int, default=CTX)
    ap.add_argument("--kv", choices=["f32", "f16"], default="f32")
    ap.add_argument("--skip-convert", action="store_true", help="reuse OUT/*.gguf")
    ap.add_argument("--dequant-diag", action="store_true",
                    help="also run F32 copies of the quantized GGUFs (weights dequantized with gguf-py)")
    ap.add_argument("--llama-perplexity", default=None, help="path of the llama-perplexity binary (optional)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    pairs = []
    for arch in a.archs.split(","):
        src = os.path.join(a.fixtures, f"trained-{arch}")
        for recipe in a.recipes.split(","):
            dst = os.path.join(a.out, f"trained-{arch}-{recipe}.gguf")
            moeq_convert(a.moeq, src, dst, recipe, skip=a.skip_convert)
            pairs.append((dst, src, "moeq"))
            if a.dequant_diag and recipe != "F32":
                d = dst[:-5] + "-dequant.gguf"
                dequantized_copy(dst, d)
                pairs.append((d, src, "moeq, dequantized to F32"))

    rows = []
    with open(os.path.join(a.out, "results.jsonl"), "w") as f:
        for src in sorted({s for _, s, _ in pairs}, key=lambda s: [p[1] for p in pairs].index(s)):
            fx = os.path.basename(src)
            npy = os.path.join(a.out, f"hf-{fx}-c{a.ctx}.npy")
            cmd = [a.hf_python, os.path.abspath(__file__), "hf", src, a.text, npy, "--ctx", str(a.ctx)]
            t = time.time()
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode:
                sys.exit(f"FAILED: {' '.join(cmd)}\n{p.stdout}{p.stderr}")
            hf = json.loads(p.stdout.strip().splitlines()[-1])
            print(f"# transformers {fx}: {json.dumps({k: v for k, v in hf.items() if k != 'ids'})} "
                  f"({time.time() - t:.1f} s)", file=sys.stderr)
            hf_logits = np.load(npy)
            for g, s, source in pairs:
                if s != src:
                    continue
                for row in compare(g, s, hf, hf_logits, a, source):
                    rows.append(row)
                    f.write(json.dumps(row) + "\n")
                    f.flush()
            del hf_logits
            os.remove(npy)

    print("| source | GGUF | tokens | positions | max abs Δ | rel | top-1 | top-1 % | KLD mean / max | "
          "PPL llama.cpp / transformers (Δ) | llama-perplexity | tokenizer |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ppl = bin_ = ""
        if r["tokens"] == "heldout":
            ppl = f"{r['ppl_llama']:.4f} / {r['ppl_hf']:.4f} ({100 * r['ppl_rel_diff']:+.3f} %)"
            b = r.get("llama_perplexity_bin")
            bin_ = (f"{b['ppl']:.4f} ({b['chunks']} chunks)" if b and "ppl" in b else ("error" if b else ""))
        print(f"| {r['source']} | {os.path.basename(r['gguf'])} | {r['tokens']} | {r['positions']} | "
              f"{r['max_abs_diff']:.3g} | {r['max_rel_err']:.3g} | {r['top1_agree']}/{r['positions']} | "
              f"{100 * r['top1_frac']:.2f} | {r['kld_mean']:.2g} / {r['kld_max']:.2g} | {ppl} | {bin_} | "
              f"{'ok' if r['tokenize_matches'] else 'DIFFERS'} |")
    print_criteria(rows)


if __name__ == "__main__":
    main()
