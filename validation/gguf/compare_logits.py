#!/usr/bin/env python3
"""Run llama.cpp (llama-cpp-python) on a GGUF with a fixture's reference.json tokens and compare the
logits with the fixture's logits.npy (transformers, float32, eager attention).

    /tmp/peers/venv-llama/bin/python validation/gguf/compare_logits.py GGUF FIXTURE_DIR [GGUF FIXTURE_DIR ...] [--kv f16|f32]

All 16 positions are evaluated in one batch (positions 0..15, no BOS added: reference.json's tokens
already start with BOS id 0), logits_all=True, flash_attn off, 2 threads. One JSON line per pair:

  max_abs_diff        max |L - R| over all 16 x 512 logits
  ref_max_abs         max |R|
  max_rel_err         max_abs_diff / ref_max_abs  (error relative to the logit scale)
  max_row_rel_l2      max over positions of ||L_i - R_i||_2 / ||R_i||_2
  top1_agree          positions where argmax L_i == argmax R_i (of 16)
  kld_mean, kld_max   KL(softmax R || softmax L) per position, float64
  tokenize_matches    llama.cpp's tokenizer on reference.json's "text" == tokens[1:] (first 15 ids)
"""
import argparse
import json
import os

import numpy as np
import llama_cpp

GGML_TYPE = {"f16": 1, "f32": 0}


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def compare(gguf_path, fixture, kv):
    ref = json.load(open(os.path.join(fixture, "reference.json")))
    R = np.load(os.path.join(fixture, "logits.npy")).astype(np.float32)
    toks = list(ref["tokens"])
    llm = llama_cpp.Llama(gguf_path, n_ctx=64, n_batch=64, logits_all=True, n_threads=2, flash_attn=False,
                          type_k=GGML_TYPE[kv], type_v=GGML_TYPE[kv], verbose=False)
    llm.eval(toks)
    L = np.array(llm.scores[:len(toks)], dtype=np.float32)
    d = np.abs(L - R)
    lr, ll = log_softmax(R), log_softmax(L)
    kl = (np.exp(lr) * (lr - ll)).sum(-1)
    enc = llm.tokenize(ref["text"].encode("utf-8"), add_bos=False, special=False)
    return {"gguf": os.path.basename(gguf_path), "fixture": os.path.basename(os.path.normpath(fixture)), "kv_cache": kv,
            "max_abs_diff": float(d.max()), "ref_max_abs": float(np.abs(R).max()),
            "max_rel_err": float(d.max() / np.abs(R).max()),
            "max_row_rel_l2": float((np.linalg.norm(L - R, axis=1) / np.linalg.norm(R, axis=1)).max()),
            "top1_agree": f"{int((L.argmax(-1) == R.argmax(-1)).sum())}/{len(toks)}",
            "kld_mean": float(kl.mean()), "kld_max": float(kl.max()),
            "tokenize_matches": enc[:len(toks) - 1] == toks[1:]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pairs", nargs="+", help="GGUF FIXTURE_DIR [GGUF FIXTURE_DIR ...]")
    ap.add_argument("--kv", choices=["f16", "f32"], default="f32", help="KV cache type (llama.cpp default is f16)")
    a = ap.parse_args()
    if len(a.pairs) % 2:
        ap.error("need GGUF FIXTURE_DIR pairs")
    for g, f in zip(a.pairs[::2], a.pairs[1::2]):
        print(json.dumps(compare(g, f, a.kv)), flush=True)


if __name__ == "__main__":
    main()
