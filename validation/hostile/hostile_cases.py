"""The case table of run_suite.py. Each Case builds its hostile input inside its own directory (c.p(...)),
registers every input (c.fixture / c.art / c.mk / c.inp: hashed before and after), and returns moeq's argv;
`rc` is the expected exit code (a tuple allows several), `err` the culprit substrings stderr must contain
(case-insensitive; a tuple = any of them). Scenario cases (signals, concurrency, ENOSPC) run themselves.
Sections follow the issue's findings; the last ones are broad mutation coverage per format."""
import json
import os
import struct

import hostile_lib as H
from hostile_lib import DS, MX, Q, QS, Case, Raw, absent, convert, model, out, replaced_by, st_of, text, toks, verified
from hostile_scenarios import scenario_cases

CASES = []


def add(name, group, build, **kw):
    CASES.append(Case(name, group, build, **kw))


# ================================================================== 1. config.json numbers (crashes, "inspect accepts them all")
H.section("1. config.json numbers")

ABSURD = [("layers=1e8", "num_hidden_layers", 100000000), ("hidden=2^40", "hidden_size", 2 ** 40),
          ("moe_ffn=1e12", "moe_intermediate_size", 10 ** 12), ("head_dim=2^62", "head_dim", 2 ** 62),
          ("experts=1e12", "num_local_experts", 10 ** 12), ("vocab=1e12", "vocab_size", 10 ** 12),
          ("experts=2^62", "num_local_experts", 2 ** 62), ("heads=2^40", "num_attention_heads", 2 ** 40)]
CONFIG_COMMANDS = [
    ("inspect", "inspect", lambda c, d: ["inspect", d], None),
    ("convert", "convert", lambda c, d: convert(d, out(c)), absent("out.gguf")),
    ("plan", "plan-dir", lambda c, d: ["plan", d], None),
    ("plan", "plan-config", lambda c, d: ["plan", os.path.join(d, "config.json")], None),
    ("eval", "eval", lambda c, d: ["eval", d, "--tokens", toks(c)], None),
]
SUFFIX = {"plan-dir": " (checkpoint dir)", "plan-config": " (config.json path)", "inspect": "", "convert": "", "eval": ""}
for label, key, value in ABSURD:
    for group, how, command, post in CONFIG_COMMANDS:
        add(f"{group}/config {label}" + SUFFIX[how], group, lambda c, key=key, value=value, command=command: command(c, model(c, cfg={key: value})),
            err=["config.json", key], post=post)

EXTRA_CONFIG = [  # (fixture, label, changes, key, commands)
    (Q, "num_key_value_heads=0", {"num_key_value_heads": 0}, "num_key_value_heads", ("convert", "eval", "plan-config")),
    (Q, "num_attention_heads=0", {"num_attention_heads": 0}, "num_attention_heads", ("inspect", "eval")),
    (Q, "hidden_size=0", {"hidden_size": 0}, "hidden_size", ("inspect", "convert")),
    (Q, "vocab_size=0", {"vocab_size": 0}, "vocab_size", ("eval",)),
    (Q, "rope_theta=-1", {"rope_theta": -1.0}, "rope_theta", ("inspect",)),
    (Q, "rms_norm_eps=-1", {"rms_norm_eps": -1.0}, "rms_norm_eps", ("inspect",)),
    (Q, "hidden_size=64.5", {"hidden_size": 64.5}, "hidden_size", ("inspect",)),
    (Q, "vocab_size=\"512\"", {"vocab_size": "512"}, "vocab_size", ("inspect",)),
    (Q, "moe_intermediate_size=1e12 literal", {"moe_intermediate_size": Raw("1e12")}, "moe_intermediate_size", ("inspect",)),
    (Q, "mlp_only_layers=[-1,1e9]", {"mlp_only_layers": [-1, 10 ** 9]}, "mlp_only_layers", ("inspect",)),
    (Q, "bos_token_id=2^40", {"bos_token_id": 2 ** 40}, "bos_token_id", ("convert",)),
    (Q, "bos_token_id=-1", {"bos_token_id": -1}, "bos_token_id", ("convert",)),
    (DS, "n_group=0", {"n_group": 0}, "n_group", ("inspect", "eval")),
    (DS, "topk_group>n_group", {"topk_group": 5}, "topk_group", ("eval",)),
    (DS, "kv_lora_rank=2^40", {"kv_lora_rank": 2 ** 40}, "kv_lora_rank", ("convert",)),
    (DS, "qk_rope_head_dim=2^40", {"qk_rope_head_dim": 2 ** 40}, "qk_rope_head_dim", ("eval",)),
    (DS, "n_routed_experts=2^62", {"n_routed_experts": 2 ** 62}, "n_routed_experts", ("inspect",)),
    (DS, "first_k_dense_replace=2^62", {"first_k_dense_replace": 2 ** 62}, "first_k_dense_replace", ("convert",)),
    (DS, "rope factor=-4", {"rope_parameters/factor": -4.0}, "factor", ("inspect",)),
    (MX, "intermediate_size=2^40", {"intermediate_size": 2 ** 40}, "intermediate_size", ("convert",)),
    (MX, "num_local_experts=1e12", {"num_local_experts": 10 ** 12}, "num_local_experts", ("plan-config",)),
]
COMMANDS_BY_NAME = {how: (group, command, post) for group, how, command, post in CONFIG_COMMANDS}
for fixture, label, changes, key, hows in EXTRA_CONFIG:
    for how in hows:
        group, command, post = COMMANDS_BY_NAME[how]
        add(f"{group}/config {fixture.split('-')[0]} {label}" + SUFFIX[how], group,
            lambda c, f=fixture, ch=changes, command=command: command(c, model(c, f, cfg=ch)), err=["config.json", key], post=post)

