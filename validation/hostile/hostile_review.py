"""Cases from a second hostile pass over the CLI (after the first 550 were green): inputs that change under moeq,
non-regular files (FIFOs, devices, /proc), directories pack cannot archive, .npy shapes, --dry-run of a shard,
targets with two memories, routing counts of another model, expert-major GGUFs in plan, recipe rules that match
nothing, duplicate token ids, pipeline stage lists, one kind of moeq output over another, broken bundled specs and
windows past the trained context."""
import json
import os
import subprocess
import time

import hostile_lib as H
from hostile_lib import Q, WIDE, Case, absent, check_result, convert, model, out, toks

CASES = []


def add(name, group, build=None, **kw):
    CASES.append(Case(name, group, build, **kw))


def stderr_has(*words):
    def post(c, r):
        low = r.err.lower()
        return [f"stderr lacks {w!r} (stderr: {H.tail(r.err)})" for w in words if w.lower() not in low]
    return post


def stdout_has(*words):
    def post(c, r):
        return [f"stdout lacks {w!r} (stdout: {H.tail(r.out)})" for w in words if w not in r.out]
    return post


H.section("R1. inputs that change or are not regular files")


def source_shrinks(c):
    """A source shard is truncated while convert reads it (a re-run download): a clean error naming the shard, no
    signal (SIGBUS from the mapping), nothing under the final name."""
    src = c.fixture(WIDE, "model")
    o = c.p("o.gguf")
    p = H.spawn(c.moeq, convert(src, o, "Q4_K_M", "--threads", "1"), c.dir, env={**os.environ, "MOEQ_THROTTLE_MS": "200"})
    time.sleep(1.0)
    if p.poll() is not None:
        H.finish(p, 10)
        c.fail("the conversion finished within 1 s, before the truncation: the scenario needs a slower conversion")
        return
    for name in os.listdir(src):
        if name.endswith(".safetensors"):
            os.truncate(os.path.join(src, name), 1_000_000)
    c.rebaseline()  # the truncation is the test's own doing; moeq must change nothing further
    r = H.finish(p, 120)
    check_result(c, r, 1, err=[".safetensors"])
    if os.path.exists(o):
        c.fail("a file exists under the final name o.gguf")


add("convert/a source shard shrinks mid-conversion", "convert", scenario=source_shrinks, serial=True, timeout=150)


def fifo(c, name):
    p = c.p(name)
    os.mkfifo(p)
    return p


add("inspect/a FIFO without a writer does not hang", "inspect", lambda c: ["inspect", fifo(c, "ff")], err=["ff"])
add("eval/--text a FIFO without a writer does not hang", "eval", lambda c: ["eval", model(c), "--text", fifo(c, "ff")], err=["ff"])


def process_substitution(c):
    """`moeq eval MODEL --text <(cat t.txt)` as a shell runs it: the text arrives through /dev/fd/N, a pipe."""
    d = model(c)
    t = c.mk("t.txt", "In the beginning God created the heaven and the earth.\n")
    c.rebaseline()
    r = subprocess.run(["bash", "-c", 'exec "$0" eval "$1" --text <(cat "$2")', c.moeq, d, t], cwd=c.dir, capture_output=True,
                       text=True, timeout=60, preexec_fn=H.limits)
    check_result(c, H.Result(r.returncode, r.stdout, r.stderr, 0), 0)


add("eval/--text <(cat t.txt) (a pipe) is read", "eval", scenario=process_substitution)
add("eval/--text a /proc file (size 0 in stat) is read", "eval", lambda c: ["eval", model(c), "--text", "/proc/version"], rc=0)
add("pack/a FIFO inside the source directory", "pack",
    lambda c: (lambda d: (os.mkfifo(os.path.join(d, "fifo")), ["pack", d, "-o", c.p("arc")])[1])(model(c)),
    err=["fifo"], post=absent("arc"))
