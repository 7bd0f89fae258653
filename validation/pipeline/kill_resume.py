#!/usr/bin/env python3
"""Crash safety of `moeq convert`: SIGKILL at 12 points (10 byte offsets spread over the output, one just
before the final rename, one external kill -9 at a random moment), each followed by `--resume`, must give a
file byte-identical to an uninterrupted run; no file with the final name may exist before completion.
Then the split layout (two files, routed experts written first): kills inside each file and from outside, then
`--resume` must give both files byte-identical, and the first file (the one llama.cpp opens) must not exist
before the pair is complete.

Usage: kill_resume.py PATH/TO/moeq   (CI runs it; needs only the standard library)
"""
import hashlib
import os
import random
import signal
import json
import subprocess
import sys
import tempfile
import time

MOEQ = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".build/debug/moeq")
failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL:", message)


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


with tempfile.TemporaryDirectory() as work:
    source = os.path.join(work, "src")
    subprocess.run([MOEQ, "synth", "--arch", "deepseek_v3", "--preset", "tiny", "--dtype", "fp8", "--seed", "9", "--out", source], check=True, capture_output=True)
    reference = os.path.join(work, "reference.gguf")
    subprocess.run([MOEQ, "convert", source, "-o", reference, "--recipe", "Q4_K_M", "--threads", "2"], check=True, capture_output=True)
    total = os.path.getsize(reference)
    rng = random.Random(20261125)
    # Kill points count tensor bytes written (the header is not counted), so stay below the data size.
    points = sorted(rng.randrange(1, total - 64 * 1024) for _ in range(10)) + ["rename", "external"]
    for i, point in enumerate(points):
        out = os.path.join(work, f"run{i}.gguf")
        env = dict(os.environ)
        # Half the runs journal every tensor as soon as it is durable (MOEQ_SYNC_MB=0), the others batch fsyncs
        # per 512 MB as by default (on this small file: one at the end).
        per_tensor = i % 2 == 0
        if per_tensor:
            env["MOEQ_SYNC_MB"] = "0"
        if point == "external":
            # A real kill -9 from outside at a random moment of a slower run (one thread).
            process = subprocess.Popen([MOEQ, "convert", source, "-o", out, "--recipe", "Q4_K_M", "--threads", "1"], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.02, 0.2))
            process.send_signal(signal.SIGKILL)
            process.wait()
        else:
            env["MOEQ_KILL_AT"] = str(point)
            first = subprocess.run([MOEQ, "convert", source, "-o", out, "--recipe", "Q4_K_M", "--threads", "2"], env=env, capture_output=True)
            check(first.returncode == -signal.SIGKILL, f"point {point}: expected SIGKILL, got {first.returncode} {first.stderr}")
        if point != "external":
            check(not os.path.exists(out), f"point {point}: the final name exists after a kill before completion")
        resumed = subprocess.run([MOEQ, "convert", source, "-o", out, "--recipe", "Q4_K_M", "--threads", "2", "--resume", "--events"], capture_output=True, text=True)
        check(resumed.returncode == 0, f"point {point}: resume failed: {resumed.stderr}")
        kept = sum(1 for line in resumed.stderr.splitlines() if line.startswith("{") and json.loads(line).get("kept_from_earlier_run"))
        if per_tensor and isinstance(point, int) and point > total // 2:
            check(kept > 0, f"point {point}: resume redid every tensor although the journal recorded some")
        check(os.path.exists(out) and sha(out) == sha(reference), f"point {point}: resumed file differs from an uninterrupted run")
        check(not os.path.exists(out + ".journal") and not os.path.exists(os.path.join(work, f".run{i}.gguf.partial")), f"point {point}: leftovers after completion")
        verify = subprocess.run([MOEQ, "verify", out], capture_output=True, text=True)
        check(verify.returncode == 0, f"point {point}: verify failed: {verify.stderr}")
        print(f"killed at {point}: resumed file identical ({total} bytes), {kept} tensors kept from the killed run")

    # --- split layout ---
    stem = os.path.join(work, "split")
    def pair(stem):
        return [f"{stem}-00001-of-00002.gguf", f"{stem}-00002-of-00002.gguf"]
    subprocess.run([MOEQ, "convert", source, "-o", stem + ".gguf", "--recipe", "Q4_K_M", "--layout", "split", "--threads", "2"], check=True, capture_output=True)
    reference_pair = [sha(p) for p in pair(stem)]
    experts_bytes = os.path.getsize(pair(stem)[1])
    split_points = [experts_bytes // 3, experts_bytes + os.path.getsize(pair(stem)[0]) // 2, "external"]
    for i, point in enumerate(split_points):
        out = os.path.join(work, f"split{i}")
        env = dict(os.environ, MOEQ_SYNC_MB="0")
        command = [MOEQ, "convert", source, "-o", out + ".gguf", "--recipe", "Q4_K_M", "--layout", "split"]
        if point == "external":
            process = subprocess.Popen(command + ["--threads", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.02, 0.2))
            process.send_signal(signal.SIGKILL)
            process.wait()
        else:
            env["MOEQ_KILL_AT"] = str(point)
            first = subprocess.run(command + ["--threads", "2"], env=env, capture_output=True)
            check(first.returncode == -signal.SIGKILL, f"split point {point}: expected SIGKILL, got {first.returncode} {first.stderr}")
            check(not os.path.exists(pair(out)[0]), f"split point {point}: the first file exists before the pair is complete")
            if point > experts_bytes:
                check(os.path.exists(pair(out)[1]), f"split point {point}: the finished expert file is missing")
        resumed = subprocess.run(command + ["--threads", "2", "--resume"], capture_output=True, text=True)
        check(resumed.returncode == 0, f"split point {point}: resume failed: {resumed.stderr}")
        check([sha(p) if os.path.exists(p) else None for p in pair(out)] == reference_pair, f"split point {point}: resumed pair differs from an uninterrupted run")
        for p in pair(out):
            verify = subprocess.run([MOEQ, "verify", p], capture_output=True, text=True)
            check(verify.returncode == 0, f"split point {point}: verify {p} failed: {verify.stderr}")
        print(f"split layout killed at {point}: resumed pair identical")

if failures:
    print(f"{len(failures)} crash-safety failures")
    sys.exit(1)
print("kill -9 / --resume: all checks passed")