# unknown scoring_func silently became sigmoid
for how in ("inspect", "convert", "eval"):
    group, command, post = COMMANDS_BY_NAME[how]
    add(f"{how}/config deepseek scoring_func=tanh", group, lambda c, command=command: command(c, model(c, DS, cfg={"scoring_func": "tanh"})),
        err=["config.json", "scoring_func"], post=post)

# config JSON errors must name the file
for how in ("inspect", "convert", "eval", "plan-config"):
    group, command, post = COMMANDS_BY_NAME[how]
    add(f"{group}/config.json not JSON" + SUFFIX[how], group,
        lambda c, command=command: command(c, (lambda d: (H.write(os.path.join(d, "config.json"), b'{"model_type": "qwen3_moe", "hidden_size": 6'), d)[1])(model(c))),
        err=["config.json"], post=post)
add("inspect/config.json nested 100000 deep", "inspect",
    lambda c: ["inspect", (lambda d: (H.write(os.path.join(d, "config.json"), "[" * 100000 + "]" * 100000), d)[1])(model(c))], err=["config.json"])
add("convert/config.json missing", "convert", lambda c: convert((lambda d: (os.remove(os.path.join(d, "config.json")), d)[1])(model(c)), out(c)),
    err=["config.json", "No such file"], post=absent("out.gguf"))

# ================================================================== 2. the engine trusts config.json / tensor shapes
H.section("2. tensor shapes vs config.json (engine trusts the config)")

def transposed_q(c, fixture=Q):
    d = model(c, fixture)
    H.st_edit(st_of(d), lambda h, _: h["model.layers.0.self_attn.q_proj.weight"].__setitem__("shape", [64, 96]))
    return d


def no_lm_head(c):
    d = model(c)
    H.st_drop(st_of(d), "lm_head.weight")
    return d


SHAPE_MISMATCH = [  # label, builder, culprit alternatives
    ("experts=16", lambda c: model(c, cfg={"num_local_experts": 16}), ("experts", "mlp.gate")),
    ("experts=4", lambda c: model(c, cfg={"num_local_experts": 4}), ("experts", "mlp.gate")),
    ("heads=5", lambda c: model(c, cfg={"num_attention_heads": 5}), ("q_proj", "num_attention_heads", "o_proj")),
    ("head_dim=32", lambda c: model(c, cfg={"head_dim": 32}), ("q_proj", "head_dim", "k_proj")),
    ("layers=0", lambda c: model(c, cfg={"num_hidden_layers": 0}), ("num_hidden_layers", "layers.0")),
    ("layers=2", lambda c: model(c, cfg={"num_hidden_layers": 2}), ("num_hidden_layers", "layers.2")),
    ("vocab=100", lambda c: model(c, cfg={"vocab_size": 100}), ("vocab_size", "embed_tokens", "lm_head")),
    ("q_proj transposed", transposed_q, ("q_proj",)),
    ("lm_head missing (untied)", no_lm_head, ("lm_head",)),
    ("mixtral experts=16", lambda c: model(c, MX, cfg={"num_local_experts": 16}), ("experts", "gate")),
]
for label, builder, culprit in SHAPE_MISMATCH:
    add(f"eval/shape {label}", "eval", lambda c, b=builder: ["eval", b(c), "--tokens", toks(c)], err=[culprit])
for label, builder, culprit in SHAPE_MISMATCH[:3] + SHAPE_MISMATCH[7:9]:
    add(f"imatrix/shape {label}", "imatrix", lambda c, b=builder: ["imatrix", b(c), "--text", text(c), "--ctx", "16", "-o", out(c, "im.gguf")],
        err=[culprit], post=absent("im.gguf"))
for label, builder, culprit in (SHAPE_MISMATCH[0], SHAPE_MISMATCH[4], SHAPE_MISMATCH[7]):
    add(f"validate/base shape {label}", "validate",
        lambda c, b=builder: ["validate", c.art("q.gguf"), "--base", b(c), "--tokens", toks(c, " ".join(str(i) for i in range(40))), "--ctx", "16"],
        err=[culprit])
