#!/usr/bin/env python3
"""Full-scale rehearsal of the mission's job (issue 19), run by hand:

    python3 Benchmarks/full_scale_rehearsal.py .build/release/moeq [--work /tmp/moeq-rehearsal] [--slices 2,4,8]

1. Synthesizes the full 61-layer Kimi-K2.5-shaped compressed-tensors INT4 checkpoint, sparse (~595 GB apparent,
   a few hundred MB of real disk: headers and INT4 `weight_shape` companions).
2. Runs `inspect`, `plan`, `convert --dry-run` for every recipe (with a generated all-ones importance matrix of the
   full model, ~1.5 GB) and `fit --dry-run` with a generated sensitivity file on it; each must finish in under 10 s.
3. Converts 2-, 4- and 8-layer slices (same widths) with INT4-NATIVE, Q4_K_M and IQ2_XXS (IQ2_XXS with a generated
   all-ones importance matrix) and verifies each output. Outputs of all-zero weights are mostly holes on disk.
3b. With --paths: on the same slices, the other paths — INT4-NATIVE in the split and expert-major layouts, as two
   shard parts and their merge, pack and unpack of the checkpoint, imatrix and validate (base against its INT4-NATIVE
   GGUF) with the streamed engine on a short text.
4. Samples every process's RssAnon and RssFile (/proc/PID/status, every 20 ms) and its bytes read/written
   (/proc/PID/io), fits per-layer slopes of wall time and peak memory, extrapolates to 61 layers, and checks the
   memory slope < 10 MB per layer and peak RssAnon + RssFile <= 2 GB on every slice.

Prints a table and writes every measurement to WORK/rehearsal.json. Needs only the standard library.
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import time

# Recipes llama-quantize refuses without an importance matrix (the full-shape dry runs all get one: loading it is
# part of what must stay fast and flat).
RECIPES_NEEDING_IMATRIX = {"IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ1_M", "IQ1_S", "Q2_K_S", "IQ3_XS", "IQ3_XXS"}
MB = 1 << 20


def run(command, label, results, allow_fail=False):
    """Runs command, sampling resident memory; returns its stdout. Records wall, peaks and I/O under label."""
    started = time.time()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = {"anon": 0, "file": 0, "sum": 0}
    io = {}
    stdout_chunks = []
    import threading

    def drain(stream, sink):
        for line in stream:
            sink.append(line)

    err_chunks = []
    readers = [threading.Thread(target=drain, args=(process.stdout, stdout_chunks)),
               threading.Thread(target=drain, args=(process.stderr, err_chunks))]
    for r in readers:
        r.start()
    while process.poll() is None:
        try:
            status = {}
            for line in open(f"/proc/{process.pid}/status"):
                key, _, value = line.partition(":")
                if key in ("RssAnon", "RssFile"):
                    status[key] = int(value.split()[0]) * 1024
            for line in open(f"/proc/{process.pid}/io"):
                key, _, value = line.partition(":")
                io[key] = int(value)
        except (OSError, ValueError):
            pass
        else:
            if status:
                peak["anon"] = max(peak["anon"], status.get("RssAnon", 0))
                peak["file"] = max(peak["file"], status.get("RssFile", 0))
                peak["sum"] = max(peak["sum"], status.get("RssAnon", 0) + status.get("RssFile", 0))
        time.sleep(0.02)
    for r in readers:
        r.join()
    wall = time.time() - started
    record = {"command": command[1:], "seconds": round(wall, 2), "exit": process.returncode,
              "peak_rss_anon": peak["anon"], "peak_rss_file": peak["file"], "peak_rss_sum": peak["sum"],
              "read_bytes": io.get("rchar", 0), "written_bytes": io.get("wchar", 0)}
    results[label] = record
    print(f"  {label:<44} {wall:8.1f} s  anon {peak['anon'] / MB:7.0f} MB  file {peak['file'] / MB:7.0f} MB  "
          f"read {io.get('rchar', 0) / 1e9:7.2f} GB  exit {process.returncode}", flush=True)
    if process.returncode != 0 and not allow_fail:
        sys.exit(f"{label} failed:\n{''.join(err_chunks)[-2000:]}")
    return "".join(stdout_chunks)


def dry_run_tensors(moeq, model, results, label):
    out = run([moeq, "convert", model, "--recipe", "Q8_0", "-o", "/tmp/unused-rehearsal.gguf", "--dry-run", "--json"],
              label, results)
    return json.loads(out)["tensors"]


def write_imatrix(path, tensors):
    """llama.cpp's legacy .dat: all-ones importance for every quantized weight (n_per_row x experts values)."""
    entries = [t for t in tensors if t["type"] != "F32" and len(t["ne"]) >= 2]
    with open(path, "wb") as f:
        f.write(struct.pack("<i", len(entries)))
        for t in entries:
            name = t["name"].encode()
            values = t["ne"][0] * (t["ne"][2] if len(t["ne"]) == 3 else 1)
            f.write(struct.pack("<i", len(name)) + name + struct.pack("<ii", 1, values))
            block = struct.pack("<f", 1.0) * min(values, 1 << 16)
            left = values
            while left > 0:
                n = min(left, 1 << 16)
                f.write(block[: 4 * n])
                left -= n
        f.write(struct.pack("<i", 1))


