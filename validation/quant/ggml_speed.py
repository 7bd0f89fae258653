#!/usr/bin/env python3
"""ggml_speed.py - single-thread throughput of ggml_quantize_chunk (no imatrix) on this machine.

    /tmp/peers/venv-llama/bin/python validation/quant/ggml_speed.py [--types Q8_0,Q4_0,Q4_K,Q5_K,Q6_K]
        [--rows 4096 --cols 4096 --reps 5] [--imatrix]

Input: rows x cols float32, N(0,1)*0.02 (seed 7). One ggml_quantize_chunk call per repetition over the
whole matrix, from this (one) Python thread; ggml_quantize_chunk starts no threads of its own. Reports
the best and median wall time, GB/s of float32 input (1 GB = 1e9 bytes) and CPU time / wall time
(about 1.0 means one core was busy). Prints one JSON object.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import sys
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_vectors import TYPE_IDS, Ggml, default_lib_dir  # noqa: E402


def threads_now() -> int:
    with open("/proc/self/status") as f:
        for ln in f:
            if ln.startswith("Threads:"):
                return int(ln.split()[1])
    return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--types", default="Q8_0,Q4_0,Q4_K,Q5_K,Q6_K")
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--cols", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--imatrix", action="store_true", help="pass an exp(N(0,1)) importance vector")
    ap.add_argument("--lib-dir", default=None)
    a = ap.parse_args()

    g = Ggml(a.lib_dir or default_lib_dir())
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((a.rows, a.cols)) * 0.02).astype(np.float32)
    w = np.exp(rng.standard_normal(a.cols)).astype(np.float32) if a.imatrix else None
    nbytes_in = x.nbytes
    res = {"rows": a.rows, "cols": a.cols, "input_bytes": nbytes_in, "imatrix": a.imatrix,
           "loadavg_before": os.getloadavg(), "nproc": os.cpu_count(), "types": {}}
    for name in a.types.split(","):
        t = TYPE_IDS[name]
        out = ctypes.create_string_buffer(g.row_size(t, a.cols) * a.rows)
        imp = w.ctypes.data if w is not None else None
        call = lambda: g.lib.ggml_quantize_chunk(t, x.ctypes.data, ctypes.addressof(out), 0, a.rows, a.cols, imp)
        want = g.row_size(t, a.cols) * a.rows
        call()  # warm-up (ggml_quantize_init, page faults)
        # thread count with the sampler thread alive but no ggml call running (numpy's BLAS pool included)
        idle = []
        s0 = threading.Timer(0.05, lambda: idle.append(threads_now()))
        s0.start(); time.sleep(0.1); s0.join()
        walls, cpus, during = [], [], []
        for _ in range(a.reps):
            c0, t0 = time.process_time(), time.perf_counter()
            # sample the thread count while ggml runs (ctypes releases the GIL during the call)
            sampler = threading.Timer(0.01, lambda: during.append(threads_now()))
            sampler.start()
            n = call()
            t1, c1 = time.perf_counter(), time.process_time()
            sampler.join()
            assert n == want, (n, want)
            walls.append(t1 - t0)
            cpus.append(c1 - c0)
        best, med = min(walls), statistics.median(walls)
        res["types"][name] = {"best_s": round(best, 4), "median_s": round(med, 4),
                              "GBps_best": round(nbytes_in / best / 1e9, 3),
                              "GBps_median": round(nbytes_in / med / 1e9, 3),
                              "cpu_over_wall": round(sum(cpus) / sum(walls), 3),
                              "threads_idle": idle[0], "threads_during_call_max": max(during) if during else None,
                              "output_bytes": want}
    res["loadavg_after"] = os.getloadavg()
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