add("validate/--base of another model (mixtral for a qwen3 GGUF)", "validate",
    lambda c: ["validate", c.art("q.gguf"), "--base", model(c, MX), "--text", text(c), "--ctx", "32"], err=[("q.gguf", "--base", "mixtral")])
add("validate/quant dir with experts=16 config", "validate",
    lambda c: ["validate", model(c, cfg={"num_local_experts": 16}, name="quant"), "--base", model(c), "--text", text(c), "--ctx", "32"],
    err=["experts"])
add("dump/q_proj transposed", "dump", lambda c: ["dump", transposed_q(c), "model.layers.0.self_attn.q_proj.weight", "-o", out(c, "q.npy")],
    err=["q_proj"], post=absent("q.npy"))
add("plan/checkpoint with q_proj transposed", "plan", lambda c: ["plan", transposed_q(c)], err=["q_proj"])
add("convert/q_proj transposed", "convert", lambda c: convert(transposed_q(c), out(c)), err=["q_proj"], post=absent("out.gguf"))
add("convert/config experts=16 (tensors have 8)", "convert", lambda c: convert(model(c, cfg={"num_local_experts": 16}), out(c)),
    err=["experts"], post=absent("out.gguf"))

# ================================================================== 3. config and checkpoint disagree, silently
H.section("3. config and checkpoint disagree silently")

def extra_tensor(name, shape=(64,)):
    def build(c):
        d = model(c)
        n = 1
        for s in shape:
            n *= s
        H.st_add(st_of(d), name, "F32", list(shape), b"\0" * (4 * n))
        return d
    return build


DISAGREE = [("config layers=1 < tensors", lambda c: model(c, cfg={"num_hidden_layers": 1}), ("num_hidden_layers", "layers.1")),
            ("lm_head missing (untied)", no_lm_head, ("lm_head",)),
            ("unknown experts.99", extra_tensor("model.layers.0.mlp.experts.99.gate_proj.weight", (32, 64)), ("experts.99",)),
            ("unknown layers.7", extra_tensor("model.layers.7.input_layernorm.weight"), ("layers.7",)),
            ("unknown name mlp.foo", extra_tensor("model.layers.0.mlp.foo.weight"), ("mlp.foo",))]
for label, builder, culprit in DISAGREE:
    add(f"convert/{label}", "convert", lambda c, b=builder: convert(b(c), out(c)), err=[culprit], post=absent("out.gguf"))
add("eval/unknown tensor experts.99", "eval", lambda c: ["eval", DISAGREE[2][1](c), "--tokens", toks(c)], err=["experts.99"])
add("convert/sharded: shard holds a tensor the index lacks", "convert",
    lambda c: convert((lambda d: (H.st_add(os.path.join(d, "model-00005-of-00005.safetensors"), "model.extra.weight", "BF16", [4], b"\0" * 8), d)[1])(model(c, QS)), out(c)),
    err=["model-00005-of-00005.safetensors", "model.extra.weight"], post=absent("out.gguf"))

# ================================================================== 4. outputs aimed at inputs / overwrite policy
H.section("4. output policy: outputs onto inputs, --force, moeq's own outputs")

def link(c, name, target, hard=False):
    p = c.p(name)
    (os.link if hard else os.symlink)(target, p)
    return p