add("pack/a subdirectory inside the source (would be left out)", "pack",
    lambda c: (lambda d: (H.write(os.path.join(d, "sub", "x.txt"), "hi\n"), ["pack", d, "-o", c.p("arc")])[1])(model(c)),
    err=["sub"], post=absent("arc"))
add("pack/an empty directory", "pack", lambda c: (os.makedirs(c.p("emptydir")), ["pack", c.p("emptydir"), "-o", c.p("arc")])[1],
    err=["emptydir"], post=absent("arc"))


def fifo_stays(name):
    def post(c, r):
        import stat
        return [] if stat.S_ISFIFO(os.lstat(c.p(name)).st_mode) else [f"{name} is no longer a FIFO"]
    return post


add("dump/-o a FIFO with --force (never replaced by a file)", "dump",
    lambda c: ["dump", model(c), "model.norm.weight", "-o", fifo(c, "nd"), "--force"], err=["nd"], post=fifo_stays("nd"))

H.section("R2. shapes, plans and counts that did not match")


def npy_tokens(c, name, shape, count):
    header = "{'descr': '<i4', 'fortran_order': False, 'shape': (%d,), }" % shape
    header += " " * (118 - len(header)) + "\n"
    data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
    data += b"".join((3 + i).to_bytes(4, "little") for i in range(count))
    return c.mk(name, data)


add("eval/--tokens .npy shorter than its header's shape", "eval", lambda c: ["eval", model(c), "--tokens", npy_tokens(c, "short.npy", 300, 3)],
    err=["short.npy"])
add("eval/--tokens .npy longer than its header's shape", "eval", lambda c: ["eval", model(c), "--tokens", npy_tokens(c, "long.npy", 10, 300)],
    err=["long.npy"])


def shard_dry_run_matches(c, r):
    lines = [line for line in r.out.splitlines() if "would be written to" in line]
    if not lines or "o.gguf.part-1-of-2" not in lines[-1]:
        return [f"--dry-run --shard 1/2 does not name the part file (stdout: {H.tail(r.out)})"]
    real = c.run(convert(c.p("model"), c.p("o.gguf"), "Q8_0", "--shard", "1/2"))
    if real.rc != 0:
        return [f"the real shard conversion failed: {real.describe()}"]
    size = os.path.getsize(c.p("o.gguf.part-1-of-2"))
    return [] if f" {size} bytes" in lines[-1] else [f"--dry-run says {lines[-1]!r}; the part file has {size} bytes"]


add("convert/--dry-run --shard 1/2 plans the part file", "convert", lambda c: convert(model(c), c.p("o.gguf"), "Q8_0", "--shard", "1/2", "--dry-run"),
    rc=0, post=shard_dry_run_matches)

for target, culprit in [("rtx4090+256gb+16gb", "16gb"), ("ram:32:60+ram:32:60", "ram:32:60"), ("2xunified:16:448", "unified"),
                        ("3xnvme-gen4", "nvme-gen4"), ("m3-ultra-512gb+m3-ultra-512gb", "m3-ultra-512gb")]:
    add(f"plan/--target {target} (a second memory or N× of one machine)", "plan",
        lambda c, t=target: ["plan", "qwen3-235b-a22b", "--recipe", "Q4_K_M", "--target", t], rc=(1, 64), err=[culprit])
add("plan/--routing an imatrix of another model", "plan",
    lambda c: ["plan", "qwen3-235b-a22b", "--recipe", "Q4_K_M", "--target", "rtx4090+64gb", "--routing", c.art("im.gguf")], err=["im.gguf"])
add("plan/an expert-major GGUF (experts in the pack beside it)", "plan",
    lambda c: (c.art("xm.expert-pack"), ["plan", c.art("xm.gguf")])[1], err=["xm.gguf"])


def recipe_file(c, rules, name="r.json", **extra):
    return c.mk(name, json.dumps({"format": "moeq recipe 1", "base": "Q8_0", "rules": rules, **extra}))


