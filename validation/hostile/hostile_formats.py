"""Broad mutation coverage, one section per format moeq reads: safetensors headers, the shard index, tokenizers
(tokenizer.json, tiktoken.model, SentencePiece), GGUF, importance matrices (GGUF and legacy .dat), recipe files
(JSON and YAML), manifests, shard parts, expert packs, pack archives, base-logits records, and command-line usage."""
import json
import os
import struct

import hostile_lib as H
from hostile_lib import DS, MX, Q, QS, Case, absent, convert, model, out, st_of, text, toks

CASES = []


def add(name, group, build, **kw):
    CASES.append(Case(name, group, build, **kw))


def argv_for(how, c, d, tensor="lm_head.weight"):
    return {"inspect": lambda: ["inspect", d], "convert": lambda: convert(d, out(c)),
            "dump": lambda: ["dump", d, tensor, "-o", out(c, "x.npy")], "eval": lambda: ["eval", d, "--tokens", toks(c)]}[how]()


def post_for(how):
    return {"convert": absent("out.gguf"), "dump": absent("x.npy")}.get(how)


# ------------------------------------------------------------------ safetensors headers (qwen3_moe-f32/model.safetensors)
H.section("F1. safetensors headers")

def raw_header(header_bytes):
    def mutate(path):
        _, data = H.st_read(path)
        H.st_write(path, None, data, header_bytes=header_bytes)
    return mutate


def entry(tensor, **changes):
    def mutate(path):
        H.st_edit(path, lambda h, _: h[tensor].update(changes))
    return mutate


def length_field(value):
    return lambda path: H.patch(path, 0, struct.pack("<Q", value))


def duplicate_name(path):
    header, data = H.st_read(path)
    text_ = json.dumps(header, separators=(",", ":"))
    dup = '"lm_head.weight":' + json.dumps(header["lm_head.weight"], separators=(",", ":"))
    H.st_write(path, None, data, header_bytes=(text_[:-1] + "," + dup + "}").encode())


def past_the_end(h, d):
    """The last tensor in data order (model.norm.weight) grows by 1024 elements past the end of the data."""
    name = max((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][1])
    assert name == "model.norm.weight", name
    h[name]["shape"] = [h[name]["shape"][0] + 1024]
    h[name]["data_offsets"][1] += 4096


def overlap(path):
    H.st_edit(path, lambda h, _: h["model.embed_tokens.weight"].update(data_offsets=h["lm_head.weight"]["data_offsets"]))


ST = [  # label, mutate(path), culprit, commands
    ("header length 0", length_field(0), "byte", ("inspect",)),
    ("header length beyond the file", length_field(1 << 30), "byte 0", ("inspect", "eval")),
    ("header length 2^63", length_field(1 << 63), "byte 0", ("inspect", "convert")),
    ("header length 2^64-1", length_field((1 << 64) - 1), "byte 0", ("inspect",)),
    ("header not JSON", raw_header(b'{"lm_head.weight": {"dtype": "F32", "shape": [5'), "byte", ("inspect", "dump")),
    ("header is a JSON array", raw_header(b"[1, 2, 3]"), "model.safetensors", ("inspect",)),
    ("header nested 100000 deep", raw_header(b"[" * 100000), "model.safetensors", ("inspect",)),
    ("header invalid UTF-8", raw_header(b'{"\xff\xfe": {"dtype": "F32"}}'), "model.safetensors", ("inspect",)),
    ("dtype F99", entry("lm_head.weight", dtype="F99"), "lm_head.weight", ("inspect", "convert", "dump")),
    ("dtype lowercase f32", entry("lm_head.weight", dtype="f32"), "lm_head.weight", ("inspect",)),
    ("shape negative", entry("lm_head.weight", shape=[-1, 64]), "lm_head.weight", ("inspect",)),
    ("shape 2^32 x 2^32 x 2^32", entry("lm_head.weight", shape=[1 << 32, 1 << 32, 1 << 32]), "lm_head.weight", ("inspect", "convert", "dump", "eval")),
    ("shape [2^62, 4]", entry("lm_head.weight", shape=[1 << 62, 4]), "lm_head.weight", ("inspect",)),
    ("shape a string", entry("lm_head.weight", shape="512x64"), "lm_head.weight", ("inspect",)),
    ("data_offsets reversed", lambda p: H.st_edit(p, lambda h, _: h["lm_head.weight"].update(data_offsets=h["lm_head.weight"]["data_offsets"][::-1])), "lm_head.weight", ("inspect",)),
    ("data_offsets beyond the data", lambda p: H.st_edit(p, past_the_end), "model.norm.weight", ("inspect", "convert", "dump")),
    ("data_offsets 2^64+5 (bignum)", entry("lm_head.weight", data_offsets=[0, (1 << 64) + 5]), "lm_head.weight", ("inspect",)),
    ("two tensors share bytes", overlap, "model.embed_tokens.weight", ("inspect", "convert")),
    ("data_offsets span != shape x dtype", lambda p: H.st_edit(p, lambda h, _: h["lm_head.weight"]["data_offsets"].__setitem__(1, h["lm_head.weight"]["data_offsets"][1] - 4)), "lm_head.weight", ("inspect",)),
    ("trailing bytes after the last tensor", lambda p: H.write(p, H.read(p) + b"\0" * 64), "byte", ("inspect",)),
    ("file truncated by 1000 bytes", lambda p: H.truncate(p, os.path.getsize(p) - 1000), "model.safetensors", ("inspect", "convert", "eval")),
    ("file of 3 bytes", lambda p: H.write(p, b"\x10\x00\x00"), "model.safetensors", ("inspect",)),
    ("empty file", lambda p: H.write(p, b""), "model.safetensors", ("inspect", "eval")),
    ("tensor named twice", duplicate_name, "lm_head.weight", ("inspect",)),
    ("__metadata__ value not a string", lambda p: H.st_edit(p, lambda h, _: h.update(__metadata__={"format": 5})), "__metadata__", ("inspect",)),
    ("entry without dtype", lambda p: H.st_edit(p, lambda h, _: h["lm_head.weight"].pop("dtype")), "lm_head.weight", ("inspect",)),
    ("entry is a string", lambda p: H.st_edit(p, lambda h, _: h.__setitem__("lm_head.weight", "F32")), "lm_head.weight", ("inspect",)),
]
for label, mutate, culprit, hows in ST:
    for how in hows:
        def build(c, mutate=mutate, how=how, tensor=culprit if culprit.startswith("model.") else "lm_head.weight"):
            d = model(c)
            mutate(st_of(d))
            return argv_for(how, c, d, tensor)
        add(f"{how}/safetensors {label}", how, build, err=["model.safetensors", culprit], post=post_for(how))


def pack_roundtrip(c):
    d = model(c)
    length_field(1 << 63)(st_of(d))
    return ["pack", d, "-o", c.p("p")]


def unpacks_identically(c, r):
    u = c.run(["unpack", c.p("p"), "-o", c.p("u")])
    if u.rc != 0:
        return [f"unpack of the archive: {u.describe()}: {H.tail(u.err)}"]
    return [] if H.snapshot(c.p("u")) == H.snapshot(c.p("model")) else ["unpacked files differ from the packed ones"]


add("pack/corrupt safetensors is archived as plain bytes", "pack", pack_roundtrip, rc=0, post=unpacks_identically)

# ------------------------------------------------------------------ model.safetensors.index.json (qwen3_moe-bf16-sharded)
H.section("F2. model.safetensors.index.json")

IDX = "model.safetensors.index.json"


def index_edit(fn):
    return lambda d: H.edit_json(os.path.join(d, IDX), fn)


