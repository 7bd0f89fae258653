#!/usr/bin/env python3
"""Reference GGUF layouts for the architectures moeq plans but does not convert (gpt_oss, glm4_moe).

For each: a tiny random model is built with transformers (GptOssForCausalLM / Glm4MoeForCausalLM, BF16,
save_pretrained), given the qwen3_moe fixture's tokenizer, and converted by llama.cpp's own
convert_hf_to_gguf.py (through validation/gguf/convert_unknown_pre.py, which only replaces an unknown
pre-tokenizer hash by "gpt-2") with --outtype f16. The converter's output header — metadata keys, tensor
names, ggml shapes, types and byte sizes — is written to validation/planner/<arch>.json together with the
config.json it came from. Nothing of moeq runs here.

    /tmp/venv-fix/bin/python validation/planner/make_llamacpp_layouts.py
"""
import json
import os
import shutil
import subprocess
import sys

import torch
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LLAMA = os.environ.get("LLAMA_CPP_DIR", "/tmp/peers/llama_cpp_python-0.3.36/vendor/llama.cpp")
sys.path[:0] = [os.path.join(LLAMA, "gguf-py")]
import gguf  # noqa: E402  (llama.cpp's gguf-py, the converter's own reader)

TOKENIZER = os.path.join(ROOT, "validation/fixtures/qwen3_moe-f32")

MODELS = {
    "gpt_oss": (transformers.GptOssConfig, transformers.GptOssForCausalLM, dict(
        hidden_size=64, intermediate_size=64, num_hidden_layers=4, num_local_experts=4, num_experts_per_tok=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=8, max_position_embeddings=4096,
        layer_types=["sliding_attention", "full_attention"] * 2, rope_theta=150000.0,
        rope_scaling={"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0, "truncate": False,
                      "original_max_position_embeddings": 4096},
        vocab_size=512, tie_word_embeddings=False)),
    "glm4_moe": (transformers.Glm4MoeConfig, transformers.Glm4MoeForCausalLM, dict(
        hidden_size=64, intermediate_size=128, moe_intermediate_size=32, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, partial_rotary_factor=0.5, attention_bias=True, use_qk_norm=False,
        n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2, first_k_dense_replace=1, n_group=1, topk_group=1,
        routed_scaling_factor=1.0, norm_topk_prob=True, num_nextn_predict_layers=1, vocab_size=512,
        max_position_embeddings=4096, rope_theta=1000000.0, tie_word_embeddings=False)),
}


def build(arch, work):
    config_class, model_class, kwargs = MODELS[arch]
    torch.manual_seed(0)
    config = config_class(**kwargs)
    model = model_class(config).to(torch.bfloat16)
    directory = os.path.join(work, arch)
    shutil.rmtree(directory, ignore_errors=True)
    model.save_pretrained(directory)
    if arch == "glm4_moe":
        # transformers does not instantiate the MTP layer; the release stores it as layer N. Add its tensors
        # (full decoder layer + enorm/hnorm/eh_proj/shared_head.norm) so the converter sees a release layout.
        from safetensors.torch import load_file, save_file
        path = os.path.join(directory, "model.safetensors")
        tensors = load_file(path)
        n, h = config.num_hidden_layers, config.hidden_size
        last = f"model.layers.{n - 1}."
        for name in [k for k in tensors if k.startswith(last)]:
            tensors[name.replace(last, f"model.layers.{n}.")] = tensors[name].clone()
        for name, shape in [("enorm.weight", [h]), ("hnorm.weight", [h]), ("eh_proj.weight", [h, 2 * h]),
                            ("shared_head.norm.weight", [h])]:
            tensors[f"model.layers.{n}.{name}"] = torch.ones(shape, dtype=torch.bfloat16)
        save_file(tensors, path, metadata={"format": "pt"})
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOKENIZER, name), directory)
    if arch == "glm4_moe":
        # llama.cpp's GLM vocab step looks up GLM's chat specials by name; give the tiny tokenizer those four.
        from tokenizers import Tokenizer
        path = os.path.join(directory, "tokenizer.json")
        tokenizer = Tokenizer.from_file(path)
        tokenizer.add_special_tokens(["<|endoftext|>", "[gMASK]", "<|user|>", "<|observation|>"])
        assert tokenizer.get_vocab_size() <= config.vocab_size
        tokenizer.save(path)
    return directory


def layout(arch, directory, work):
    out = os.path.join(work, arch + "-f16.gguf")
    command = [sys.executable, os.path.join(ROOT, "validation/gguf/convert_unknown_pre.py"), directory,
               "--outtype", "f16", "--outfile", out]
    subprocess.run(command, check=True, capture_output=True)
    reader = gguf.GGUFReader(out)
    metadata = {}
    for field in reader.fields.values():
        if field.name.startswith("tokenizer.") or field.name.startswith("GGUF."):
            continue
        value = field.contents()
        metadata[field.name] = value
    tensors = [{"name": t.name, "type": t.tensor_type.name, "ne": [int(x) for x in t.shape], "nbytes": int(t.n_bytes)}
               for t in reader.tensors]
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    return {
        "arch": arch, "made_by": "validation/planner/make_llamacpp_layouts.py",
        "converter_command": "convert_unknown_pre.py <tiny " + arch + "> --outtype f16 (llama.cpp vendored in llama-cpp-python 0.3.36)",
        "transformers": transformers.__version__, "file_bytes": os.path.getsize(out),
        "config": config, "metadata": metadata, "tensors": tensors,
    }


def main():
    work = "/tmp/moeq-planner-layouts"
    os.makedirs(work, exist_ok=True)
    for arch in MODELS:
        directory = build(arch, work)
        doc = layout(arch, directory, work)
        with open(os.path.join(HERE, arch + ".json"), "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True, default=str)
            f.write("\n")
        print(arch, len(doc["tensors"]), "tensors,", doc["file_bytes"], "bytes")


if __name__ == "__main__":
    main()