for label, rule in [("projection of another role", {"role": "routed_experts", "projection": "q", "type": "Q4_0"}),
                    ("glob without .weight", {"tensor": "blk.*.attn_v", "type": "Q4_0"}),
                    ("layers past the model", {"layers": [50, 60], "type": "Q4_0"})]:
    add(f"convert/--recipe-file rule that matches nothing: {label} (warned)", "convert",
        lambda c, r=rule: ["convert", model(c), "-o", out(c), "--recipe-file", recipe_file(c, [r])], rc=0, post=stderr_has("r.json", "rules[0]"))
add("convert/--recipe-file tensor glob with an unclosed [", "convert",
    lambda c: ["convert", model(c), "-o", out(c), "--recipe-file", recipe_file(c, [{"tensor": "blk.[0.attn_v.weight", "type": "Q4_0"}])],
    err=["r.json", "rules[0].tensor"], post=absent("out.gguf"))
add("convert/--recipe-file projection name misspelt", "convert",
    lambda c: ["convert", model(c), "-o", out(c), "--recipe-file", recipe_file(c, [{"projection": "dwon", "type": "Q4_0"}])],
    err=["r.json", "rules[0].projection"], post=absent("out.gguf"))


def duplicate_id_tokenizer(c):
    d = model(c)
    t = H.jload(os.path.join(d, "tokenizer.json"))
    vocab = t["model"]["vocab"]
    vocab["("] = vocab[")"]
    H.jdump(os.path.join(d, "tokenizer.json"), t)
    return d


add("convert/tokenizer.json: two tokens with one id", "convert", lambda c: convert(duplicate_id_tokenizer(c), out(c)),
    err=["tokenizer.json"], post=absent("out.gguf"))
add("eval/tokenizer.json: two tokens with one id", "eval", lambda c: ["eval", duplicate_id_tokenizer(c), "--text", c.mk("t.txt", "And (God) said.\n")],
    err=["tokenizer.json"])

for label, stages in [("empty", []), ("report alone", ["report"]),
                      ("write twice", ["source", "decode", "repack-experts", "quantize", "write", "write", "verify", "report"]),
                      ("verify without write", ["source", "verify", "report"])]:
    add(f"pipeline/stages {label}", "pipeline",
        lambda c, s=stages: ["pipeline", c.mk("p.json", json.dumps({"format": "moeq recipe 1", "base": "Q8_0", "source": model(c),
                                                                    "output": c.p("p.gguf"), "stages": s}))],
        err=["p.json", "stages"], post=absent("p.gguf"))

H.section("R3. one kind of moeq output over another, bundled data, context")

add("imatrix/-o a model GGUF moeq converted: refused without --force", "imatrix",
    lambda c: ["imatrix", model(c), "--tokens", toks(c, " ".join(str(3 + i % 400) for i in range(200))), "--ctx", "32",
               "-o", c.protect(c.art("q.gguf", register=False))],
    err=["q.gguf", "--force"])
add("convert/-o an importance matrix moeq wrote: refused without --force", "convert",
    lambda c: convert(model(c), c.protect(c.art("im.gguf", register=False))), err=["im.gguf", "--force"])

add("convert/--layout split again over its own earlier pair (no --force needed)", "convert",
    lambda c: (lambda d: (c.moeq_ok(*convert(d, c.p("sp.gguf"), "Q8_0", "--layout", "split")),
                          convert(d, c.p("sp.gguf"), "Q4_0", "--layout", "split"))[1])(model(c)), rc=0)


def broken_resources(c):
    root = c.p("res")
    models = os.path.join(root, "moeq_ModelCatalog.resources", "models")
    H.write(os.path.join(models, "broken-spec.json"), "{not json")
    r = c.run(["synth", "--arch", "qwen3_moe", "--preset", "qwen3-30b-a3b", "--sparse", "--layers", "1", "--out", c.p("s")],
              env={**os.environ, "MOEQ_RESOURCES": root})
    check_result(c, r, (1, 64), err=["broken-spec.json"])


