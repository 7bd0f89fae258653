#!/usr/bin/env python3
"""Hostile-input suite for moeq: every case builds its own corrupt/absurd input in a fresh temp dir, runs one
moeq command (or a small scenario) under a 4 GiB address-space limit, and checks: no signal, no timeout, the
expected exit code (0 / 1 / 64), stderr naming the culprit, every input byte unchanged and no stray files in
input directories, plus per-case post-conditions. See README.md.

Usage: run_suite.py MOEQ [--only SUBSTR] [--list] [--keep] [--jobs N] [--timeout S] [-v]
Standard library only. Cases live in hostile_cases.py (the issue's findings), hostile_formats.py (mutations per
format), hostile_scenarios.py (signals, concurrency, ENOSPC, read-only); helpers in hostile_lib.py.
"""
import argparse
import collections
import concurrent.futures
import os
import re
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostile_lib as H  # noqa: E402
from hostile_lib import Skip, check_result  # noqa: E402

FIXTURES = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))


def run_moeq(moeq, args, cwd, timeout, env=None):
    return H.finish(H.spawn(moeq, args, cwd, env), timeout)


class Base:
    """Artifacts built once per suite run from the committed fixtures and moeq itself; cases copy what they use."""

    def __init__(self, moeq, root):
        self.moeq, self.dir, self.errors = moeq, os.path.join(root, "base"), []
        os.makedirs(self.dir)
        q = os.path.join(FIXTURES, "qwen3_moe-f32")
        H.write(self.p("t.txt"), H.read(os.path.join(FIXTURES, "trained", "kjv-heldout.txt"))[:300])
        H.write(self.p("long.txt"), H.read(os.path.join(FIXTURES, "trained", "kjv-heldout.txt"))[:3000])
        steps = [
            ["synth", "--arch", "qwen3_moe", "--preset", "tiny", "--out", self.p("syn")],
            ["convert", q, "-o", self.p("q.gguf"), "--recipe", "Q8_0"],
            ["imatrix", q, "--text", self.p("t.txt"), "--ctx", "32", "-o", self.p("im.gguf")],
            ["convert", q, "-o", self.p("m.gguf"), "--recipe", "Q8_0", "--shard", "1/2"],
            ["convert", q, "-o", self.p("m.gguf"), "--recipe", "Q8_0", "--shard", "2/2"],
            ["convert", q, "-o", self.p("xm.gguf"), "--recipe", "Q8_0", "--layout", "expert-major", "--imatrix", self.p("im.gguf")],
            ["pack", q, "-o", self.p("packd")],
            ["validate", self.p("q.gguf"), "--base", q, "--text", self.p("t.txt"), "--ctx", "32", "--save-base-logits", self.p("bl.bin")],
        ]
        for step in steps:
            r = run_moeq(moeq, step, self.dir, 120)
            if r.rc != 0:
                self.errors.append(f"base step `moeq {' '.join(step)}` failed ({r.describe()}): {r.err.strip()[:300]}")

    def p(self, name):
        return os.path.join(self.dir, name)