OUT_ON_INPUT = [  # name, group, build -> argv, culprit
    ("eval/--logits-out MODEL/config.json", "eval", lambda c: ["eval", model(c), "--tokens", toks(c), "--logits-out", c.p("model", "config.json")], "config.json"),
    ("eval/--logits-out MODEL/tokenizer.json (--text)", "eval", lambda c: ["eval", model(c), "--text", text(c), "--logits-out", c.p("model", "tokenizer.json")], "tokenizer.json"),
    ("eval/--logits-out the --tokens file", "eval", lambda c: ["eval", model(c), "--tokens", toks(c), "--logits-out", c.p("tok.txt")], "tok.txt"),
    ("eval/--logits-out MODEL/./../model/config.json", "eval", lambda c: ["eval", model(c), "--tokens", toks(c), "--logits-out", c.p("model", ".", "..", "model", "config.json")], "config.json"),
    ("eval/--logits-out symlink to config.json", "eval", lambda c: ["eval", model(c), "--tokens", toks(c), "--logits-out", link(c, "l.npy", c.p("model", "config.json"))], "config.json"),
    ("eval/--logits-out hard link of config.json", "eval", lambda c: ["eval", model(c), "--tokens", toks(c), "--logits-out", link(c, "l.npy", c.p("model", "config.json"), True)], ("config.json", "l.npy")),
    ("validate/--save-base-logits MODEL/tokenizer.json", "validate", lambda c: ["validate", c.art("q.gguf"), "--base", model(c), "--text", text(c), "--ctx", "32", "--save-base-logits", c.p("model", "tokenizer.json")], "tokenizer.json"),
    ("validate/--save-base-logits the quant GGUF", "validate", lambda c: ["validate", c.art("q.gguf"), "--base", model(c), "--text", text(c), "--ctx", "32", "--save-base-logits", c.p("q.gguf")], "q.gguf"),
    ("validate/--save-base-logits the --text file", "validate", lambda c: ["validate", c.art("q.gguf"), "--base", model(c), "--text", text(c), "--ctx", "32", "--save-base-logits", c.p("t.txt")], "t.txt"),
    ("validate/--shard -o the quant GGUF", "validate", lambda c: ["validate", c.art("q.gguf"), "--base", model(c), "--text", text(c), "--ctx", "32", "--shard", "1/2", "-o", c.p("q.gguf")], "q.gguf"),
    ("plan/--svg MODEL/config.json", "plan", lambda c: ["plan", model(c), "--target", "rtx4090+64gb", "--svg", c.p("model", "config.json")], "config.json"),
    ("plan/--html MODEL/config.json", "plan", lambda c: ["plan", model(c), "--target", "rtx4090+64gb", "--html", c.p("model", "config.json")], "config.json"),
    ("plan/--svg the --routing imatrix", "plan", lambda c: ["plan", model(c), "--target", "rtx4090+64gb", "--routing", c.art("im.gguf"), "--svg", c.p("im.gguf")], "im.gguf"),
    ("plan/--svg the --targets-file", "plan", lambda c: ["plan", model(c), "--target", "rtx4090+64gb", "--targets-file", c.mk("t.json", H.read(os.path.join(c.fixtures, "..", "..", "formats", "hardware", "targets.json"))), "--svg", c.p("t.json")], "t.json"),
    ("dump/-o a shard of the source", "dump", lambda c: ["dump", model(c, QS), "model.norm.weight", "-o", c.p("model", "model-00001-of-00005.safetensors")], "model-00001-of-00005.safetensors"),
    ("dump/-o the single-file source", "dump", lambda c: ["dump", st_of(model(c)), "model.norm.weight", "-o", st_of(c.p("model"))], "model.safetensors"),
    ("dump/-o the GGUF it reads", "dump", lambda c: ["dump", c.art("q.gguf"), "output_norm.weight", "-o", c.p("q.gguf")], "q.gguf"),
    ("convert/-o the --imatrix file", "convert", lambda c: convert(model(c), c.p("im.gguf"), "Q4_K_M", "--imatrix", c.art("im.gguf")), "im.gguf"),
    ("convert/-o the --recipe-file (named r.gguf)", "convert", lambda c: ["convert", model(c), "-o", c.p("r.gguf"), "--recipe-file", c.mk("r.gguf", json.dumps({"format": "moeq recipe 1", "base": "Q8_0"}))], "r.gguf"),
    ("convert/-o symlink to MODEL/model.safetensors", "convert", lambda c: convert(model(c), link(c, "evil.gguf", st_of(c.p("model")))), "model.safetensors"),
    ("convert/--format safetensors -o the source dir", "convert", lambda c: ["convert", model(c), "--format", "safetensors", "--recipe", "F32", "-o", c.p("model")], "model"),
    ("merge/-o one of its own parts", "merge", lambda c: ["merge", c.art("m.gguf.part-1-of-2"), c.art("m.gguf.part-2-of-2"), "-o", c.p("m.gguf.part-1-of-2")], "part-1-of-2"),
    ("imatrix/-o the --text file", "imatrix", lambda c: ["imatrix", model(c), "--text", text(c), "--ctx", "32", "-o", c.p("t.txt")], "t.txt"),
    ("imatrix/-o MODEL/config.json", "imatrix", lambda c: ["imatrix", model(c), "--text", text(c), "--ctx", "32", "-o", c.p("model", "config.json")], "config.json"),
    ("pack/-o the source dir", "pack", lambda c: ["pack", model(c), "-o", c.p("model")], "model"),
    ("unpack/-o the archive dir", "unpack", lambda c: ["unpack", c.art("packd"), "-o", c.p("packd")], "packd"),
    ("pipeline/output = an input (source's safetensors)", "pipeline", lambda c: ["pipeline", c.mk("r.json", json.dumps({"format": "moeq recipe 1", "base": "Q8_0", "source": model(c), "output": st_of(c.p("model"))}))], "model.safetensors"),
    ("pipeline/output = the recipe's imatrix", "pipeline", lambda c: ["pipeline", c.mk("r.json", json.dumps({"format": "moeq recipe 1", "base": "Q4_K_M", "source": model(c), "imatrix": c.art("im.gguf"), "output": c.p("im.gguf")}))], "im.gguf"),
]
for name, group, build, culprit in OUT_ON_INPUT:
    add(name, group, build, err=[culprit])