def move_entry(j):
    j["weight_map"]["lm_head.weight"] = "model-00003-of-00005.safetensors" if j["weight_map"]["lm_head.weight"] != "model-00003-of-00005.safetensors" else "model-00001-of-00005.safetensors"


INDEX = [
    ("names a missing shard", index_edit(lambda j: j["weight_map"].__setitem__("lm_head.weight", "model-00009-of-00005.safetensors")), ("model-00009-of-00005.safetensors",), ("inspect", "convert")),
    ("puts a tensor in the wrong shard", index_edit(move_entry), ("lm_head.weight",), ("inspect", "convert")),
    ("not JSON", lambda d: H.write(os.path.join(d, IDX), b'{"weight_map": {'), (IDX,), ("inspect",)),
    ("weight_map is a list", index_edit(lambda j: j.update(weight_map=[1, 2])), ("weight_map",), ("inspect",)),
    ("shard path ../../../../etc/passwd", index_edit(lambda j: j["weight_map"].__setitem__("lm_head.weight", "../../../../../../etc/passwd")), (IDX, "passwd"), ("inspect", "convert")),
    ("shard path absolute /etc/hostname", index_edit(lambda j: j["weight_map"].__setitem__("lm_head.weight", "/etc/hostname")), (IDX, "hostname"), ("inspect",)),
    ("weight_map value a number", index_edit(lambda j: j["weight_map"].__setitem__("lm_head.weight", 7)), (IDX, "lm_head.weight"), ("inspect",)),
    ("weight_map value a directory", index_edit(lambda j: j["weight_map"].__setitem__("lm_head.weight", ".")), (IDX, "lm_head.weight"), ("inspect",)),
    ("weight_map empty", index_edit(lambda j: j.update(weight_map={})), (IDX, "weight_map", "model-0000"), ("inspect",)),
]
for label, mutate, culprit, hows in INDEX:
    for how in hows:
        def build(c, mutate=mutate, how=how):
            d = model(c, QS)
            mutate(d)
            return argv_for(how, c, d)
        add(f"{how}/index.json {label}", how, build, err=[culprit], post=post_for(how))

# ------------------------------------------------------------------ tokenizers
H.section("F3. tokenizers (tokenizer.json, tiktoken, SentencePiece)")


def tok_edit(fn, fixture=Q):
    def build(c):
        d = model(c, fixture)
        H.edit_json(os.path.join(d, "tokenizer.json"), fn)
        return d
    return build


def vocab_map(f):
    return lambda t: t["model"].update(vocab={k: f(v) for k, v in t["model"]["vocab"].items()})


TOKENIZER = [
    ("convert", "vocab id 2^40", tok_edit(lambda t: t["model"]["vocab"].__setitem__("zzzz", 1 << 40))),
    ("convert", "added_tokens id 2^40", tok_edit(lambda t: t["added_tokens"].append({"id": 1 << 40, "content": "<|x|>", "special": True}))),
    ("convert", "merges is a number", tok_edit(lambda t: t["model"].update(merges=5))),
    ("convert", "not JSON", lambda c: (lambda d: (H.write(os.path.join(d, "tokenizer.json"), b'{"model": {"vocab": {'), d)[1])(model(c))),
    ("eval", "not JSON", lambda c: (lambda d: (H.write(os.path.join(d, "tokenizer.json"), b'{"model": {"vocab": {'), d)[1])(model(c))),
    ("eval", "vocab ids negative", tok_edit(vocab_map(lambda v: -5 - v))),
    ("eval", "vocab ids beyond vocab_size", tok_edit(vocab_map(lambda v: v + 1000))),
    ("eval", "added token with empty content", tok_edit(lambda t: t["added_tokens"].append({"id": 3, "content": "", "special": True}))),
    ("eval", "model type WordPiece", tok_edit(lambda t: t["model"].update(type="WordPiece"))),
]
for how, label, builder in TOKENIZER:
    add(f"{how}/tokenizer.json {label}", how,
        lambda c, b=builder, how=how: (["eval", b(c), "--text", text(c)] if how == "eval" else convert(b(c), out(c))),
        err=["tokenizer.json"], post=post_for(how))


def tiktoken_dir(c, ranks=None, lines_extra=(), specials=None, raw=None):
    """qwen3_moe-f32 with tiktoken.model (256 byte ranks + a few merges) + tokenizer_config.json instead of tokenizer.json."""
    d = model(c)
    os.remove(os.path.join(d, "tokenizer.json"))
    ranks = ranks or {}
    lines = [H.tiktoken_line(bytes([b]), ranks.get(bytes([b]), b)) for b in range(256)]
    for i, piece in enumerate([b"th", b"he", b"the", b" t", b"in", b"an", b"er", b" the", b"nd", b"and"]):
        lines.append(H.tiktoken_line(piece, ranks.get(piece, 256 + i)))
    H.write(os.path.join(d, "tiktoken.model"), raw if raw is not None else "".join(lines) + "".join(lines_extra))
    decoder = specials or {"300": {"content": "[BOS]", "special": True}, "301": {"content": "[EOS]", "special": True}}
    H.jdump(os.path.join(d, "tokenizer_config.json"), {"added_tokens_decoder": decoder, "bos_token": "[BOS]", "tokenizer_class": "TikTokenTokenizer"})
    return d


TIKTOKEN = [
    ("eval", "valid (control)", lambda c: tiktoken_dir(c), 0, ()),
    ("eval", "rank 2^40", lambda c: tiktoken_dir(c, ranks={b"e": 1 << 40}), 1, ("tiktoken.model",)),
    ("eval", "negative rank", lambda c: tiktoken_dir(c, ranks={b"e": -7}), 1, ("tiktoken.model",)),
    ("eval", "bad base64", lambda c: tiktoken_dir(c, lines_extra=["@@@not base64@@@ 400\n"]), 1, ("tiktoken.model", "byte")),
    ("eval", "empty file", lambda c: tiktoken_dir(c, raw=b""), 1, ("tiktoken.model",)),
    ("eval", "special id 2^40 in tokenizer_config.json", lambda c: tiktoken_dir(c, specials={str(1 << 40): {"content": "In", "special": True}}), 1, ("tokenizer_config.json",)),
    ("convert", "rank 2^40", lambda c: tiktoken_dir(c, ranks={b"e": 1 << 40}), 1, ("tiktoken.model",)),
    ("convert", "two tokens with one rank", lambda c: tiktoken_dir(c, ranks={b"e": 5}), 1, ("tiktoken.model",)),
    ("convert", "more ranks than vocab_size", lambda c: tiktoken_dir(c, lines_extra=[H.tiktoken_line(b"x%dy" % i, 266 + i) for i in range(400)]), 1, ("tiktoken.model", "vocab_size")),
]
for how, label, builder, rc, culprit in TIKTOKEN:
    add(f"{how}/tiktoken {label}", how,
        lambda c, b=builder, how=how: (["eval", b(c), "--text", text(c)] if how == "eval" else convert(b(c), out(c))),
        rc=rc, err=[culprit] if culprit else [], post=post_for(how) if rc else None)


def spm_dir(mutate):
    def build(c):
        d = model(c, MX)
        os.remove(os.path.join(d, "tokenizer.json"))
        p = H.write(os.path.join(d, "tokenizer.model"), H.read(os.path.join(c.fixtures, "sentencepiece", "tokenizer.model")))
        mutate(p)
        return convert(d, out(c))
    return build