add("synth/a broken bundled spec under $MOEQ_RESOURCES is named", "synth", scenario=broken_resources)
add("eval/a window past max_position_embeddings is warned about", "eval",
    lambda c: ["eval", model(c), "--tokens", toks(c, " ".join(str(3 + i % 400) for i in range(300)))], rc=0,
    post=stderr_has("max_position_embeddings"))


# ---------------------------------------------------------------- plan: targets no machine is, outputs with --json
H.section("plan targets and outputs (third pass)")
for bad, why in [("m3-ultra-256gb+512gb", "unified-memory"), ("m3-ultra-256gb+rtx5090", "unified-memory"), ("17xh100", "16"),
                 ("1000xgpu:10000000:100", "16"), ("4096x10000000gb", "10 PB")]:
    add(f"plan/--target {bad}", "plan", lambda c, bad=bad: ["plan", "qwen3-30b-a3b", "--recipe", "Q4_K_M", "--target", bad],
        err=[bad, why])
add("plan/--svg and --html the same file", "plan",
    lambda c: ["plan", "qwen3-30b-a3b", "--target", "rtx4090+64gb", "--svg", c.p("a.html"), "--html", c.p("a.html")],
    rc=(1, 64), err=["same file"], post=absent("a.html"))
add("plan/--routing without --target", "plan", lambda c: ["plan", "qwen3-30b-a3b", "--routing", c.p("none.gguf")], rc=(1, 64),
    err=["--target"])


def html_written(name):
    def post(c, r):
        path = c.p(name)
        return [] if os.path.exists(path) and "<svg" in open(path, encoding="utf-8").read() else [f"{name} not written with --json"]
    return post


add("plan/--json --html writes both (control)", "plan",
    lambda c: ["plan", "qwen3-30b-a3b", "--recipe", "Q4_K_M", "--target", "rtx4090+64gb", "--json", "--html", c.p("p.html")], rc=0,
    post=html_written("p.html"))
add("plan/--cache-type q8_0 (llama.cpp spelling, control)", "plan",
    lambda c: ["plan", "qwen3-30b-a3b", "--recipe", "Q4_K_M", "--cache-type", "q8_0"], rc=0)


def json_with_resources(*keys):
    """stdout is one JSON document with these keys and a `resources` block whose peak RSS is measured (> 0)."""
    def post(c, r):
        try:
            document = json.loads(r.out)
        except ValueError:
            return [f"stdout is not JSON: {H.tail(r.out)}"]
        missing = [k for k in keys + ("resources",) if k not in document]
        if missing:
            return [f"--json lacks {missing}"]
        return [] if document["resources"].get("peak_rss_bytes", 0) > 0 else ["resources.peak_rss_bytes is not measured"]
    return post


H.section("--json summaries with resources (issue 19)")
add("verify --json (control)", "verify", lambda c: ["verify", c.art("q.gguf"), "--json"], rc=0,
    post=json_with_resources("tensors", "match"))
add("pack --json (control)", "pack", lambda c: ["pack", model(c), "-o", c.p("packed"), "--json"], rc=0,
    post=json_with_resources("files", "original_bytes", "packed_bytes"))
add("imatrix --json (control)", "imatrix", lambda c: ["imatrix", model(c), "--tokens", toks(c), "--ctx", "8", "-o", c.p("i.gguf"), "--json"],
    rc=0, post=json_with_resources("chunks", "idle_experts"))
add("inspect --json carries resources (control)", "inspect", lambda c: ["inspect", model(c), "--json"], rc=0,
    post=json_with_resources("model"))
add("plan --json carries resources (control)", "plan", lambda c: ["plan", "qwen3-30b-a3b", "--json"], rc=0,
    post=json_with_resources("recipes", "source"))


def cases():
    return CASES