def existing(c, name, data=b"precious user data, not written by moeq\n"):
    return c.protect(H.write(c.p(name), data))


def existing_dir(c, name):
    d = c.p(name)
    H.write(os.path.join(d, "notes.txt"), "a user's directory\n")
    return c.protect(d)


FORCE = [  # name, group, build(c, force) -> argv, output name, prefix of a replaced file (None for directories)
    ("eval/--logits-out over a user file", "eval", lambda c, f: ["eval", model(c), "--tokens", toks(c), "--logits-out", existing(c, "l.npy")] + f, "l.npy", b"\x93NUMPY"),
    ("dump/-o over a user file", "dump", lambda c, f: ["dump", model(c), "model.norm.weight", "-o", existing(c, "x.npy")] + f, "x.npy", b"\x93NUMPY"),
    ("convert/-o over a user file", "convert", lambda c, f: convert(model(c), existing(c, "x.gguf")) + f, "x.gguf", b"GGUF"),
    ("merge/-o over a user file", "merge", lambda c, f: ["merge", c.art("m.gguf.part-1-of-2"), c.art("m.gguf.part-2-of-2"), "-o", existing(c, "x.gguf")] + f, "x.gguf", b"GGUF"),
    ("imatrix/-o over a user file", "imatrix", lambda c, f: ["imatrix", model(c), "--text", text(c), "--ctx", "32", "-o", existing(c, "x.gguf")] + f, "x.gguf", b"GGUF"),
    ("validate/--save-base-logits over a user file", "validate", lambda c, f: ["validate", c.art("q.gguf"), "--base", model(c), "--text", text(c), "--ctx", "32", "--save-base-logits", existing(c, "bl.bin")] + f, "bl.bin", b"MOEQBL01"),
    ("validate/--shard -o over a user file", "validate", lambda c, f: ["validate", c.art("q.gguf"), "--base", model(c), "--text", text(c), "--ctx", "32", "--shard", "1/2", "-o", existing(c, "part.bin")] + f, "part.bin", b"MOEQVP01"),
    ("plan/--svg over a user file", "plan", lambda c, f: ["plan", model(c), "--target", "rtx4090+64gb", "--svg", existing(c, "p.svg")] + f, "p.svg", b"<"),
    ("plan/--html over a user file", "plan", lambda c, f: ["plan", model(c), "--target", "rtx4090+64gb", "--html", existing(c, "p.html")] + f, "p.html", b"<"),
    ("pipeline/output over a user file", "pipeline", lambda c, f: ["pipeline", c.mk("r.json", json.dumps({"format": "moeq recipe 1", "base": "Q8_0", "source": model(c), "output": existing(c, "x.gguf")}))] + f, "x.gguf", b"GGUF"),
    ("synth/--out a user directory", "synth", lambda c, f: ["synth", "--arch", "qwen3_moe", "--preset", "tiny", "--out", existing_dir(c, "d")] + f, "d", None),
    ("unpack/-o a user directory", "unpack", lambda c, f: ["unpack", c.art("packd"), "-o", existing_dir(c, "d")] + f, "d", None),
    ("pack/-o a user directory", "pack", lambda c, f: ["pack", model(c), "-o", existing_dir(c, "d")] + f, "d", None),
    ("convert/--format safetensors -o another model's dir", "convert", lambda c, f: ["convert", model(c), "--format", "safetensors", "--recipe", "F32", "-o", c.protect(H.copytree(os.path.join(c.fixtures, MX), c.p("d")))] + f, "d", None),
]
for name, group, build, o, prefix in FORCE:
    add(f"{name}: refused without --force", group, lambda c, b=build: b(c, []), err=["--force", o])
    if prefix is not None:
        def forced(c, b=build, o=o):
            argv = b(c, ["--force"])
            c.protected.clear()  # --force replaces it: that is the point
            return argv
        add(f"{name}: --force replaces it", group, forced, rc=0, post=replaced_by(o, prefix))

MOEQ_REWRITE = [  # outputs written earlier by moeq may be replaced without --force
    ("convert/-o an earlier moeq GGUF (with manifest)", "convert", lambda c: convert(model(c), c.art("q.gguf", as_name="o.gguf", register=False), "Q4_0"), verified("o.gguf")),
    ("synth/--out a directory synth wrote before", "synth", lambda c: (c.moeq_ok("synth", "--arch", "qwen3_moe", "--preset", "tiny", "--out", c.p("s")), ["synth", "--arch", "qwen3_moe", "--preset", "tiny", "--seed", "3", "--out", c.p("s")])[1], None),
    ("convert/--format safetensors twice into one dir", "convert", lambda c: (lambda d: (c.moeq_ok("convert", d, "--format", "safetensors", "--recipe", "F32", "-o", c.p("st")), ["convert", d, "--format", "safetensors", "--recipe", "BF16", "-o", c.p("st")])[1])(model(c)), None),
    ("unpack/-o a directory unpack wrote before", "unpack", lambda c: (lambda a: (c.moeq_ok("unpack", a, "-o", c.p("u")), ["unpack", a, "-o", c.p("u")])[1])(c.art("packd")), None),
    ("synth/--out an empty directory", "synth", lambda c: (os.makedirs(c.p("empty")), ["synth", "--arch", "qwen3_moe", "--preset", "tiny", "--out", c.p("empty")])[1], None),
]
for name, group, build, post in MOEQ_REWRITE:
    add(name, group, build, rc=0, post=post)