class Ctx:
    """One case's world: its directory, the inputs to hash, cleanups (mounts)."""

    def __init__(self, suite, case, directory):
        self.suite, self.case, self.dir = suite, case, directory
        self.moeq, self.base, self.fixtures = suite.moeq, suite.base, FIXTURES
        self.inputs, self.protected, self.cleanups, self.failures = [], [], [], []
        self.new_ok = set()

    # --- building inputs
    def p(self, *names):
        return os.path.join(self.dir, *names)

    def inp(self, path):
        self.inputs.append(path)
        return path

    def protect(self, path):
        """Not an input, but must not change either (e.g. another model directory aimed at by -o)."""
        self.protected.append(path)
        return path

    def fixture(self, name, as_name=None):
        return self.inp(H.copytree(os.path.join(FIXTURES, name), self.p(as_name or name.replace("/", "_"))))

    def art(self, name, as_name=None, sidecars=(".manifest.json",), register=True):
        """Copies a base artifact (file plus existing sidecars, or a directory) into the case dir as an input
        (register=False: a copy the case may legitimately replace)."""
        src, dst = self.base.p(name), self.p(as_name or name)
        if not os.path.exists(src):
            raise RuntimeError(f"base artifact {name} is missing (see base errors)")
        if os.path.isdir(src):
            H.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)
            for s in sidecars:
                if os.path.exists(src + s):
                    shutil.copyfile(src + s, dst + s)
                    if register:
                        self.inp(dst + s)
        return self.inp(dst) if register else dst

    def mk(self, name, data):
        return self.inp(H.write(self.p(name), data))

    def moeq_ok(self, *args, env=None):
        """Runs moeq as a setup step (must succeed)."""
        r = run_moeq(self.moeq, list(args), self.dir, 300, env=env)
        if r.rc != 0:
            raise RuntimeError(f"setup step `moeq {' '.join(map(str, args))}` failed ({r.describe()}): {r.err.strip()[:300]}")
        return r

    def xxh3(self, data):
        """XXH3-64 hex of data, computed by `moeq pack` (its manifest records each file's XXH3-64)."""
        d = tempfile.mkdtemp(dir=self.dir, prefix=".xxh3-")
        H.write(os.path.join(d, "in", "blob"), data)
        self.moeq_ok("pack", os.path.join(d, "in"), "-o", os.path.join(d, "out"))
        value = H.jload(os.path.join(d, "out", "manifest.json"))["files"][0]["xxh3"]
        shutil.rmtree(d)
        return value

    # --- privileged helpers (SKIP when impossible)
    def tmpfs(self, name, size, ro=False, populate=None):
        if not H.mount_possible():
            raise Skip("cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)")
        path = self.p(name)
        cm = H.tmpfs(path, size)
        cm.__enter__()
        self.cleanups.append(lambda: cm.__exit__(None, None, None))
        if populate:
            populate(path)
        if ro:
            H.remount(path, "ro")
        return path

    # --- running
    def rebaseline(self):
        """(Re)takes the before-hashes of inputs; a scenario that edits an input on purpose calls it afterwards."""
        self.before = {p: H.snapshot(p) for p in self.inputs + self.protected}

    def run(self, args, env=None, timeout=None):
        r = run_moeq(self.moeq, args, self.dir, timeout or self.case.timeout or self.suite.timeout, env=env)
        self.last = r
        return r

    def fail(self, message):
        self.failures.append(message)


class Suite:
    def __init__(self, moeq, root, timeout, keep):
        self.moeq, self.root, self.timeout, self.keep = moeq, root, timeout, keep
        self.base = None

    def run_case(self, case, index):
        directory = os.path.join(self.root, f"{index:03d}-" + re.sub(r"[^A-Za-z0-9._-]+", "_", case.name))
        os.makedirs(directory)
        c = Ctx(self, case, directory)
        status, reasons, c.main = "PASS", [], None
        try:
            try:
                argv = case.build(c) if case.build else None
            except Skip:
                raise
            except Exception as e:  # a harness or setup problem: reported, never silently passed
                return "ERROR", [f"setup: {type(e).__name__}: {e}"], None
            c.rebaseline()
            if case.scenario:
                case.scenario(c)
            else:
                r = c.main = c.run(argv)
                check_result(c, r, case.rc, case.err, case.not_err)
                if case.post and not r.timed_out and r.rc >= 0:
                    for problem in case.post(c, r) or []:
                        c.fail(problem)
            for p, snap in c.before.items():
                changes = H.diff_snapshots(snap, H.snapshot(p))
                if case.new_ok:
                    changes = [x for x in changes if not x.endswith(": new")]
                if changes:
                    what = "protected path" if p in c.protected else "input"
                    c.fail(f"{what} {os.path.relpath(p, directory)} changed: {', '.join(changes[:6])}")
            if c.failures:
                status, reasons = "FAIL", c.failures
        except Skip as s:
            status, reasons = "SKIP", [str(s)]
        except Exception as e:
            status, reasons = "ERROR", [f"harness: {type(e).__name__}: {e}"]
        finally:
            for cleanup in reversed(c.cleanups):
                try:
                    cleanup()
                except Exception:
                    pass
            if status == "PASS" and not self.keep:
                shutil.rmtree(directory, ignore_errors=True)
        return status, reasons, c.main


def key_line(r):
    """The line of a run's output that says what happened: the Swift trap, else the error line, else stdout's first."""
    lines = [x.strip() for x in r.err.splitlines() if x.strip() and not x.startswith("{")]
    for marker in ("Fatal error", "runtime failure", "Precondition failed", "error:", "Error:"):
        for x in lines:
            if marker in x:
                return x
    out = [x.strip() for x in r.out.splitlines() if x.strip()]
    return out[0] if out else (lines[0] if lines else "")


