#!/usr/bin/env bash
# Validation benchmark, one run on one machine, 2 threads each: `moeq validate` (base and quant forward passes,
# exact and llama-cpu arithmetic) against `llama-perplexity --kl-divergence` (quant only; its base comes from the
# --kl-divergence-base file made first) on moeq's Q8_0 / Q6_K / Q4_K_M GGUFs of the bundled trained model, over
# the held-out KJV text (83 chunks x 256). Prints wall seconds and tokens/s of each, and the KLD of both tools
# (validation/gguf/kld_vs_llama.py does the work and also checks the KLD ordering and the 5 % agreement).
#
# Usage: Benchmarks/validate_vs_llamacpp.sh [extra kld_vs_llama.py flags]
# Needs: a release build of moeq and the llama.cpp peers (/work/shared/peers/setup_peers.sh /tmp/peers).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 validation/gguf/kld_vs_llama.py --fixture validation/fixtures/trained-qwen3_moe_wide \
    --recipes Q8_0,Q6_K,Q4_K_M --llama-bin "${LLAMA_BIN:-/tmp/peers/llama-build/bin}" "$@"
