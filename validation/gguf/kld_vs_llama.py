#!/usr/bin/env python3
"""`moeq validate` against `llama-perplexity --kl-divergence` on the same GGUF files, and the time each takes.

    /tmp/peers/venv-llama/bin/python validation/gguf/kld_vs_llama.py [--fixture validation/fixtures/trained-qwen3_moe_wide]
        [--recipes Q8_0,Q6_K,Q4_K_M] [--moeq .build/release/moeq] [--llama-bin /tmp/peers/llama-build/bin]
        [--out /tmp/moeq-kld] [--ctx 256] [--chunks N]

Run from the repository root (any python 3 with the standard library is enough; no packages are imported).

1. `moeq convert FIXTURE --recipe R` for F32 (llama.cpp's base) and every recipe.
2. llama.cpp: `llama-perplexity -m F32.gguf --kl-divergence-base BASE.kld` once, then
   `llama-perplexity -m R.gguf --kl-divergence-base BASE.kld --kl-divergence` per recipe (-c ctx -b ctx -t 2,
   KV cache f32, flash attention off; the held-out KJV text). Its "Mean KLD", PPL(Q) and "Same top p" are read.
3. moeq: `moeq validate R.gguf --base FIXTURE --text TEXT --ctx ctx --json` with `--arithmetic exact` (f32 matmul
   inputs: the quantization of the file alone) and `--arithmetic llama-cpu` (matmul inputs rounded as llama.cpp's
   CPU backend rounds them: what llama-perplexity measures).

4. Quant-only speed (one forward pass in each tool): moeq writes the base's top-32 record once (--save-base-logits),
   then `--repeats` times, alternating, llama-perplexity --kl-divergence and `moeq validate --base-logits RECORD
   --no-weight-errors` (llama-perplexity prints no per-tensor table either) under both arithmetics; best and median
   wall seconds and their ratios are printed.

Checks (exit 1 if one fails): KLD orders the recipes as listed (each smaller than the next) under both arithmetics
and in llama.cpp; moeq's llama-cpu KLD is within 5 % of llama-perplexity's for every recipe. Timing: wall seconds
and scored-window tokens per second of each `moeq validate` (base and quant forward passes, both computed) and of
each llama-perplexity run (quant only: its base comes from the file), measured in the same run.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time


def run(cmd, env=None):
    t = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode:
        sys.exit(f"FAILED ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
    return p, time.time() - t


def llama_perplexity(binary, env, args, pattern_needed):
    # llama.cpp's logger thread sometimes drops the last lines at exit (exit 0); run again then.
    for _ in range(3):
        p, secs = run([binary] + args, env)
        out = p.stdout + p.stderr
        if re.search(pattern_needed, out):
            return out, secs
    sys.exit(f"llama-perplexity printed no {pattern_needed!r}: {' '.join(args)}\n{out[-3000:]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fixture", default="validation/fixtures/trained-qwen3_moe_wide")
    ap.add_argument("--recipes", default="Q8_0,Q6_K,Q4_K_M")
    ap.add_argument("--moeq", default=".build/release/moeq")
    ap.add_argument("--llama-bin", default="/tmp/peers/llama-build/bin")
    ap.add_argument("--text", default="validation/fixtures/trained/kjv-heldout.txt")
    ap.add_argument("--out", default="/tmp/moeq-kld")
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--chunks", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=5,
                    help="quant-only speed runs per tool and recipe, alternating (best and median reported)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    env = dict(os.environ, LD_LIBRARY_PATH=a.llama_bin + ":" + os.environ.get("LD_LIBRARY_PATH", ""))
    perplexity = os.path.join(a.llama_bin, "llama-perplexity")
    recipes = a.recipes.split(",")
    name = os.path.basename(os.path.normpath(a.fixture))

    files = {}
    for recipe in ["F32"] + recipes:
        dst = os.path.join(a.out, f"{name}-{recipe}.gguf")
        _, secs = run([a.moeq, "convert", a.fixture, "-o", dst, "--recipe", recipe, "--threads", "2"])
        files[recipe] = dst
        print(f"# moeq convert --recipe {recipe}: {os.path.getsize(dst):,} bytes ({secs:.2f} s)", file=sys.stderr)

    common = ["-f", a.text, "-c", str(a.ctx), "-b", str(a.ctx), "-t", "2", "-fa", "off", "-ctk", "f32", "-ctv", "f32",
              "--no-warmup"] + (["--chunks", str(a.chunks)] if a.chunks else [])
    base = os.path.join(a.out, f"{name}.kld")
    out, base_secs = llama_perplexity(perplexity, env, ["-m", files["F32"], "--kl-divergence-base", base] + common,
                                      r"Final estimate")
    print(f"# llama-perplexity base (F32): {base_secs:.2f} s", file=sys.stderr)

    rows = []
    for recipe in recipes:
        out, l_secs = llama_perplexity(perplexity, env, ["-m", files[recipe], "--kl-divergence-base", base,
                                                         "--kl-divergence"] + common, r"Mean\s+KLD:")
        kld = float(re.search(r"Mean\s+KLD:\s+(-?[0-9.]+)", out).group(1))
        ppl_q = float(re.search(r"Mean PPL\(Q\)\s*:\s*([0-9.]+)", out).group(1))
        same = float(re.search(r"Same top p:\s*([0-9.]+)", out).group(1))
        median = float(re.search(r"Median\s+KLD:\s+(-?[0-9.]+)", out).group(1))
        p99 = float(re.search(r"99\.0%\s+KLD:\s+(-?[0-9.]+)", out).group(1))
        row = {"recipe": recipe, "bytes": os.path.getsize(files[recipe]),
               "llama": {"kld": kld, "median": median, "p99": p99, "ppl_q": ppl_q, "top1": same / 100, "seconds": l_secs}}
        for arithmetic in ("exact", "llama-cpu"):
            cmd = [a.moeq, "validate", files[recipe], "--base", a.fixture, "--text", a.text, "--ctx", str(a.ctx),
                   "--arithmetic", arithmetic, "--json"] + (["--chunks", str(a.chunks)] if a.chunks else [])
            p, secs = run(cmd)
            r = json.loads(p.stdout)
            row[arithmetic] = {"kld": r["kld"]["mean"], "median": r["kld"]["median"], "p99": r["kld"]["p99"], "ppl_q": r["ppl_quant"], "ppl_base": r["ppl_base"],
                               "top1": r["top1_agreement"], "seconds": secs, "chunks": r["chunks"]}
        rows.append(row)
        print(f"# {recipe}: {json.dumps(row)}", file=sys.stderr)

    tokens = rows[0]["exact"]["chunks"] * a.ctx
    print(f"\n{name}: {rows[0]['exact']['chunks']} chunks x {a.ctx} tokens, PPL(base) moeq "
          f"{rows[0]['exact']['ppl_base']:.4f}\n")
    print("| recipe | bytes | KLD moeq exact | KLD moeq llama-cpu | KLD llama-perplexity | llama-cpu / llama | "
          "median KLD moeq llama-cpu / llama | p99 KLD moeq llama-cpu / llama | "
          "PPL(Q) moeq llama-cpu | PPL(Q) llama | top-1 moeq llama-cpu | top-1 llama |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['recipe']} | {r['bytes']:,} | {r['exact']['kld']:.6f} | {r['llama-cpu']['kld']:.6f} | "
              f"{r['llama']['kld']:.6f} | {r['llama-cpu']['kld'] / r['llama']['kld']:.3f} | "
              f"{r['llama-cpu']['median']:.6f} / {r['llama']['median']:.6f} | {r['llama-cpu']['p99']:.5f} / {r['llama']['p99']:.5f} | "
              f"{r['llama-cpu']['ppl_q']:.4f} | {r['llama']['ppl_q']:.4f} | {100 * r['llama-cpu']['top1']:.2f} % | "
              f"{100 * r['llama']['top1']:.2f} % |")
    print("\n| recipe | moeq validate exact | moeq validate llama-cpu | llama-perplexity (quant only) |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['recipe']} | {r['exact']['seconds']:.2f} s, {2 * tokens / r['exact']['seconds']:,.0f} tok/s | "
              f"{r['llama-cpu']['seconds']:.2f} s, {2 * tokens / r['llama-cpu']['seconds']:,.0f} tok/s | "
              f"{r['llama']['seconds']:.2f} s, {tokens / r['llama']['seconds']:,.0f} tok/s |")
    print(f"\n(moeq runs base and quant: 2 x {tokens:,} tokens per validate; llama-perplexity's base run: "
          f"{base_secs:.2f} s, {tokens / base_secs:,.0f} tok/s)")

    # Quant-only speed: one forward pass each. moeq reads the base distributions from a record it wrote once
    # (--save-base-logits), llama-perplexity from its --kl-divergence-base file; runs alternate between the tools.
    record = os.path.join(a.out, f"{name}.base-logits")
    chunk_flags = ["--chunks", str(a.chunks)] if a.chunks else []
    run([a.moeq, "validate", files[recipes[0]], "--base", a.fixture, "--text", a.text, "--ctx", str(a.ctx),
         "--save-base-logits", record, "--force"] + chunk_flags)
    print("\n| recipe | moeq quant-only exact, best / median | moeq quant-only llama-cpu, best / median | "
          "llama-perplexity, best / median | tok/s ratio moeq exact / llama (best, median) | "
          "moeq llama-cpu / llama (best, median) |")
    print("|---|---:|---:|---:|---:|---:|")
    speed = []
    for recipe in recipes:
        times = {"exact": [], "llama-cpu": [], "llama": []}
        for _ in range(a.repeats):
            _, secs = llama_perplexity(perplexity, env, ["-m", files[recipe], "--kl-divergence-base", base,
                                                         "--kl-divergence"] + common, r"Mean\s+KLD:")
            times["llama"].append(secs)
            for arithmetic in ("exact", "llama-cpu"):
                _, secs = run([a.moeq, "validate", files[recipe], "--base", a.fixture, "--text", a.text, "--ctx",
                               str(a.ctx), "--arithmetic", arithmetic, "--base-logits", record,
                               "--no-weight-errors"] + chunk_flags)
                times[arithmetic].append(secs)
        best = {k: min(v) for k, v in times.items()}
        median = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        speed.append({"recipe": recipe, "times": times})
        print(f"| {recipe} | {best['exact']:.2f} / {median['exact']:.2f} s | {best['llama-cpu']:.2f} / "
              f"{median['llama-cpu']:.2f} s | {best['llama']:.2f} / {median['llama']:.2f} s | "
              f"{best['llama'] / best['exact']:.2f}, {median['llama'] / median['exact']:.2f} | "
              f"{best['llama'] / best['llama-cpu']:.2f}, {median['llama'] / median['llama-cpu']:.2f} |")
    print(f"\n({tokens:,} tokens per run, {a.repeats} runs of each; wall seconds including start-up, tokenization "
          "and scoring for both tools)")

    bad = []
    for key in ("exact", "llama-cpu", "llama"):
        k = [r[key]["kld"] for r in rows]
        if any(x >= y for x, y in zip(k, k[1:])):
            bad.append(f"{key}: KLD does not order {' < '.join(recipes)}: {k}")
    for r in rows:
        ratio = r["llama-cpu"]["kld"] / r["llama"]["kld"]
        if abs(ratio - 1) > 0.05:
            bad.append(f"{r['recipe']}: moeq llama-cpu KLD {r['llama-cpu']['kld']:.6f} vs llama {r['llama']['kld']:.6f}")
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"fixture": a.fixture, "ctx": a.ctx, "rows": rows, "llama_base_seconds": base_secs, "speed": speed}, f,
                  indent=1)
    print("\ncriteria (KLD ordered under every arithmetic; llama-cpu KLD within 5 % of llama-perplexity):",
          "all met" if not bad else "NOT met:")
    for b in bad:
        print("  " + b)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