add("synth/--out an existing regular file", "synth", lambda c: ["synth", "--arch", "qwen3_moe", "--preset", "tiny", "--out", existing(c, "f")], err=["f"])

# ================================================================== 5. degenerate work is an error
H.section("5. degenerate work")

DEGENERATE = [
    ("eval/--text empty file", "eval", lambda c: ["eval", model(c), "--text", c.mk("empty.txt", b"")], ("empty.txt", "token")),
    ("eval/--tokens empty file", "eval", lambda c: ["eval", model(c), "--tokens", c.mk("empty.txt", b"")], ("empty.txt", "token")),
    ("eval/--tokens one id (nothing to score)", "eval", lambda c: ["eval", model(c), "--tokens", toks(c, "5")], ("tok.txt", "token")),
    ("eval/tokenizer with empty vocab", "eval", lambda c: ["eval", (lambda d: (H.edit_json(os.path.join(d, "tokenizer.json"), lambda t: (t["model"].update(vocab={}, merges=[]), t.update(added_tokens=[]))), d)[1])(model(c)), "--text", text(c)], ("tokenizer.json",)),
    ("eval/tokenizer missing the byte tokens the text needs", "eval", lambda c: ["eval", (lambda d: (H.edit_json(os.path.join(d, "tokenizer.json"), lambda t: [t["model"]["vocab"].pop(k) for k in ("Q", "q", "Z", "z")]), d)[1])(model(c)), "--text", c.mk("q.txt", "Quiz Zazzle quiz QQQ zzz\n" * 4)], ("tokenizer.json",)),
    ("eval/tokenizer vocab ids are strings", "eval", lambda c: ["eval", (lambda d: (H.edit_json(os.path.join(d, "tokenizer.json"), lambda t: t["model"].update(vocab={k: str(v) for k, v in t["model"]["vocab"].items()})), d)[1])(model(c)), "--text", text(c)], ("tokenizer.json",)),
    ("validate/--chunks 0", "validate", lambda c: ["validate", c.art("q.gguf"), "--base", model(c), "--text", text(c), "--ctx", "32", "--chunks", "0"], ("chunks",)),
    ("validate/--text empty file", "validate", lambda c: ["validate", c.art("q.gguf"), "--base", model(c), "--text", c.mk("empty.txt", b""), "--ctx", "32"], ("empty.txt", "token")),
    ("validate/text shorter than one window", "validate", lambda c: ["validate", c.art("q.gguf"), "--base", model(c), "--text", text(c), "--ctx", "1024"], ("ctx", "token")),
    ("validate/--shard 1/3 of fewer chunks than shards", "validate", lambda c: ["validate", c.art("q.gguf"), "--base", model(c), "--text", text(c), "--ctx", "32", "--chunks", "2", "--shard", "1/3", "-o", out(c, "p1")], ("shard 1 of 3", "none")),
    ("validate/--merge a GGUF", "validate", lambda c: ["validate", "--merge", c.art("q.gguf")], ("q.gguf", "MOEQVP01")),
    ("validate/--merge a truncated part", "validate", lambda c: ["validate", "--merge", c.mk("p.part", b"MOEQVP01" + (9).to_bytes(8, "little") + b'{"x"')], ("p.part", "byte")),
    ("imatrix/--chunks 0", "imatrix", lambda c: ["imatrix", model(c), "--text", text(c), "--ctx", "32", "--chunks", "0", "-o", out(c, "im.gguf")], ("chunks",)),
    ("imatrix/--text empty file", "imatrix", lambda c: ["imatrix", model(c), "--text", c.mk("empty.txt", b""), "-o", out(c, "im.gguf")], ("empty.txt", "token")),
    ("imatrix/text shorter than one window", "imatrix", lambda c: ["imatrix", model(c), "--text", text(c), "--ctx", "1024", "-o", out(c, "im.gguf")], ("ctx", "token")),
    ("pipeline/validate text empty", "pipeline", lambda c: ["pipeline", c.mk("r.json", json.dumps({"format": "moeq recipe 1", "base": "Q8_0", "source": model(c), "output": c.p("o.gguf"), "validate": {"text": c.mk("empty.txt", b""), "ctx": 16}}))], ("empty.txt", "token")),
    ("pipeline/validate chunks 0", "pipeline", lambda c: ["pipeline", c.mk("r.json", json.dumps({"format": "moeq recipe 1", "base": "Q8_0", "source": model(c), "output": c.p("o.gguf"), "validate": {"text": text(c), "ctx": 16, "chunks": 0}}))], ("chunks",)),
]
for name, group, build, culprit in DEGENERATE:
    # "--chunks 0" is a command-line value: refusing it as a usage error (64) is as right as refusing the work (1).
    add(name, group, build, err=[culprit], rc=(1, 64) if "--chunks 0" in name else 1, post=absent("im.gguf") if group == "imatrix" else None)

