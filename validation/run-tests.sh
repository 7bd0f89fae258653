#!/usr/bin/env bash
# Runs every moeq test on a fresh Debian 12 machine: installs what is missing (system libraries, a Python
# venv with safetensors, gguf and numpy from PyPI), builds, runs the Swift tests, then the Python interop checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# --- system packages (only the missing ones) ---
missing=()
command -v pkg-config >/dev/null || missing+=(pkg-config)
for pair in libzstd:libzstd-dev openblas:libopenblas-dev libxxhash:libxxhash-dev; do
  pkg-config --exists "${pair%%:*}" 2>/dev/null || missing+=("${pair##*:}")
done
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
fi

# --- style: the .swift-format rules (140 columns) hold everywhere ---
swift format lint --strict --recursive Sources Tests Package.swift

# --- Swift: build once, run every test target ---
swift build --build-tests --explicit-target-dependency-import-check error
swift test --skip-build

# --- Python interop (the safetensors package reads what we write and writes what we read) ---
venv=.build/interop-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import safetensors, numpy, gguf' 2>/dev/null || "$venv/bin/pip" install -q safetensors numpy gguf
"$venv/bin/python" validation/interop/check_safetensors.py .build/debug/moeq
"$venv/bin/python" validation/interop/check_gguf.py .build/debug/moeq

# --- moeq fit against llama-quantize's named mixes at their byte sizes (named mixes by moeq convert, bit-identical to
#     llama-quantize's; KLD by moeq validate). With the peers: validation/fit/check_fit.py MOEQ --llama-bin DIR ---
"$venv/bin/python" validation/fit/check_fit.py .build/debug/moeq --out "${TMPDIR:-/tmp}/moeq-fit-check"

# --- plan --html rendered in headless Chromium: every cell of the terminal table, every command, a marker per plan ---
if command -v chromium >/dev/null; then
  python3 validation/planner/check_html.py .build/debug/moeq --out "${TMPDIR:-/tmp}/moeq-plan-html"
else
  echo "validation/planner/check_html.py skipped: no chromium (apt-get install chromium to run it)"
fi

# --- crash safety: kill -9 at 12 points, then --resume must give the uninterrupted bytes ---
python3 validation/pipeline/kill_resume.py .build/debug/moeq

# --- hostile and careless input: every subcommand, corrupt inputs of every format, outputs aimed at inputs,
#     concurrent writers, signals, ENOSPC and read-only directories (mount cases skip with a reason where impossible) ---
python3 validation/hostile/run_suite.py .build/debug/moeq --jobs 2