def write_report(path, cases, results, root, moeq):
    def clean(text):
        return re.sub(re.escape(root) + r"/\d{3}-[^/ ]*/", "", text).replace(root + "/", "")
    sections = collections.OrderedDict()
    for case in cases:
        case_, status, reasons, last = results[case.name]
        if status in ("FAIL", "ERROR"):
            sections.setdefault(case.section or "other", []).append((case, status, reasons, last))
    lines = [f"# Failing hostile-input cases against {moeq}", ""]
    for title, items in sections.items():
        lines += [f"## {title} ({len(items)})", ""]
        for case, status, reasons, last in items:
            short = "; ".join(dict.fromkeys(clean(x.split(" (stderr:")[0]) for x in reasons))
            observed = f"{last.describe()}: `{clean(key_line(last))[:220]}`" if last is not None else ""
            lines.append(f"- {'ERROR ' if status == 'ERROR' else ''}`{case.name}` — {observed}{' — ' if observed else ''}{short}")
        lines.append("")
    H.write(path, "\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("moeq")
    ap.add_argument("--only", action="append", default=[], help="run cases whose name contains SUBSTR (repeatable)")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--keep", action="store_true", help="keep every case directory (failed ones are always kept)")
    ap.add_argument("--jobs", type=int, default=2, help="cases run at once (scenario cases marked serial run alone)")
    ap.add_argument("--verbose", "-v", action="store_true", help="also print each case's last stderr line(s)")
    ap.add_argument("--report", metavar="FILE", help="write the failing cases, grouped by section, as Markdown to FILE")
    ap.add_argument("--timeout", type=float, default=15, help="default per-run timeout in seconds")
    args = ap.parse_args()
    import hostile_cases
    cases = hostile_cases.all_cases()
    names = [c.name for c in cases]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        sys.exit(f"duplicate case names: {sorted(duplicates)}")
    if args.only:
        cases = [c for c in cases if any(s in c.name for s in args.only)]
    if args.list:
        for c in cases:
            print(f"{c.group:9} {c.name}" + (f"  — {c.note}" if c.note else ""))
        print(f"{len(cases)} cases")
        return 0
    moeq = os.path.abspath(args.moeq)
    if not os.access(moeq, os.X_OK):
        sys.exit(f"{moeq} is not executable")
    root = tempfile.mkdtemp(prefix="moeq-hostile-")
    started = time.time()
    suite = Suite(moeq, root, args.timeout, args.keep)
    suite.base = Base(moeq, root)
    for e in suite.base.errors:
        print("BASE ERROR:", e)
    results = {}
    lock = threading.Lock()
    order = {id(c): i for i, c in enumerate(cases)}

    def one(case):
        t = time.time()
        status, reasons, last = suite.run_case(case, order[id(case)])
        with lock:
            results[case.name] = (case, status, reasons, last)
            line = f"{status:5} {case.name} ({time.time() - t:.1f} s)"
            text = "" if not reasons else ": " + "; ".join(reasons)
            text = re.sub(re.escape(root) + r"/\d{3}-[^/ ]*/", "", text).replace(root + "/", "")  # paths relative to the case dir
            print(line + text, flush=True)
            if args.verbose and last is not None and status == "PASS":
                print("      stderr: " + re.sub(re.escape(root) + r"/\d{3}-[^/ ]*/", "", H.tail(last.err, 300)), flush=True)

    parallel = [c for c in cases if not c.serial]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(one, parallel))
    for case in [c for c in cases if c.serial]:
        one(case)

    counts = collections.OrderedDict()
    for case in cases:
        _, status, _, _ = results[case.name]
        counts.setdefault(case.group, collections.Counter())[status] += 1
    print("\n%-10s %5s %5s %5s %5s %5s" % ("command", "cases", "PASS", "FAIL", "ERROR", "SKIP"))
    total = collections.Counter()
    for group, counter in counts.items():
        print("%-10s %5d %5d %5d %5d %5d" % (group, sum(counter.values()), counter["PASS"], counter["FAIL"], counter["ERROR"], counter["SKIP"]))
        total.update(counter)
    print("%-10s %5d %5d %5d %5d %5d" % ("total", sum(total.values()), total["PASS"], total["FAIL"], total["ERROR"], total["SKIP"]))
    print(f"{time.time() - started:.0f} s; case directories under {root}" + ("" if args.keep else " (passing ones removed)"))
    if args.report:
        write_report(args.report, cases, results, root, moeq)
    if not args.keep and total["FAIL"] + total["ERROR"] == 0:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if total["FAIL"] + total["ERROR"] else 0


if __name__ == "__main__":
    sys.exit(main())