# ================================================================== 6. planner numbers and inputs
H.section("6. planner numbers and planner inputs")

PLAN_TARGETS = ["gpu:inf:448", "gpu:1e308:1e308", "99999999999xh200", "+", "gpu:nan:448", "gpu:-16:448", "gpu:16:448:9", "0xh200", "ram:64:0", "9223372036854775807xgpu:16:448"]
for t in PLAN_TARGETS:
    add(f"plan/--target {t}", "plan", lambda c, t=t: ["plan", "qwen3-30b-a3b", "--target", t], rc=(1, 64), err=[t])
add("plan/--context 9223372036854775807", "plan", lambda c: ["plan", "qwen3-30b-a3b", "--target", "rtx4090+64gb", "--context", "9223372036854775807"], rc=(1, 64), err=["context"])
add("plan/--context 9223372036854775807 (no target)", "plan", lambda c: ["plan", "qwen3-30b-a3b", "--context", "9223372036854775807"], rc=(1, 64), err=["context"])
add("plan/--context 0", "plan", lambda c: ["plan", "qwen3-30b-a3b", "--context", "0"], rc=(1, 64), err=["context"])
add("plan/--cache-type Q4_K (not a KV cache type)", "plan", lambda c: ["plan", "qwen3-30b-a3b", "--cache-type", "Q4_K"], rc=(1, 64), err=["Q4_K"])
add("plan/--targets-file /nonexistent without --target", "plan", lambda c: ["plan", "qwen3-30b-a3b", "--targets-file", c.p("nonexistent.json")], err=["nonexistent.json", "No such file"])
add("plan/--routing config.json (not an imatrix)", "plan", lambda c: ["plan", model(c), "--target", "rtx4090+64gb", "--routing", c.p("model", "config.json")], err=["config.json"], not_err=["538970747"])
add("plan/--routing /nonexistent", "plan", lambda c: ["plan", model(c), "--target", "rtx4090+64gb", "--routing", c.p("none.gguf")], err=["none.gguf", "No such file"])
add("plan/broken .gguf is not 'invalid JSON'", "plan", lambda c: ["plan", H.truncate(c.art("q.gguf", as_name="bad.gguf"), 5000)], err=["bad.gguf", "byte"], not_err=["invalid JSON", "not valid JSON"])
add("plan/.gguf with a damaged magic is not 'invalid JSON'", "plan", lambda c: ["plan", H.patch(c.art("q.gguf", as_name="bad.gguf", sidecars=()), 0, b"GGUX")], err=["bad.gguf"], not_err=["invalid JSON"])
add("plan/unknown bundled name", "plan", lambda c: ["plan", "no-such-model"], rc=(1, 64), err=["no-such-model"])
add("plan/--engine bogus", "plan", lambda c: ["plan", "qwen3-30b-a3b", "--engine", "bogus"], rc=64, err=["bogus"])


def targets_file(c, mutate):
    t = H.jload(os.path.join(c.fixtures, "..", "..", "formats", "hardware", "targets.json"))
    mutate(t)
    return c.mk("targets.json", json.dumps(t))


TARGETS = [
    ("device key 'membory' (unknown key)", lambda t: t["devices"][0].update(membory=1), "membory"),
    ("unknown top-level key", lambda t: t.update(devicez=[]), "devicez"),
    ("device memory -1", lambda t: t["devices"][0].update(memory=-1), "memory"),
    ("device bandwidth 0", lambda t: t["devices"][0].update(bandwidth=0), "bandwidth"),
    ("device bandwidth 1e400 (inf)", lambda t: t["devices"][0].update(bandwidth=Raw("1e400")), "bandwidth"),
    ("system_memory sockets -1", lambda t: t["system_memory"][0].update(sockets=-1), "sockets"),
    ("system_memory efficiency 5", lambda t: t["system_memory"][0].update(efficiency=5), "efficiency"),
    ("devices is an object", lambda t: t.update(devices={}), "devices"),
    ("format wrong", lambda t: t.update(format="moeq hardware targets 9"), "format"),
]
for label, mutate, culprit in TARGETS:
    def build(c, mutate=mutate):
        path = targets_file(c, mutate)
        H.write(path, H.read(path).replace(b'"1e400"', b"1e400"))  # Raw: an overflowing literal
        return ["plan", "qwen3-30b-a3b", "--target", "rtx3090+64gb", "--targets-file", path]
    add(f"plan/--targets-file {label}", "plan", build, err=["targets.json", culprit])
