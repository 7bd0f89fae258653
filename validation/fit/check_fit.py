#!/usr/bin/env python3
"""`moeq fit` against llama-quantize's named mixes at the same byte size: smaller or equal file, KL divergence
<= 0.8x on held-out text, predicted KLD within +-30 % of measured, and the emitted --tensor-type-file reproducing fit's
types with llama-quantize.

The trained Qwen3-MoE fixture (every row 256 wide), its llama-imatrix importance matrix, the KJV held-out text split in
two at a line boundary: the first half calibrates fit, the second half measures. For each of Q3_K_M, Q2_K and IQ2_XS:

1. the named mix of the F32 GGUF with the imatrix: by llama-quantize when --llama-bin is given, else by
   `moeq convert --recipe` (bit-identical to llama-quantize's, test `lowBitRecipesEqualLlamaQuantize`);
2. `moeq fit --budget <that file's size>` (sensitivities measured once, cached, re-solved per budget);
3. KLD of both files against the F32 model on the held-out half: by `llama-perplexity --kl-divergence` when
   --llama-bin is given, else by `moeq validate --arithmetic llama-cpu` (llama-perplexity's KLD to 4 digits on these files,
   validation/gguf/README.md);
4. with --llama-bin: `llama-quantize --tensor-type-file <emitted> --imatrix` of the F32 GGUF, whose tensor types and
   data bytes must equal fit's file.

Exits 1 naming the line that does not hold. Usage: check_fit.py MOEQ [--llama-bin DIR] [--out DIR]
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURE = os.path.join(ROOT, "validation/fixtures/trained-qwen3_moe_wide")
IMATRIX = os.path.join(ROOT, "validation/gguf/imatrix/trained-qwen3_moe_wide.llama-imatrix.gguf")
TEXT = os.path.join(ROOT, "validation/fixtures/trained/kjv-heldout.txt")
MIXES = ["Q3_K_M", "Q2_K", "IQ2_XS"]
CTX = 128


def run(cmd, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode:
        sys.exit(f"FAILED ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-3000:]}{p.stderr[-3000:]}")
    return p.stdout + p.stderr


def gguf_tensors(path):
    """name -> (type name, sha256 of data) read with gguf-py when present, else by `moeq dump`-free parsing."""
    import gguf  # the gguf package from PyPI (the CI venv has it)
    reader = gguf.GGUFReader(path)
    return {t.name: (t.tensor_type.name, hashlib.sha256(bytes(t.data.tobytes())).hexdigest()) for t in reader.tensors}


def llama_kld(perplexity, env, model, base, text):
    common = ["-f", text, "-c", str(CTX), "-b", str(CTX), "-t", "2", "-fa", "off", "-ctk", "f32", "-ctv", "f32",
              "--no-warmup"]
    for _ in range(3):  # llama.cpp's logger thread sometimes drops the last lines at exit
        out = run([perplexity, "-m", model, "--kl-divergence-base", base, "--kl-divergence"] + common, env)
        m = re.search(r"Mean\s+KLD:\s+(-?[0-9.]+)", out)
        if m:
            return float(m.group(1))
    sys.exit(f"llama-perplexity printed no Mean KLD for {model}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("moeq")
    ap.add_argument("--llama-bin", help="directory with llama-quantize and llama-perplexity (peers)")
    ap.add_argument("--out", default="/tmp/moeq-fit-check")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    text = open(TEXT, encoding="utf-8").read()
    cut = text.index("\n", len(text) // 2) + 1
    calibration, held = os.path.join(a.out, "calibration.txt"), os.path.join(a.out, "held-out.txt")
    open(calibration, "w", encoding="utf-8").write(text[:cut])
    open(held, "w", encoding="utf-8").write(text[cut:])
    env = None
    if a.llama_bin:
        env = dict(os.environ, LD_LIBRARY_PATH=a.llama_bin + ":" + os.environ.get("LD_LIBRARY_PATH", ""))
    f32 = os.path.join(a.out, "F32.gguf")
    run([a.moeq, "convert", FIXTURE, "-o", f32, "--recipe", "F32", "--force"])
    base_record = os.path.join(a.out, "F32.kld")
    if a.llama_bin:
        out = run([os.path.join(a.llama_bin, "llama-perplexity"), "-m", f32, "--kl-divergence-base", base_record, "-f", held,
                   "-c", str(CTX), "-b", str(CTX), "-t", "2", "-fa", "off", "-ctk", "f32", "-ctv", "f32", "--no-warmup"], env)
    sensitivity = os.path.join(a.out, "sensitivity.json")
    if os.path.exists(sensitivity):
        os.remove(sensitivity)
    rows, failures = [], []
    for mix in MIXES:
        named = os.path.join(a.out, f"{mix}.gguf")
        if a.llama_bin:
            run([os.path.join(a.llama_bin, "llama-quantize"), "--imatrix", IMATRIX, f32, named, mix, "2"], env)
        else:
            run([a.moeq, "convert", FIXTURE, "-o", named, "--recipe", mix, "--imatrix", IMATRIX, "--force"])
        size = os.path.getsize(named)
        fitted = os.path.join(a.out, f"fit-{mix}.gguf")
        started = time.time()
        summary = json.loads(run([a.moeq, "fit", FIXTURE, "--budget", str(size), "--text", calibration, "--ctx", str(CTX),
                                  "--imatrix", IMATRIX, "-o", fitted, "--sensitivity", sensitivity, "--json", "--force"]))
        seconds = time.time() - started
        if a.llama_bin:
            k_named = llama_kld(os.path.join(a.llama_bin, "llama-perplexity"), env, named, base_record, held)
            k_fit = llama_kld(os.path.join(a.llama_bin, "llama-perplexity"), env, fitted, base_record, held)
            # The emitted type file through llama-quantize: the same tensor types and bytes as fit's file.
            again = os.path.join(a.out, f"fit-{mix}.llama-quantize.gguf")
            run([os.path.join(a.llama_bin, "llama-quantize"), "--imatrix", IMATRIX, "--tensor-type-file",
                 summary["tensor_type_file"], f32, again, summary["base_recipe"], "2"], env)
            ours, theirs = gguf_tensors(fitted), gguf_tensors(again)
            types_equal = {n: t for n, (t, _) in ours.items()} == {n: t for n, (t, _) in theirs.items()}
            bytes_equal = ours == theirs
            if not types_equal:
                failures.append(f"{mix}: llama-quantize --tensor-type-file gives other types")
            if not bytes_equal:
                failures.append(f"{mix}: llama-quantize --tensor-type-file gives other tensor bytes")
        else:
            def moeq_kld(path):
                out = run([a.moeq, "validate", path, "--base", FIXTURE, "--text", held, "--ctx", str(CTX),
                           "--no-weight-errors", "--arithmetic", "llama-cpu", "--json"])
                return json.loads(out)["kld"]["mean"]
            k_named, k_fit = moeq_kld(named), moeq_kld(fitted)
            types_equal = bytes_equal = None
        fit_size = os.path.getsize(fitted)
        predicted = summary["predicted_kld"]
        ratio, error = k_fit / k_named, predicted / k_fit - 1
        rows.append((mix, size, fit_size, k_named, k_fit, ratio, predicted, error, seconds, types_equal, bytes_equal,
                     summary["sensitivity_cached"]))
        if fit_size > size:
            failures.append(f"{mix}: fit's file is {fit_size} bytes, larger than the named mix's {size}")
        if ratio > 0.8:
            failures.append(f"{mix}: KLD ratio fit / named = {ratio:.3f} > 0.8")
        if abs(error) > 0.30:
            failures.append(f"{mix}: predicted KLD {predicted:.6f} is {100 * error:+.1f} % off the measured {k_fit:.6f}")
    # The routed experts' gate and up get their own types by default (llama.cpp fuses them only on CUDA, and only in
    # the fast tier of the offload layout); --tie-gate-up all keeps them on one type: checked, and its KLD shown.
    named = os.path.join(a.out, "Q3_K_M.gguf")
    tied = os.path.join(a.out, "fit-Q3_K_M-tied.gguf")
    summary = json.loads(run([a.moeq, "fit", FIXTURE, "--budget", str(os.path.getsize(named)), "--text", calibration, "--ctx",
                              str(CTX), "--imatrix", IMATRIX, "-o", tied, "--sensitivity", sensitivity, "--tie-gate-up", "all",
                              "--json", "--force"]))
    rules = {r["tensor"]: r["type"] for r in json.load(open(summary["recipe_file"]))["rules"]}
    untied = [t for t in rules if "ffn_gate" in t and rules[t] != rules.get(t.replace("ffn_gate", "ffn_up"))]
    if untied or not any("ffn_gate" in t for t in rules):
        failures.append(f"--tie-gate-up all: gate and up differ in {untied or 'no FFN at all'}")
    if a.llama_bin:
        k_tied = llama_kld(os.path.join(a.llama_bin, "llama-perplexity"), env, tied, base_record, held)
    else:
        k_tied = json.loads(run([a.moeq, "validate", tied, "--base", FIXTURE, "--text", held, "--ctx", str(CTX),
                                 "--no-weight-errors", "--arithmetic", "llama-cpu", "--json"]))["kld"]["mean"]
    print(f"Q3_K_M bytes with --tie-gate-up all: KLD {k_tied:.6f} = {k_tied / rows[0][3]:.3f}× the named mix's "
          f"(untied: {rows[0][5]:.3f}×)")
    tool = "llama-perplexity" if a.llama_bin else "moeq validate"
    print(f"| mix | named bytes | fit bytes | KLD named ({tool}) | KLD fit | fit / named | predicted | predicted vs measured "
          "| fit seconds | type file → same types / bytes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for mix, size, fit_size, kn, kf, ratio, predicted, error, seconds, te, be, cached in rows:
        same = "—" if te is None else f"{'yes' if te else 'NO'} / {'yes' if be else 'NO'}"
        print(f"| {mix} | {size:,} | {fit_size:,} | {kn:.6f} | {kf:.6f} | {ratio:.3f} | {predicted:.6f} | {100 * error:+.1f} % "
              f"| {seconds:.1f}{' (cached)' if cached else ''} | {same} |")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("\nall lines hold")


if __name__ == "__main__":
    main()