for label, mutate in [("truncated", lambda p: H.truncate(p, os.path.getsize(p) // 2 + 3)), ("garbage", lambda p: H.write(p, b"\xff" * 4096)),
                      ("length varint 2^63", lambda p: H.patch(p, 1, b"\xff" * 9 + b"\x01")), ("empty", lambda p: H.write(p, b""))]:
    add(f"convert/sentencepiece tokenizer.model {label}", "convert", spm_dir(mutate), err=["tokenizer.model"], post=absent("out.gguf"))

# ------------------------------------------------------------------ GGUF (a Q8_0 conversion of qwen3_moe-f32)
H.section("F4. GGUF")


def bad_gguf(mutate):
    def make(c):
        p = c.art("q.gguf", as_name="bad.gguf", sidecars=())
        mutate(p)
        return p
    return make


def kv(key, t, v):
    def mutate(p):
        g = H.GGUF(p)
        g.set(key, t, v)
        g.save(p)
    return mutate


def tensor_field(name, **changes):
    def mutate(p):
        g = H.GGUF(p)
        next(t for t in g.tensors if t["name"] == name).update(changes)
        g.save(p)
    return mutate


def drop_last_tensor(p):
    g = H.GGUF(p)
    g.tensors.pop()
    g.save(p)


def dup_key(p):
    g = H.GGUF(p)
    g.kv.append(("general.name", 8, "twice"))
    g.save(p)


def first_key_type(p):
    g = H.GGUF(p)
    at, type_at = g.kv_offsets["general.architecture"]
    H.patch(p, type_at - 4, struct.pack("<I", 99))


A = "qwen3moe."
GGUF = [  # label, mutate, command, culprit
    ("magic GGUX", lambda p: H.patch(p, 0, b"GGUX"), "dump", ("byte 0",)),
    ("version 99", lambda p: H.patch(p, 4, struct.pack("<I", 99)), "plan", ("version",)),
    ("tensor count 2^60", lambda p: H.patch(p, 8, struct.pack("<Q", 1 << 60)), "dump", ("byte 8",)),
    ("key/value count 2^60", lambda p: H.patch(p, 16, struct.pack("<Q", 1 << 60)), "plan", ("byte 16",)),
    ("truncated to 100 bytes", lambda p: H.truncate(p, 100), "dump", ("byte",)),
    ("truncated inside the data", lambda p: H.truncate(p, os.path.getsize(p) - 5000), "dump", ("output.weight", "byte")),
    ("value type 99", first_key_type, "plan", ("general.architecture",)),
    ("first key length 2^62", lambda p: H.patch(p, 24, struct.pack("<Q", 1 << 62)), "dump", ("byte",)),
    ("tensor dims 2^62 x 2^62", tensor_field("token_embd.weight", dims=[1 << 62, 1 << 62]), "dump", ("token_embd.weight",)),
    ("tensor type 999", tensor_field("token_embd.weight", type=999), "dump", ("token_embd.weight",)),
    ("tensor offset misaligned", tensor_field("blk.0.attn_norm.weight", offset=34817), "dump", ("blk.0.attn_norm.weight",)),
    ("general.alignment 3", kv("general.alignment", 4, 3), "plan", ("general.alignment",)),
    ("block_count 2^31", kv(A + "block_count", 4, 1 << 31), "plan", ("block_count",)),
    ("expert_count 2^31", kv(A + "expert_count", 4, 1 << 31), "plan", ("expert_count",)),
    ("embedding_length 2^31", kv(A + "embedding_length", 4, 1 << 31), "plan", ("embedding_length",)),
    ("head_count 0", kv(A + "attention.head_count", 4, 0), "plan", ("head_count",)),
    ("expert_used_count > expert_count", kv(A + "expert_used_count", 4, 99), "plan", ("expert_used_count",)),
    ("duplicate key", dup_key, "plan", ("general.name",)),
    ("empty file", lambda p: H.write(p, b""), "plan", ("bad.gguf",)),
    ("tokens array count 2^60", lambda p: H.patch(p, H.GGUF(p).kv_offsets["tokenizer.ggml.tokens"][1] + 4, struct.pack("<Q", 1 << 60)), "dump", ("tokenizer.ggml.tokens", "byte")),
    ("block_count 0", kv(A + "block_count", 4, 0), "validate", ("block_count", "bad.gguf")),
    ("without its last tensor", drop_last_tensor, "validate", ("output.weight",)),
    ("attn_q dims swapped", tensor_field("blk.0.attn_q.weight", dims=[96, 64]), "validate", ("blk.0.attn_q.weight",)),
    ("expert_count 16 (tensors hold 8)", kv(A + "expert_count", 4, 16), "validate", ("expert_count", "ffn_gate_exps", "bad.gguf")),
]
for label, mutate, how, culprit in GGUF:
    def build(c, mutate=mutate, how=how):
        p = bad_gguf(mutate)(c)
        if how == "dump":
            return ["dump", p, "token_embd.weight", "-o", out(c, "x.npy")]
        if how == "plan":
            return ["plan", p]
        return ["validate", p, "--base", model(c), "--text", text(c), "--ctx", "32"]
    add(f"{how}/GGUF {label}", how, build, err=["bad.gguf", culprit] if "bad.gguf" not in culprit else [culprit], post=post_for(how),
        not_err=["invalid JSON"] if how == "plan" else ())

# ------------------------------------------------------------------ importance matrices
H.section("F5. importance matrices")


def im_gguf(mutate):
    def make(c):
        p = c.art("im.gguf", as_name="bad-im.gguf", sidecars=())
        g = H.GGUF(p)
        mutate(c, g, p)
        return p
    return make


def im_values(tensor, index, value):
    def mutate(c, g, p):
        t = next(t for t in g.tensors if t["name"] == tensor)
        H.patch(p, g.data_start + t["offset"] + 4 * index, struct.pack("<f", value))
    return mutate


def im_kv(key, t, v):
    def mutate(c, g, p):
        g.set(key, t, v)
        g.save(p)
    return mutate


def im_rename(old, new):
    def mutate(c, g, p):
        next(t for t in g.tensors if t["name"] == old)["name"] = new
        g.save(p)
    return mutate


def im_dims(name, dims):
    def mutate(c, g, p):
        next(t for t in g.tensors if t["name"] == name)["dims"] = dims
        g.save(p)
    return mutate


DOWN = "blk.0.ffn_down_exps.weight"
IMATRIX = [  # label, make, command, culprit
    ("general.type model", im_gguf(im_kv("general.type", 8, "model")), "convert", ("general.type",)),
    ("in_sum2 without counts", im_gguf(im_rename(DOWN + ".counts", DOWN + ".kounts")), "convert", (DOWN,)),
    ("8 counts for 4 matrices", im_gguf(im_dims(DOWN + ".in_sum2", [64, 4])), "convert", (DOWN,)),
    ("NaN in in_sum2", im_gguf(im_values(DOWN + ".in_sum2", 3, float("nan"))), "convert", (DOWN,)),
    ("NaN in counts", im_gguf(im_values(DOWN + ".counts", 2, float("nan"))), "plan", (DOWN,)),
    ("NaN in counts", im_gguf(im_values(DOWN + ".counts", 2, float("nan"))), "expert-major", (DOWN,)),
    ("+Inf in counts", im_gguf(im_values(DOWN + ".counts", 2, float("inf"))), "plan", (DOWN,)),
    ("count 1e30", im_gguf(im_values(DOWN + ".counts", 1, 1e30)), "plan", (DOWN,)),
    ("negative count", im_gguf(im_values(DOWN + ".counts", 1, -5.0)), "plan", (DOWN,)),
    ("legacy .dat count -1", lambda c: H.imatrix_dat(c.p("bad-im.dat"), [], count=-1), "convert", ("byte 0",)),
    ("legacy .dat count 2^31-1", lambda c: H.imatrix_dat(c.p("bad-im.dat"), [], count=(1 << 31) - 1), "convert", ("byte 0",)),
    ("legacy .dat name length 2^31-1", lambda c: H.write(c.p("bad-im.dat"), struct.pack("<ii", 1, (1 << 31) - 1) + b"blk" + b"\0" * 64), "convert", ("byte 4",)),
    ("legacy .dat value count 2^31-1", lambda c: H.write(c.p("bad-im.dat"), struct.pack("<ii", 1, 3) + b"abc" + struct.pack("<ii", 1, (1 << 31) - 1)), "convert", ("byte",)),
    ("legacy .dat truncated", lambda c: H.truncate(H.imatrix_dat(c.p("bad-im.dat"), [("blk.0.attn_q.weight", 1, [1.0] * 64)]), 40), "convert", ("byte",)),
    ("legacy .dat NaN values", lambda c: H.imatrix_dat(c.p("bad-im.dat"), [("blk.0.attn_q.weight", 1, [float("nan")] * 64)]), "convert", ("blk.0.attn_q.weight",)),
    ("legacy .dat wrong width for a tensor", lambda c: H.imatrix_dat(c.p("bad-im.dat"), [("blk.0.attn_q.weight", 1, [1.0] * 5)]), "convert", ("blk.0.attn_q.weight",)),
]
for label, make, how, culprit in IMATRIX:
    def build(c, make=make, how=how):
        p = make(c)
        c.inp(p)
        if how == "plan":
            return ["plan", model(c), "--target", "rtx4090+64gb", "--routing", p]
        if how == "expert-major":
            return convert(model(c), out(c), "Q8_0", "--layout", "expert-major", "--imatrix", p)
        return convert(model(c), out(c), "Q4_K_M", "--imatrix", p)
    add(f"{'plan' if how == 'plan' else 'convert'}/imatrix {label}" + (" (--layout expert-major)" if how == "expert-major" else ""),
        "plan" if how == "plan" else "convert", build, err=["bad-im", culprit], post=None if how == "plan" else absent("out.gguf"))
add("plan/--routing a legacy .dat (no routing counts)", "plan", lambda c: ["plan", model(c), "--target", "rtx4090+64gb", "--routing", c.inp(H.imatrix_dat(c.p("im.dat"), [("blk.0.attn_q.weight", 1, [1.0] * 64)]))], err=["im.dat"])

# ------------------------------------------------------------------ recipe files (convert --recipe-file, pipeline)
H.section("F6. recipe files and pipeline recipes")

GOOD_RECIPE = {"format": "moeq recipe 1", "base": "Q8_0", "rules": [{"role": "routed_experts", "type": "Q4_0"}]}


def recipe(obj=None, raw=None, name="recipe.json", **changes):
    def make(c):
        o = json.loads(json.dumps(obj or GOOD_RECIPE))
        o.update(changes)
        return c.mk(name, raw if raw is not None else json.dumps(o))
    return make


def rule(**fields):
    return recipe(rules=[dict({"type": "Q4_0"}, **fields)])


RECIPES = [
    ("unknown top-level key", recipe(bsae="Q8_0"), ("bsae",)),
    ("unknown rule key", rule(layer=[0, 1]), ("rules[0].layer",)),
    ("layers [0, \"x\", 5]", rule(layers=[0, "x", 5]), ("rules[0].layers",)),
    ("layers [0, 1.5, 3]", rule(layers=[0, 1.5, 3]), ("rules[0].layers",)),
    ("layers [5, 0]", rule(layers=[5, 0]), ("rules[0].layers",)),
    ("layers [-1, 2]", rule(layers=[-1, 2]), ("rules[0].layers",)),
    ("rules is an object", recipe(rules={"role": "attention"}), ("rules",)),
    ("rule is a string", recipe(rules=["Q4_K"]), ("rules[0]",)),
    ("type Q4_K_Q", rule(type="Q4_K_Q"), ("rules[0].type",)),
    ("role experts", rule(role="experts"), ("rules[0].role",)),
    ("base Q9", recipe(base="Q9"), ("base",)),
    ("format moeq recipe 2", recipe(format="moeq recipe 2"), ("format",)),
    ("description a number", recipe(description=5), ("description",)),
    ("not JSON", recipe(raw=b'{"format": "moeq recipe 1",'), ("recipe.json",)),
    ("empty file", recipe(raw=b""), ("recipe.json",)),
    ("JSON nested 100000 deep", recipe(raw=b"[" * 100000), ("recipe.json",)),
    ("YAML anchor and alias", recipe(name="recipe.yaml", raw=b"format: moeq recipe 1\nbase: &b Q8_0\ndescription: *b\n"), ("line",)),
    ("YAML tag !!python/object", recipe(name="recipe.yaml", raw=b"format: moeq recipe 1\nbase: !!python/object:os.system Q8_0\n"), ("line",)),
    ("YAML block scalar", recipe(name="recipe.yaml", raw=b"format: moeq recipe 1\nbase: Q8_0\ndescription: |\n  text\n"), ("line",)),
    ("YAML two documents", recipe(name="recipe.yaml", raw=b"format: moeq recipe 1\nbase: Q8_0\n---\nbase: Q4_0\n"), ("line",)),
    ("YAML merge key", recipe(name="recipe.yaml", raw=b"format: moeq recipe 1\nbase: Q8_0\nrules:\n  - &r {role: attention, type: Q8_0}\n  - <<: *r\n    type: Q4_0\n"), ("line",)),
    ("YAML unknown key", recipe(name="recipe.yaml", raw=b"format: moeq recipe 1\nbsae: Q8_0\n"), ("bsae",)),
    ("YAML layers [0, x, 5]", recipe(name="recipe.yaml", raw=b"format: moeq recipe 1\nbase: Q8_0\nrules:\n  - {type: Q4_0, layers: [0, x, 5]}\n"), ("rules[0].layers",)),
    ("YAML tab indentation", recipe(name="recipe.yaml", raw=b"format: moeq recipe 1\nrules:\n\t- type: Q4_0\n"), ("line",)),
    ("YAML a: b: c", recipe(name="recipe.yaml", raw=b"format: moeq recipe 1\nbase: Q8_0: Q4_0\n"), ("line",)),
    ("YAML nested 100000 deep", recipe(name="recipe.yaml", raw=b"base: " + b"[" * 100000), ("recipe.yaml",)),
    ("YAML not UTF-8", recipe(name="recipe.yaml", raw=b"format: moeq recipe 1\nbase: \xff\xfe\n"), ("recipe.yaml",)),
]
for label, make, culprit in RECIPES:
    add(f"convert/--recipe-file {label}", "convert", lambda c, m=make: ["convert", model(c), "-o", out(c), "--recipe-file", m(c)],
        err=[("recipe.json", "recipe.yaml"), culprit], post=absent("out.gguf"))


def pipeline_file(**changes):
    def build(c):
        o = {"format": "moeq recipe 1", "base": "Q8_0", "source": model(c), "output": c.p("o.gguf")}
        o.update({k: (v(c) if callable(v) else v) for k, v in changes.items()})
        o = {k: v for k, v in o.items() if v is not None}
        return ["pipeline", c.mk("pipe.json", json.dumps(o))]
    return build


PIPELINE = [  # label, build, culprit, whether no o.gguf may be written (a recipe error found before the write stage)
    ("without source", pipeline_file(source=None), ("source",), True),
    ("source does not exist", pipeline_file(source=lambda c: c.p("nowhere")), ("nowhere",), True),
    ("threads -1", pipeline_file(threads=-1), ("threads",), True),
    ("threads a string", pipeline_file(threads="8"), ("threads",), True),
    ("validate ctx 0", pipeline_file(validate=lambda c: {"text": text(c), "ctx": 0}), ("ctx",), False),
    ("validate text missing", pipeline_file(validate=lambda c: {"text": c.p("no.txt"), "ctx": 16}), ("no.txt",), False),
    ("output a directory", pipeline_file(output=lambda c: (os.makedirs(c.p("odir")), c.p("odir"))[1]), ("odir",), True),
]
for label, build, culprit, before_write in PIPELINE:
    add(f"pipeline/{label}", "pipeline", build, err=[culprit], post=absent("o.gguf") if before_write else None)
add("pipeline/--threads 0", "pipeline", lambda c: pipeline_file()(c) + ["--threads", "0"], rc=(1, 64), err=["threads"], post=absent("o.gguf"))
add("pipeline/--dry-run (control)", "pipeline", lambda c: pipeline_file()(c) + ["--dry-run"], rc=0, post=absent("o.gguf"))
add("pipeline/nonexistent recipe", "pipeline", lambda c: ["pipeline", c.p("none.json")], err=["none.json", "No such file"])

# ------------------------------------------------------------------ manifests (moeq verify)
H.section("F7. manifests (verify)")


def manifest(mutate, artifact="q.gguf"):
    def build(c):
        p = c.art(artifact)
        mutate(c, p + ".manifest.json", p)
        return ["verify", p]
    return build


def mtensor(i, **changes):
    return manifest(lambda c, m, p: H.edit_json(m, lambda j: j["tensors"][i].update(changes)))


MANIFEST = [
    ("first tensor offset -1", mtensor(0, offset=-1), ("token_embd.weight",)),
    ("every offset 2^62", manifest(lambda c, m, p: H.edit_json(m, lambda j: [t.update(offset=1 << 62) for t in j["tensors"]])), ("offset", "token_embd.weight")),
    ("tensor bytes -5", mtensor(1, bytes=-5), ("blk.0.attn_norm.weight",)),
    ("tensor bytes 2^63-1", mtensor(1, bytes=(1 << 63) - 1), ("blk.0.attn_norm.weight",)),
    ("offset 2^63-1 and bytes 2", mtensor(1, offset=(1 << 63) - 1, bytes=2), ("blk.0.attn_norm.weight",)),
    ("file bytes 1", manifest(lambda c, m, p: H.edit_json(m, lambda j: j.update(bytes=1))), ("bytes",)),
    ("xxh3 not hex", mtensor(2, xxh3="zz"), ("xxh3",)),
    ("not JSON", manifest(lambda c, m, p: H.write(m, b'{"format": "moeq-manifest 1", "tensors": [')), ("manifest.json",)),
    ("missing", manifest(lambda c, m, p: os.remove(m)), ("manifest",)),
    ("tensors an object", manifest(lambda c, m, p: H.edit_json(m, lambda j: j.update(tensors={}))), ("tensors",)),
    ("offset a float", mtensor(0, offset=13312.5), ("token_embd.weight",)),
    ("header_xxh3 wrong", manifest(lambda c, m, p: H.edit_json(m, lambda j: j.update(header_xxh3="0123456789abcdef"))), ("header",)),
    ("a tensor's bytes changed in the file", manifest(lambda c, m, p: H.patch(p, 50000, b"\x55" * 8)), ("blk.0.attn_q.weight",)),
    ("expert-pack unit offset -1", manifest(lambda c, m, p: H.edit_json(m, lambda j: j["tensors"][0].update(offset=-1)), "xm.expert-pack"), ("blk.",)),
]
for label, build, culprit in MANIFEST:
    add(f"verify/manifest {label}", "verify", build, err=[culprit])
add("verify/a directory", "verify", lambda c: ["verify", c.art("packd")], err=["packd"])
add("verify/a file moeq did not write", "verify", lambda c: ["verify", c.mk("x.gguf", b"GGUF" + b"\0" * 100)], err=["x.gguf", "manifest"])

# ------------------------------------------------------------------ shard parts (moeq merge)
H.section("F8. shard parts (merge)")

P1, P2 = "m.gguf.part-1-of-2", "m.gguf.part-2-of-2"


def part_index(fn, which=P1):
    def mutate(c, p):
        H.container_edit(p, fn)
    return which, mutate


def merge_case(which, mutate):
    def build(c):
        parts = {n: c.art(n, sidecars=()) for n in (P1, P2)}
        mutate(c, parts[which])
        return ["merge", parts[P1], parts[P2], "-o", out(c, "m.gguf")]
    return build


def unit(i, **changes):
    return part_index(lambda j: j["units"][i].update(changes))


PARTS = [
    ("magic", (P1, lambda c, p: H.patch(p, 0, b"MOEQPRT9")), ("byte 0",)),
    ("index length 2^63-1", (P1, lambda c, p: H.patch(p, 8, struct.pack("<Q", (1 << 63) - 1))), ("byte 8",)),
    ("index length 2^64-1", (P1, lambda c, p: H.patch(p, 8, struct.pack("<Q", (1 << 64) - 1))), ("byte 8",)),
    ("index not JSON", (P1, lambda c, p: H.patch(p, 16, b"!!")), ("byte 16",)),
    ("header_bytes 2^62", part_index(lambda j: j.update(header_bytes=1 << 62)), ("header_bytes",)),
    ("header_bytes -100", part_index(lambda j: j.update(header_bytes=-100)), ("header_bytes",)),
    ("header_bytes 2^63-1", part_index(lambda j: j.update(header_bytes=(1 << 63) - 1)), ("header_bytes",)),
    ("unit bytes 2^63-1", unit(0, bytes=(1 << 63) - 1), ("token_embd.weight",)),
    ("unit offset 2^63-10", unit(0, offset=(1 << 63) - 10), ("token_embd.weight",)),
    ("unit offset -5", unit(0, offset=-5), ("token_embd.weight",)),
    ("output_bytes 2^62", (P1, lambda c, p: [H.container_edit(x, lambda j: j.update(output_bytes=1 << 62)) for x in (p, c.p(P2))]), ("output_bytes", "part-1-of-2")),
    ("shards 0", part_index(lambda j: j.update(shards=0)), ("shards",)),
    ("unit bytes damaged", (P2, lambda c, p: H.patch(p, os.path.getsize(p) - 100, b"\xAA" * 8)), ("byte",)),
    ("part truncated", (P2, lambda c, p: H.truncate(p, os.path.getsize(p) - 3000)), ("part-2-of-2",)),
]
for label, (which, mutate), culprit in PARTS:
    add(f"merge/part {label}", "merge", merge_case(which, mutate), err=[("part-1-of-2", "part-2-of-2"), culprit], post=absent("m.gguf"))
add("merge/one part twice", "merge", lambda c: ["merge", c.art(P1, sidecars=()), c.p(P1), "-o", out(c, "m.gguf")], err=["part-1-of-2"], post=absent("m.gguf"))
add("merge/a part missing", "merge", lambda c: ["merge", c.art(P1, sidecars=()), "-o", out(c, "m.gguf")], err=["part-1-of-2"], post=absent("m.gguf"))
add("merge/parts of two conversions", "merge",
    lambda c: (c.moeq_ok("convert", model(c), "-o", c.p("other.gguf"), "--recipe", "Q4_0", "--shard", "2/2"),
               ["merge", c.art(P1, sidecars=()), c.inp(c.p("other.gguf.part-2-of-2")), "-o", out(c, "m.gguf")])[1],
    err=["layout"], post=absent("m.gguf"))
add("merge/no parts", "merge", lambda c: ["merge", "-o", out(c, "m.gguf")], rc=64, err=["parts"])
add("merge/a GGUF instead of a part", "merge", lambda c: ["merge", c.art("q.gguf"), "-o", out(c, "m.gguf")], err=["q.gguf", "byte 0"], post=absent("m.gguf"))

# ------------------------------------------------------------------ expert packs (validate OUT.gguf beside OUT.expert-pack)
H.section("F9. expert packs")


def xpack(mutate):
    def build(c):
        dense = c.art("xm.gguf")
        pack = c.art("xm.expert-pack")
        mutate(c, pack)
        return ["validate", dense, "--base", model(c), "--text", text(c), "--ctx", "32"]
    return build


def xpart(**changes):
    return xpack(lambda c, p: H.container_edit(p, lambda j: j["records"][0]["parts"][0].update(changes)))


XPACK = [
    ("magic", xpack(lambda c, p: H.patch(p, 0, b"MOEQXPK9")), ("byte 0",)),
    ("index length 2^63-1", xpack(lambda c, p: H.patch(p, 8, struct.pack("<Q", (1 << 63) - 1))), ("byte 8",)),
    ("part offset 2^63-10", xpart(offset=(1 << 63) - 10), ("layer 0",)),
    ("part ne [2^40, 2^40]", xpart(ne=[1 << 40, 1 << 40]), ("layer 0",)),
    ("part type Q9_9", xpart(type="Q9_9"), ("layer 0",)),
    ("record offset -4096", xpack(lambda c, p: H.container_edit(p, lambda j: j["records"][0].update(offset=-4096))), ("layer 0",)),
    ("part bytes 16 (too few for ne)", xpart(bytes=16), ("layer 0",)),
    ("expert 99", xpack(lambda c, p: H.container_edit(p, lambda j: j["records"][0].update(expert=99))), ("expert 99",)),
    ("missing", xpack(lambda c, p: (c.inputs.remove(p), os.remove(p))), ("expert-pack",)),
]
for label, build, culprit in XPACK:
    add(f"validate/expert pack {label}", "validate", build, err=["xm.expert-pack", culprit])

# ------------------------------------------------------------------ pack archives (moeq unpack)
H.section("F10. pack archives (unpack)")


def archive(mutate):
    def build(c):
        a = c.art("packd")
        mutate(c, a)
        return ["unpack", a, "-o", c.p("u")]
    return build


def afile(i, **changes):
    return archive(lambda c, a: H.edit_json(os.path.join(a, "manifest.json"), lambda j: j["files"][i].update(changes)))


def aframe(value):
    return archive(lambda c, a: H.edit_json(os.path.join(a, "manifest.json"), lambda j: j["files"][0].update(frames=[value])))


def bomb(c, a):
    frame = H.zstd_raw(b"x" * 16)
    frame = frame[:5] + struct.pack("<Q", 1 << 40) + frame[13:]  # claims 1 TiB of content
    frames = os.path.join(a, "frames.zst")
    at = os.path.getsize(frames)
    H.write(frames, H.read(frames) + frame)
    H.edit_json(os.path.join(a, "manifest.json"), lambda j: j["files"][0].update(frames=[[at, len(frame), 969]]))


ARCHIVE = [
    ("manifest missing", archive(lambda c, a: os.remove(os.path.join(a, "manifest.json"))), ("manifest.json",)),
    ("format wrong", archive(lambda c, a: H.edit_json(os.path.join(a, "manifest.json"), lambda j: j.update(format="moeq-pack 9"))), ("manifest.json",)),
    ("frame offset -1", aframe([-1, 10, 969]), ("frames.zst",)),
    ("frame offset 2^63-1", aframe([(1 << 63) - 1, 10, 969]), ("frames.zst",)),
    ("frame raw size wrong", aframe([0, 517, 970]), ("frames.zst",)),
    ("frame claims 1 TiB of content", archive(bomb), ("frames.zst",)),
    ("file name '.'", afile(0, name="."), ("manifest.json", "name")),
    ("file name empty", afile(0, name=""), ("manifest.json", "name")),
    ("file name ../escape", afile(0, name="../escape"), ("manifest.json", "name")),
    ("file bytes 2^62", afile(0, bytes=1 << 62), ("config.json",)),
    ("file bytes -1", afile(0, bytes=-1), ("config.json",)),
    ("planes 0", archive(lambda c, a: H.edit_json(os.path.join(a, "manifest.json"), lambda j: next(f for f in j["files"] if "tensors" in f)["tensors"][0].update(planes=0))), ("model.safetensors",)),
    ("frames.zst damaged", archive(lambda c, a: H.patch(os.path.join(a, "frames.zst"), 40000, b"\xAA" * 64)), ("frames.zst", "model.safetensors")),
    ("xxh3 of a file wrong", afile(0, xxh3="0123456789abcdef"), ("config.json",)),
]
for label, build, culprit in ARCHIVE:
    add(f"unpack/archive {label}", "unpack", build, err=[culprit], post=H.no_files_under("u"))  # the output directory is staged: nothing on failure
add("unpack/--output a regular file", "unpack", lambda c: ["unpack", c.art("packd"), "-o", c.protect(H.write(c.p("f"), "x"))], err=["f"])

# ------------------------------------------------------------------ base-logits records (validate --base-logits)
H.section("F11. base-logits records")


def record(mutate):
    def build(c):
        bl = c.art("bl.bin")
        mutate(c, bl)
        return ["validate", c.art("q.gguf"), "--base", model(c), "--text", text(c), "--ctx", "32", "--base-logits", bl]
    return build


def header(**changes):
    return record(lambda c, p: H.base_logits_edit(p, lambda h: h.update(changes)))


def synthetic_payload(nan=False, bad_id=False, frame_size=None, **header_changes):
    """A record with a crafted payload (stored zstd blocks) whose payload_xxh3 is right."""
    def mutate(c, p):
        _, h, _ = H.container_read(p)
        k, n = h["top_k"], h["positions"]
        body = bytearray()
        for i in range(n):
            body += struct.pack("<f", float("nan") if nan and i == 7 else -2.0)
            body += struct.pack(f"<{k}I", *[(600 if bad_id and i == 3 else j) for j in range(k)])
            body += struct.pack(f"<{k}f", *[-1.0 - j for j in range(k)])
        frame = H.zstd_raw(bytes(body))
        if frame_size is not None:
            frame = frame[:5] + struct.pack("<Q", frame_size) + frame[13:]
        h.update(payload_bytes=len(body), payload_xxh3=c.xxh3(bytes(body)))
        h.update(header_changes)
        H.write(p, b"MOEQBL01" + struct.pack("<Q", len(json.dumps(h))) + json.dumps(h).encode() + frame)
    return record(mutate)


BASELOGITS = [
    ("magic", record(lambda c, p: H.patch(p, 0, b"MOEQBL09")), ("byte 0",)),
    ("header length 2^64-1", record(lambda c, p: H.patch(p, 8, struct.pack("<Q", (1 << 64) - 1))), ("byte 8",)),
    ("header not JSON", record(lambda c, p: H.patch(p, 16, b"!!")), ("byte 16",)),
    ("positions 2^62", header(positions=1 << 62), ("positions",)),
    ("top_k 2^61", header(top_k=1 << 61), ("top_k",)),
    ("payload 12 GB claimed (consistent header)", synthetic_payload(frame_size=12 * 10 ** 9, positions=10 ** 9, top_k=1, payload_bytes=12 * 10 ** 9), ("payload",)),
    ("payload damaged", record(lambda c, p: H.patch(p, os.path.getsize(p) - 200, b"\xAA" * 32)), ("byte",)),
    ("payload_xxh3 wrong", header(payload_xxh3="0123456789abcdef"), ("payload",)),
    ("vocabulary 100", header(vocabulary=100), ("vocabulary",)),
    ("token id beyond the vocabulary", synthetic_payload(bad_id=True), ("600",)),
    ("NaN log-probability (valid xxh3)", synthetic_payload(nan=True), ("nan",)),
]
for label, build, culprit in BASELOGITS:
    add(f"validate/base logits {label}", "validate", build, err=["bl.bin", culprit])
add("validate/base logits made for other text", "validate",
    lambda c: ["validate", c.art("q.gguf"), "--base", model(c), "--text", text(c, "long.txt", "long.txt"), "--ctx", "32", "--base-logits", c.art("bl.bin")], err=["bl.bin"])

# ------------------------------------------------------------------ command-line usage (exit 64) and bench
H.section("F12. command-line usage and bench")

USAGE = [
    ("convert", ["convert", "{m}", "-o", "{o}", "--recipe", "Q8_0", "--bogus"], ("--bogus",)),
    ("convert", ["convert", "{m}", "--recipe", "Q8_0"], ("output",)),
    ("convert", ["convert", "{m}", "-o", "{o}", "--recipe", "Q9"], ("Q9",)),
    ("convert", ["convert", "{m}", "-o", "{o}", "--recipe", "Q8_0", "--recipe-file", "{m}/config.json"], ("recipe",)),
    ("convert", ["convert", "{m}", "-o", "{o}", "--recipe", "Q8_0", "--shard", "0/2"], ("shard",)),
    ("convert", ["convert", "{m}", "-o", "{o}", "--recipe", "Q8_0", "--shard", "3/2"], ("shard",)),
    ("convert", ["convert", "{m}", "-o", "{o}", "--recipe", "Q8_0", "--shard", "1/0"], ("shard",)),
    ("convert", ["convert", "{m}", "-o", "{o}", "--recipe", "Q8_0", "--shard", "a/b"], ("shard",)),
    ("convert", ["convert", "{m}", "-o", "{o}", "--recipe", "Q8_0", "--page-size", "1000"], ("page-size",)),
    ("convert", ["convert", "{m}", "-o", "{o}", "--recipe", "Q8_0", "--layout", "bogus"], ("layout",)),
    ("convert", ["convert", "{m}", "-o", "{o}", "--recipe", "Q8_0", "--format", "bogus"], ("format",)),
    ("convert", ["convert", "{m}", "-o", "{o}", "--recipe", "Q8_0", "--threads", "0"], ("threads",)),
    ("convert", ["convert", "{m}", "-o", "{o}", "--recipe", "Q8_0", "--threads", "-1"], ("threads",)),
    ("convert", ["convert", "{m}", "-o", "{m}.txt", "--recipe", "Q8_0"], (".gguf",)),
    ("eval", ["eval", "{m}"], ("--tokens",)),
    ("eval", ["eval", "{m}", "--tokens", "{m}/config.json", "--threads", "-1"], ("threads",)),
    ("validate", ["validate", "{o}", "--base", "{m}", "--tokens", "x", "--ctx", "2"], ("ctx",)),
    ("validate", ["validate", "{o}", "--base", "{m}", "--tokens", "x", "--top-k", "0"], ("top-k",)),
    ("validate", ["validate", "{o}", "--base", "{m}", "--tokens", "x", "--arithmetic", "fast"], ("arithmetic",)),
    ("imatrix", ["imatrix", "{m}", "--tokens", "x", "-o", "{o}", "--ctx", "1"], ("ctx",)),
    ("pack", ["pack", "{m}", "-o", "{o}.d", "--level", "0"], ("level",)),
    ("pack", ["pack", "{m}", "-o", "{o}.d", "--level", "99"], ("level",)),
    ("synth", ["synth", "--arch", "bogus", "--preset", "tiny", "--out", "{o}.d"], ("arch",)),
    ("synth", ["synth", "--arch", "qwen3_moe", "--preset", "bogus", "--out", "{o}.d"], ("bogus",)),
    ("synth", ["synth", "--arch", "qwen3_moe", "--preset", "tiny", "--out", "{o}.d", "--layers", "0"], ("layers",)),
    ("synth", ["synth", "--arch", "qwen3_moe", "--preset", "tiny", "--out", "{o}.d", "--shard-bytes", "0"], ("shard-bytes",)),
    ("synth", ["synth", "--arch", "qwen3_moe", "--preset", "tiny", "--out", "{o}.d", "--seed", "-1"], ("seed",)),
    ("dump", ["dump", "{m}", "-o", "{o}.npy"], ("tensor",)),
    ("verify", ["verify"], ("path",)),
    ("moeq", ["frobnicate"], ("frobnicate",)),
    ("bench", ["bench", "quant", "--types", "BOGUS"], ("BOGUS",)),
    ("bench", ["bench", "quant", "--rows", "-1"], ("rows",)),
]
def usage(c, argv):
    m = model(c) if any("{m}" in a for a in argv) else c.p("model")
    return [a.format(m=m, o=c.p("o.gguf")) for a in argv]


for group, argv, culprit in USAGE:
    add(f"{group}/usage {' '.join(a for a in argv[1:] if '{' not in a)}", group, lambda c, argv=argv: usage(c, argv),
        rc=64, err=[culprit], not_err=["Missing value"], post=absent("o.gguf"))
add("synth/--layers 1000 --sparse (beyond the preset)", "synth", lambda c: ["synth", "--arch", "qwen3_moe", "--preset", "tiny", "--sparse", "--layers", "1000", "--out", c.p("s")],
    rc=(1, 64), err=["layers"], post=absent("s"))

BENCH = [(["--width", "100"], "width"), (["--rows", "0"], "rows"), (["--repeats", "0"], "repeats"), (["--threads", "0"], "threads"),
         (["--width", str(1 << 40)], "width"), (["--rows", str(1 << 40)], "rows")]
for extra, culprit in BENCH:
    add(f"bench/quant {' '.join(extra)}", "bench", lambda c, extra=extra: ["bench", "quant", "--types", "Q8_0", "--repeats", "1", "--rows", "1", "--width", "256"] + extra,
        rc=(1, 64), err=[culprit])
add("bench/quant tiny (control)", "bench", lambda c: ["bench", "quant", "--types", "Q8_0", "--repeats", "1", "--rows", "1", "--width", "256"], rc=0)
add("bench/quant --ggml /nonexistent", "bench", lambda c: ["bench", "quant", "--types", "Q8_0", "--repeats", "1", "--rows", "1", "--width", "256", "--ggml", c.p("nope.so")], err=["nope.so"])
add("bench/quant --ggml a text file", "bench", lambda c: ["bench", "quant", "--types", "Q8_0", "--repeats", "1", "--rows", "1", "--width", "256", "--ggml", c.mk("fake.so", b"not a library")], err=["fake.so"])

# ------------------------------------------------------------------ dump / inspect / eval odds and ends
H.section("F13. dump / inspect / eval odds and ends")

add("dump/tensor not found", "dump", lambda c: ["dump", model(c), "no.such.tensor", "-o", out(c, "x.npy")], err=["no.such.tensor"], post=absent("x.npy"))
add("dump/-o an existing directory", "dump", lambda c: ["dump", model(c), "model.norm.weight", "-o", (os.makedirs(c.p("d")), c.protect(c.p("d")))[1]], err=["d"])
add("dump/GGUF tensor not found", "dump", lambda c: ["dump", c.art("q.gguf"), "nope", "-o", out(c, "x.npy")], err=["nope"], post=absent("x.npy"))
def int4_dir(c, mutate=None):
    """The compressed-tensors INT4 fixture with a supported config.json (qwen3_moe's plus its quantization_config)."""
    d = c.fixture("int4", "int4")
    cfg = H.jload(os.path.join(c.fixtures, Q, "config.json"))
    cfg["quantization_config"] = H.jload(os.path.join(c.fixtures, "int4", "config.json"))["quantization_config"]
    H.jdump(os.path.join(d, "config.json"), cfg)
    if mutate:
        mutate(os.path.join(d, "int4.safetensors"))
    return ["dump", d, "M.weight", "-o", out(c, "x.npy")]


def int4_shape(path, columns):
    h, d = H.st_read(path)
    start = h["M.weight_shape"]["data_offsets"][0]
    H.st_write(path, h, d[:start] + struct.pack("<qq", 16, columns) + d[start + 16:])


add("dump/int4 weight (control)", "dump", lambda c: int4_dir(c), rc=0)
add("dump/int4 weight_scale with the wrong shape", "dump", lambda c: int4_dir(c, lambda p: H.st_edit(p, lambda h, _: h["M.weight_scale"].update(shape=[2, 16]))),
    err=["M.weight_scale"], post=absent("x.npy"))
add("dump/int4 weight_shape claims 2^40 columns", "dump", lambda c: int4_dir(c, lambda p: int4_shape(p, 1 << 40)), err=["M.weight"], post=absent("x.npy"))
add("dump/int4 weight_shape negative", "dump", lambda c: int4_dir(c, lambda p: int4_shape(p, -64)), err=["M.weight"], post=absent("x.npy"))
add("eval/--tokens ids beyond the vocabulary", "eval", lambda c: ["eval", model(c), "--tokens", toks(c, "1 2 600 3")], err=["tok.txt", "600"])
add("eval/--tokens negative id", "eval", lambda c: ["eval", model(c), "--tokens", toks(c, "1 2 -4 3")], err=["tok.txt", "-4"])
add("eval/--tokens not numbers", "eval", lambda c: ["eval", model(c), "--tokens", toks(c, "1 2 three")], err=["three"])
add("eval/--tokens .npy float32", "eval", lambda c: ["eval", model(c), "--tokens", c.inp(H.npy(c.p("t.npy"), "<f4", [1.0, 2.0], fmt="f"))], err=["t.npy"])
add("eval/--tokens .npy int64 2^62", "eval", lambda c: ["eval", model(c), "--tokens", c.inp(H.npy(c.p("t.npy"), "<i8", [1, 1 << 62, 2], fmt="q"))], err=["t.npy"])
add("eval/--tokens .npy header length beyond the file", "eval", lambda c: ["eval", model(c), "--tokens", c.mk("t.npy", b"\x93NUMPY\x01\x00\xff\xff{'descr'")], err=["t.npy"])
add("eval/model dir without safetensors", "eval", lambda c: ["eval", (lambda d: (os.remove(st_of(d)), d)[1])(model(c)), "--tokens", toks(c)], err=["model"])
add("inspect/a GGUF file (not a checkpoint)", "inspect", lambda c: ["inspect", c.art("q.gguf")], rc=(0, 1))
add("inspect/--tensors with a bad glob", "inspect", lambda c: ["inspect", model(c), "--tensors", "[*"], rc=(0, 1))
add("inspect/deepseek control", "inspect", lambda c: ["inspect", model(c, DS)], rc=0)


# ------------------------------------------------------------------ gpt-oss MXFP4 experts and DeepSeek-V3.2 / GLM-5 configs
H.section("F14. MXFP4 experts, DSA configs")
MXF = "gpt_oss-mxfp4"
BLOCKS = "model.layers.1.mlp.experts.down_proj_blocks"


def mxfp4_dir(c, mutate):
    d = c.fixture(MXF)
    mutate(st_of(d))
    return convert(d, out(c), recipe="MXFP4_MOE")


def cfg_dir(c, fixture, edit):
    d = c.fixture(fixture)
    cfg = H.jload(os.path.join(d, "config.json"))
    edit(cfg)
    H.jdump(os.path.join(d, "config.json"), cfg)
    return convert(d, out(c))


add("convert/mxfp4 control", "convert", lambda c: mxfp4_dir(c, lambda p: None), rc=0)
def drop_tensor(name):
    """Removes tensor `name` and its bytes from a safetensors file (later tensors move down)."""
    def mutate(path):
        h, d = H.st_read(path)
        start, end = h.pop(name)["data_offsets"]
        for k, v in h.items():
            if k != "__metadata__" and v["data_offsets"][0] >= end:
                v["data_offsets"] = [v["data_offsets"][0] - (end - start), v["data_offsets"][1] - (end - start)]
        H.st_write(path, h, d[:start] + d[end:])
    return mutate


add("convert/mxfp4 _scales missing", "convert",
    lambda c: mxfp4_dir(c, drop_tensor(BLOCKS.replace("_blocks", "_scales"))),
    err=[BLOCKS.replace("_blocks", "_scales")], post=absent("out.gguf"))
add("convert/mxfp4 _scales with the wrong shape", "convert",
    lambda c: mxfp4_dir(c, lambda p: H.st_edit(p, lambda h, _: h[BLOCKS.replace("_blocks", "_scales")].update(shape=[8, 64, 1, 1]))),
    err=[BLOCKS.replace("_blocks", "_scales")], post=absent("out.gguf"))
add("convert/mxfp4 _blocks not U8", "convert",
    lambda c: mxfp4_dir(c, lambda p: H.st_edit(p, lambda h, _: h[BLOCKS].update(dtype="I8"))), err=[BLOCKS], post=absent("out.gguf"))
add("convert/deepseek_v32 index_topk 0", "convert",
    lambda c: cfg_dir(c, "deepseek_v32-bf16-sharded", lambda cfg: cfg.update(index_topk=0)), err=["index_topk"], post=absent("out.gguf"))
add("convert/deepseek_v32 index_head_dim below the rope dims", "convert",
    lambda c: cfg_dir(c, "deepseek_v32-bf16-sharded", lambda cfg: cfg.update(index_head_dim=8)), err=["index_head_dim"],
    post=absent("out.gguf"))
add("convert/glm_moe_dsa shared indexer layers", "convert",
    lambda c: cfg_dir(c, "glm_moe_dsa-bf16-sharded", lambda cfg: cfg.update(indexer_types=["full", "shared", "full"])),
    err=["indexer_types"], post=absent("out.gguf"))

KL = "kimi_linear-bf16-sharded"
add("convert/kimi_linear without linear_attn_config", "convert",
    lambda c: cfg_dir(c, KL, lambda cfg: cfg.pop("linear_attn_config")), err=["linear_attn_config"], post=absent("out.gguf"))
add("convert/kimi_linear kda_layers 0-based", "convert",
    lambda c: cfg_dir(c, KL, lambda cfg: cfg["linear_attn_config"].update(kda_layers=[0, 2])), err=["kda_layers"], post=absent("out.gguf"))
add("convert/kimi_linear a layer both KDA and MLA", "convert",
    lambda c: cfg_dir(c, KL, lambda cfg: cfg["linear_attn_config"].update(kda_layers=[1, 2, 3])), err=["kda_layers"],
    post=absent("out.gguf"))

add("fit/kimi_linear: 16-wide KDA projections no type fits keep their recipe's (control)", "fit",
    lambda c: ["fit", c.fixture(KL), "--budget", "150KiB", "--text", text(c), "--ctx", "32", "-o", out(c)], rc=0)
add("fit/--arithmetic of another tool", "fit",
    lambda c: ["fit", c.fixture(KL), "--budget", "150KiB", "--text", text(c), "--ctx", "32", "--arithmetic", "cuda", "-o", out(c)],
    rc=64, err=["arithmetic"], post=absent("out.gguf"))
add("fit/--tie-gate-up of no known kind", "fit",
    lambda c: ["fit", c.fixture(KL), "--budget", "150KiB", "--text", text(c), "--ctx", "32", "--tie-gate-up", "experts",
               "-o", out(c)], rc=64, err=["tie-gate-up"], post=absent("out.gguf"))
add("fit/--arithmetic exact --dry-run (control)", "fit",
    lambda c: ["fit", c.fixture(KL), "--budget", "150KiB", "--text", text(c), "--ctx", "32", "--arithmetic", "exact", "--dry-run",
               "-o", out(c)], rc=0, post=absent("out.gguf"))


def cases():
    return CASES