BITS = {"Q8_0": 8.5, "Q6_K": 6.5625, "Q5_K": 5.5, "Q4_K": 4.5, "IQ4_XS": 4.25, "Q3_K": 3.4375, "IQ3_S": 3.4375,
        "IQ3_XXS": 3.0625, "Q2_K": 2.625, "IQ2_S": 2.5, "IQ2_XS": 2.3125, "IQ2_XXS": 2.0625, "IQ1_M": 1.75}


def write_sensitivity(path, tensors):
    """A `moeq sensitivity 1` file (formats/sensitivity.md) for every quantized tensor: relative error 2^(-2·bpw)
    scaled by a per-kind factor (attention and shared tensors more sensitive than routed experts), no probes."""
    rows = []
    for t in tensors:
        if t["type"] == "F32" or len(t["ne"]) < 2:
            continue
        name = t["name"]
        match = re.match(r"blk\.(\d+)\.", name)
        elements = 1
        for n in t["ne"]:
            elements *= n
        factor = 0.2 if "_exps" in name else (4.0 if "attn" in name else 1.0)
        rows.append({"name": name, "layer": int(match.group(1)) if match else None, "elements": elements,
                     "row_width": t["ne"][0], "rows": 4096, "output_energy": 1.0,
                     "squared_error": {k: factor * 2.0 ** (-2 * b) for k, b in BITS.items()}, "unavailable": {}})
    document = {"format": "moeq sensitivity 1", "key": "rehearsal", "candidates": list(BITS),
                "tensors": rows,
                "calibration": {"group_weights": {}, "layers_per_group": 1, "scale": 1.0, "exponent": 1.0,
                                "probes": []}}
    with open(path, "w") as f:
        json.dump(document, f)


def slope(points):
    """Least-squares slope and intercept of (x, y) points."""
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    s = sum((p[0] - mx) * (p[1] - my) for p in points) / sxx if sxx else 0.0
    return s, my - s * mx


PATH_LABELS = ["convert {n}L split", "convert {n}L expert-major", "convert {n}L shard 1/2", "convert {n}L shard 2/2",
               "merge {n}L", "verify {n}L merged", "pack {n}L", "unpack {n}L", "imatrix {n}L", "validate {n}L"]