add("plan/--targets-file not JSON", "plan", lambda c: ["plan", "qwen3-30b-a3b", "--target", "rtx3090+64gb", "--targets-file", c.mk("targets.json", b"{devices")], err=["targets.json"])

# ================================================================== 7. messages: strerror text, NaN/Inf naming tensor and file
H.section("7. messages: strerror text, NaN/Inf")

ERRNO = [
    ("inspect", ["inspect", "{missing}"]), ("convert", ["convert", "{missing}", "-o", "{out}", "--recipe", "Q8_0"]),
    ("dump", ["dump", "{missing}", "x", "-o", "{out}.npy"]), ("verify", ["verify", "{missing}.gguf"]),
    ("unpack", ["unpack", "{missing}", "-o", "{out}.d"]), ("merge", ["merge", "{missing}.part-1-of-1", "-o", "{out}"]),
    ("eval", ["eval", "{missing}", "--tokens", "{missing}.txt"]), ("pack", ["pack", "{missing}", "-o", "{out}.d"]),
]
for group, argv in ERRNO:
    add(f"{group}/nonexistent input names strerror", group,
        lambda c, argv=argv: [a.format(missing=c.p("nonexistent"), out=c.p("o.gguf")) for a in argv], err=["nonexistent", "No such file or directory"])
add("convert/-o into a missing directory", "convert", lambda c: convert(model(c), c.p("no", "dir", "o.gguf")), err=["No such file or directory", "dir"])
add("eval/--text nonexistent names the file", "eval", lambda c: ["eval", model(c), "--text", c.p("nope.txt")], err=["nope.txt"])


def nan_model(value, fixture=Q, tensor="model.layers.1.mlp.experts.3.down_proj.weight"):
    def build(c):
        d = model(c, fixture)
        H.st_poke_f32(st_of(d), tensor, 10, value)
        return d
    return build


for recipe in ("Q8_0", "Q4_K_M", "BF16", "F16"):
    add(f"convert/NaN in a source tensor --recipe {recipe}", "convert", lambda c, r=recipe: convert(nan_model(float("nan"))(c), out(c), r),
        err=["experts.3.down_proj", "model.safetensors"], post=absent("out.gguf"))
add("convert/+Inf in a source tensor --recipe Q8_0", "convert", lambda c: convert(nan_model(float("inf"))(c), out(c)), err=["experts.3.down_proj"], post=absent("out.gguf"))
add("convert/--format safetensors NaN in a source tensor", "convert", lambda c: ["convert", nan_model(float("nan"))(c), "--format", "safetensors", "--recipe", "BF16", "-o", c.p("st")],
    err=["experts.3.down_proj"], post=absent("st"))
add("convert/NaN in a BF16 source tensor --recipe BF16 (bytes copied)", "convert",
    lambda c: convert((lambda d: (H.st_poke_bf16(H.st_find(d, "experts.3.down_proj")[0], H.st_find(d, "experts.3.down_proj")[1], 10, 0x7FC0), d)[1])(model(c, QS)), out(c), "BF16"),
    err=["experts.3.down_proj"], post=absent("out.gguf"))
add("eval/NaN in a weight", "eval", lambda c: ["eval", nan_model(float("nan"), tensor="model.layers.0.self_attn.q_proj.weight")(c), "--tokens", toks(c)], err=["q_proj"])


def gguf_nan(c):
    g = H.GGUF(c.art("q.gguf", as_name="nan.gguf", sidecars=()))
    t = g.tensor("blk.0.attn_norm.weight")
    assert t["type"] == 0
    H.patch(c.p("nan.gguf"), g.data_start + t["offset"] + 8, struct.pack("<f", float("nan")))
    return c.p("nan.gguf")


add("validate/NaN inside the quant GGUF", "validate", lambda c: ["validate", gguf_nan(c), "--base", model(c), "--text", text(c), "--ctx", "32"], err=["blk.0.attn_norm.weight"])
add("dump/NaN inside a GGUF tensor (decoded)", "dump", lambda c: ["dump", gguf_nan(c), "blk.0.attn_norm.weight", "-o", out(c, "x.npy")], rc=(0, 1), err=["blk.0.attn_norm.weight"])

CASES.extend(scenario_cases())
import hostile_formats  # noqa: E402  (broad mutation coverage per format)
CASES.extend(hostile_formats.cases())
import hostile_review  # noqa: E402  (a second hostile pass over the CLI)
CASES.extend(hostile_review.cases())


def all_cases():
    return CASES
