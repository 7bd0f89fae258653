#!/usr/bin/env python3
"""Run llama.cpp's convert_hf_to_gguf.py unmodified, with one change of behaviour: when the BPE
pre-tokenizer hash of the tokenizer is not in llama.cpp's table (TextModel.get_vocab_base_pre raises
NotImplementedError "BPE pre-tokenizer was not recognized"), write tokenizer.ggml.pre =
$LLAMA_REF_TOKPRE (default "gpt-2", the name llama.cpp maps to LLAMA_VOCAB_PRE_TYPE_GPT2, i.e. the
GPT-2 split regex that a `tokenizers` ByteLevel(use_regex=True) pre-tokenizer uses) instead of failing.
Known hashes behave exactly as upstream. One more: DeepseekV32Model.set_vocab (which asserts add_bos_token, never
set by transformers 5.24 for tokenizer.json tokenizers) uses the GPT-2 vocabulary path. No llama.cpp file is copied
or edited: the methods are replaced in memory, then the converter runs as __main__.

    /tmp/venv-fix/bin/python validation/gguf/convert_unknown_pre.py <convert_hf_to_gguf.py args...>

$LLAMA_CPP_DIR = llama.cpp source tree (default: the one vendored in llama-cpp-python 0.3.36 under /tmp/peers).
"""
import logging
import os
import runpy
import sys

LLAMA = os.environ.get("LLAMA_CPP_DIR", "/tmp/peers/llama_cpp_python-0.3.36/vendor/llama.cpp")
sys.path[:0] = [LLAMA, os.path.join(LLAMA, "gguf-py")]
FALLBACK = os.environ.get("LLAMA_REF_TOKPRE", "gpt-2")

from conversion import base  # noqa: E402  (llama.cpp's conversion package)

_orig = base.TextModel.get_vocab_base_pre


def _get_vocab_base_pre(self, tokenizer):
    try:
        return _orig(self, tokenizer)
    except NotImplementedError:
        logging.getLogger("convert_unknown_pre").warning(
            "unknown BPE pre-tokenizer hash -> using tokenizer.ggml.pre = %r", FALLBACK)
        return FALLBACK


base.TextModel.get_vocab_base_pre = _get_vocab_base_pre

# DeepseekV32Model.set_vocab asserts the tokenizer's add_bos_token, which transformers 5.24 never reports for a
# tokenizer.json-backed tokenizer (it pops the setting): the transformers-made fixture gets the GPT-2 style vocabulary
# every other DeepSeek fixture gets.
from conversion import deepseek  # noqa: E402

if hasattr(deepseek, "DeepseekV32Model"):
    deepseek.DeepseekV32Model.set_vocab = lambda self: self._set_vocab_gpt2()
sys.argv = [os.path.join(LLAMA, "convert_hf_to_gguf.py")] + sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