def other_paths(moeq, model, n, work, results):
    """The paths besides stacked conversion and verify, on one slice (INT4-NATIVE keeps them quick)."""
    def out(name):
        return os.path.join(work, f"{n}L-{name}")

    def remove(*paths):
        for path in paths:
            if os.path.isdir(path):
                subprocess.run(["rm", "-rf", path])
            elif os.path.exists(path):
                os.remove(path)

    for layout in ("split", "expert-major"):
        target = out(f"{layout}.gguf")
        run([moeq, "convert", model, "--recipe", "INT4-NATIVE", "--layout", layout, "-o", target, "--force"],
            f"convert {n}L {layout}", results)
        for name in os.listdir(work):
            if name.startswith(f"{n}L-{layout}"):
                remove(os.path.join(work, name))
    merged = out("merged.gguf")
    for k in (1, 2):
        run([moeq, "convert", model, "--recipe", "INT4-NATIVE", "--shard", f"{k}/2", "-o", merged, "--force"],
            f"convert {n}L shard {k}/2", results)
    parts = sorted(os.path.join(work, name) for name in os.listdir(work) if name.startswith(f"{n}L-merged.gguf.part-"))
    run([moeq, "merge"] + parts + ["-o", merged, "--force"], f"merge {n}L", results)
    run([moeq, "verify", merged], f"verify {n}L merged", results)
    remove(*parts)
    packed, unpacked = out("pack"), out("unpacked")
    run([moeq, "pack", model, "-o", packed, "--force"], f"pack {n}L", results)
    run([moeq, "unpack", packed, "-o", unpacked, "--force"], f"unpack {n}L", results)
    remove(packed, unpacked)
    text = os.path.join(work, "calibration.txt")
    with open(text, "w") as f:
        f.write("In the beginning the heavens and the earth were made, and the earth was without form. " * 20)
    run([moeq, "imatrix", model, "--text", text, "--ctx", "64", "--chunks", "2", "-o", out("imatrix.gguf"), "--force"],
        f"imatrix {n}L", results)
    run([moeq, "validate", merged, "--base", model, "--text", text, "--ctx", "64", "--chunks", "2", "--no-weight-errors"],
        f"validate {n}L", results)
    remove(merged, merged + ".manifest.json", out("imatrix.gguf"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("moeq")
    parser.add_argument("--work", default="/tmp/moeq-rehearsal")
    parser.add_argument("--slices", default="2,4,8")
    parser.add_argument("--recipes", default="INT4-NATIVE,Q4_K_M,IQ2_XXS")
    parser.add_argument("--skip-full", action="store_true", help="only the slices")
    parser.add_argument("--skip-slices", action="store_true", help="only the full-shape commands")
    parser.add_argument("--paths", action="store_true",
                        help="also layouts, shard parts + merge, pack/unpack, imatrix and validate on the slices")
    parser.add_argument("--skip-recipes", action="store_true", help="on the slices, only the --paths commands")
    args = parser.parse_args()
    moeq = os.path.abspath(args.moeq)
    os.makedirs(args.work, exist_ok=True)
    results = {}
    failures = []
    full = os.path.join(args.work, "kimi-k2.5")

    if not args.skip_full:
        print("full shape (61 layers, sparse):", flush=True)
        run([moeq, "synth", "--arch", "deepseek_v3", "--preset", "kimi-k2.5", "--sparse", "--out", full, "--force"],
            "synth full", results)
        run([moeq, "inspect", full], "inspect", results)
        run([moeq, "plan", full], "plan", results)
        tensors = dry_run_tensors(moeq, full, results, "convert --dry-run Q8_0 (tensor list)")
        imatrix = os.path.join(args.work, "kimi-k2.5.imatrix.dat")
        write_imatrix(imatrix, tensors)
        help_text = subprocess.run([moeq, "convert", "--help"], capture_output=True, text=True).stdout
        listed = re.search(r"--recipe <recipe>.*?\(values: ([^)]*)\)", help_text, re.S)
        names = [v.strip() for v in listed.group(1).replace("\n", " ").split(",")] if listed else []
        for recipe in names:
            if recipe in ("BF16", "F16", "F32") or not recipe:
                continue
            command = [moeq, "convert", full, "--recipe", recipe, "-o", os.path.join(args.work, "dry.gguf"), "--dry-run",
                       "--imatrix", imatrix]
            run(command, f"convert --dry-run {recipe}", results)
        sensitivity = os.path.join(args.work, "kimi-k2.5.sensitivity.json")
        write_sensitivity(sensitivity, tensors)
        text = os.path.join(args.work, "calibration.txt")
        with open(text, "w") as f:
            f.write("In the beginning the heavens and the earth were made, and the earth was without form. " * 20)
        run([moeq, "fit", full, "--budget", "230GiB", "--text", text, "--ctx", "64", "-o", os.path.join(args.work, "fit.gguf"),
             "--sensitivity", sensitivity, "--reuse-sensitivity", "--imatrix", imatrix, "--dry-run"], "fit --dry-run 230GiB",
            results)
        for label, record in results.items():
            if label != "synth full" and record["seconds"] >= 10:
                failures.append(f"{label}: {record['seconds']} s (limit 10 s)")

    if args.skip_slices:
        with open(os.path.join(args.work, "rehearsal-full.json"), "w") as f:
            json.dump({"runs": results, "failures": failures}, f, indent=1)
        if failures:
            sys.exit("FAILED:\n  " + "\n  ".join(failures))
        print("all limits hold")
        return
    print("slices:", flush=True)
    layers = [int(x) for x in args.slices.split(",")]
    recipes = args.recipes.split(",")
    for n in layers:
        model = os.path.join(args.work, f"kimi-k2.5-{n}L")
        run([moeq, "synth", "--arch", "deepseek_v3", "--preset", "kimi-k2.5", "--sparse", "--layers", str(n), "--out", model,
             "--force"], f"synth {n}L", results)
        tensors = None
        if args.paths:
            other_paths(moeq, model, n, args.work, results)
        for recipe in ([] if args.skip_recipes else recipes):
            out = os.path.join(args.work, f"{n}L-{recipe}.gguf")
            command = [moeq, "convert", model, "--recipe", recipe, "-o", out, "--force"]
            if recipe in RECIPES_NEEDING_IMATRIX:
                tensors = tensors or dry_run_tensors(moeq, model, {}, "tensor list")
                imatrix = os.path.join(args.work, f"{n}L.imatrix.dat")
                write_imatrix(imatrix, tensors)
                command += ["--imatrix", imatrix]  # every slice's imatrix grows with it, as a real one would
            run(command, f"convert {n}L {recipe}", results)
            run([moeq, "verify", out], f"verify {n}L {recipe}", results)
            for path in (out, out + ".manifest.json"):
                if os.path.exists(path):
                    os.remove(path)

    print("\nslopes per layer (least squares over slices), extrapolated to 61 layers:")
    summary = {}
    keys = [] if args.skip_recipes else [f"{command} {{n}}L {recipe}" for command in ("convert", "verify") for recipe in recipes]
    keys += PATH_LABELS if args.paths else []
    for pattern in keys:
        points = [(n, results[pattern.format(n=n)]) for n in layers]
        time_slope, time_base = slope([(n, r["seconds"]) for n, r in points])
        memory_slope, memory_base = slope([(n, r["peak_rss_sum"]) for n, r in points])
        peak = max(r["peak_rss_sum"] for _, r in points)
        key = pattern.replace("{n}L ", "").replace(" {n}L", "")
        summary[key] = {"seconds_per_layer": time_slope, "memory_bytes_per_layer": memory_slope,
                        "seconds_at_61": time_base + 61 * time_slope, "memory_at_61": memory_base + 61 * memory_slope,
                        "peak_rss_sum": peak}
        print(f"  {key:<24} {time_slope:7.2f} s/layer -> {time_base + 61 * time_slope:8.0f} s at 61;  "
              f"{memory_slope / MB:6.2f} MB/layer -> {(memory_base + 61 * memory_slope) / MB:6.0f} MB at 61; "
              f"peak {peak / MB:.0f} MB")
        if memory_slope >= 10 * MB:
            failures.append(f"{key}: memory slope {memory_slope / MB:.1f} MB per layer (limit 10)")
        if peak > 2 << 30:
            failures.append(f"{key}: peak RssAnon + RssFile {peak / MB:.0f} MB (limit 2048)")
    with open(os.path.join(args.work, "rehearsal.json"), "w") as f:
        json.dump({"runs": results, "slopes": summary, "failures": failures}, f, indent=1)
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("\nall limits hold")


if __name__ == "__main__":
    main()
