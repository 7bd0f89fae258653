"""Shared plumbing of the interop scripts: the moeq binary under test and failure bookkeeping."""
import os
import subprocess
import sys

MOEQ = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else ".build/debug/moeq")
failures = []


def check(condition, message):
    """Records (and prints) a failed expectation; the script exits non-zero at the end if any failed."""
    if not condition:
        failures.append(message)
        print("FAIL:", message)


def moeq(*args):
    """Runs the moeq binary under test, capturing its output."""
    return subprocess.run([MOEQ, *args], capture_output=True, text=True)


def finish(what):
    if failures:
        print(f"{len(failures)} {what} failures")
        sys.exit(1)
    print(f"{what}: all checks passed")
