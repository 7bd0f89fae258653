"""Scenario cases of run_suite.py: concurrent writers, SIGINT / SIGTERM / kill -9 during convert, --resume after
the source changed or the journal was tampered with, ENOSPC on a small tmpfs (a size sweep for convert and one
full disk per writing command), read-only output directories. Privileged ones SKIP when mounting is impossible."""
import json
import os
import signal
import time

import hostile_lib as H
from hostile_lib import Q, WIDE, Case, absent, check_result, convert, model, text, toks

CASES = []
LOCK_WORDS = ("lock", "in use", "busy", "another")


def add(name, group, build=None, **kw):
    CASES.append(Case(name, group, build, **kw))


def verify_ok(c, path, label):
    v = c.run(["verify", path])
    if v.rc != 0:
        c.fail(f"{label}: `moeq verify {os.path.basename(path)}`: {v.describe()}: {H.tail(v.err)}")
    return v.rc == 0


def clean_outputs(directory, stem):
    for name in os.listdir(directory):
        if stem in name:
            p = os.path.join(directory, name)
            if os.path.isdir(p) and not os.path.islink(p):
                H.shutil.rmtree(p)
            else:
                os.remove(p)


# ------------------------------------------------------------------ concurrent writers
H.section("S1. concurrent writers")

def concurrent_converts(c):
    src = c.art("syn")
    o = c.p("same.gguf")
    for rnd in range(3):
        commands = [convert(src, o, "Q4_K_M", "--threads", "2"), convert(src, o, "Q8_0", "--threads", "1")]
        if rnd % 2:
            commands.reverse()
        # Paced (MOEQ_THROTTLE_MS) so the two runs overlap however fast the machine converts.
        procs = [H.spawn(c.moeq, cmd, c.dir, env={**os.environ, "MOEQ_THROTTLE_MS": "20"}) for cmd in commands]
        results = [H.finish(p, 180) for p in procs]
        zeros = 0
        for cmd, r in zip(commands, results):
            label = f"round {rnd + 1} {cmd[-3]}"
            check_result(c, r, (0, 1), label=label)
            if r.timed_out or r.rc not in (0, 1):
                continue
            if r.rc == 0:
                zeros += 1
            else:
                low = r.err.lower()
                if "same.gguf" not in low or not any(w in low for w in LOCK_WORDS):
                    c.fail(f"{label}: the second writer's message should name same.gguf and say it is locked / in use (stderr: {H.tail(r.err)})")
        if zeros > 1:
            c.fail(f"round {rnd + 1}: both writers of same.gguf exited 0")
        if os.path.exists(o) or zeros:
            verify_ok(c, o, f"round {rnd + 1}")
        clean_outputs(c.dir, "same.gguf")


add("convert/two writers of one -o at once (Q4_K_M + Q8_0, 3 rounds)", "convert", scenario=concurrent_converts, serial=True, timeout=200)


def concurrent_exports(c):
    src = c.fixture(WIDE, "model")
    o = c.p("st")
    procs = [H.spawn(c.moeq, ["convert", src, "--format", "safetensors", "--recipe", r, "-o", o], c.dir) for r in ("F32", "BF16")]
    results = [H.finish(p, 120) for p in procs]
    for r, label in zip(results, ("F32", "BF16")):
        check_result(c, r, (0, 1), label=label)
        if not r.timed_out and r.rc == 1:
            low = r.err.lower()
            if "st" not in low or not any(w in low for w in LOCK_WORDS):
                c.fail(f"{label}: the second writer's message should name the directory and say it is locked / in use (stderr: {H.tail(r.err)})")
    if os.path.isdir(o):
        i = c.run(["inspect", o])
        if i.rc != 0:
            c.fail(f"the directory left by two concurrent exports is not one checkpoint: `moeq inspect` {i.describe()}: {H.tail(i.err)}")


add("convert/two --format safetensors writers of one directory at once", "convert", scenario=concurrent_exports, serial=True, timeout=200)

# ------------------------------------------------------------------ signals during convert, then --resume
H.section("S2. signals and --resume")


def interrupted(sig, delay, fixture_or_art, recipe, threads, expect_kept, throttle="200"):
    def scenario(c):
        src = c.art("syn") if fixture_or_art == "syn" else c.fixture(fixture_or_art, "model")
        o = c.p("o.gguf")
        # MOEQ_THROTTLE_MS paces the writes so the signal lands mid-conversion on any machine; --resume runs at speed.
        p = H.spawn(c.moeq, convert(src, o, recipe, "--threads", str(threads)), c.dir, env={**os.environ, "MOEQ_THROTTLE_MS": throttle})
        time.sleep(delay)
        if p.poll() is not None:
            c.fail(f"the conversion finished within {delay} s, before the signal: the scenario needs a slower conversion")
            H.finish(p, 10)
            return
        p.send_signal(sig)
        r = H.finish(p, 60)
        graceful = r.rc in (1, 128 + sig)
        if not (r.rc == -sig or graceful):
            c.fail(f"after {signal.Signals(sig).name}: {r.describe()} (expected death by that signal or a clean nonzero exit): {H.tail(r.err)}")
        if os.path.exists(o):
            c.fail(f"after {signal.Signals(sig).name}: a file exists under the final name o.gguf")
        resumed = c.run(convert(src, o, recipe, "--threads", "2", "--resume", "--events"), timeout=180)
        if not check_result(c, resumed, 0, label="--resume"):
            return
        verify_ok(c, o, "after --resume")
        kept = 0
        for line in resumed.err.splitlines():
            if line.startswith("{"):
                try:
                    kept += bool(json.loads(line).get("kept_from_earlier_run"))
                except ValueError:
                    pass
        if expect_kept and kept == 0:
            c.fail(f"--resume kept nothing of {delay:.0f} s of conversion work: the journal is not made durable by time")
    return scenario


add("convert/SIGINT after 12 s, --resume keeps work (durability by time)", "convert",
    scenario=interrupted(signal.SIGINT, 12, WIDE, "Q4_K_M", 1, True, throttle="300"), serial=True, timeout=300,
    note="assumes the journal is made durable at least every ~10 s")
add("convert/SIGTERM mid-conversion, then --resume", "convert", scenario=interrupted(signal.SIGTERM, 1.5, "syn", "Q4_K_M", 1, False), serial=True, timeout=200)
add("convert/kill -9 mid-conversion, then --resume", "convert", scenario=interrupted(signal.SIGKILL, 1.5, "syn", "Q4_K_M", 1, False), serial=True, timeout=200)


def killed_then(action, expect_identical=True):
    """MOEQ_KILL_AT SIGKILLs the conversion at a byte count; `action` tampers; --resume must then give exactly what a
    fresh conversion of the (possibly changed) source gives."""
    def scenario(c):
        src = model(c)
        o = c.p("o.gguf")
        env = dict(os.environ, MOEQ_SYNC_MB="0", MOEQ_KILL_AT=action[0])
        r = c.run(convert(src, o), env=env)
        if r.rc != -signal.SIGKILL:
            c.fail(f"MOEQ_KILL_AT={action[0]}: expected SIGKILL from the kill hook, got {r.describe()}: {H.tail(r.err)}")
            return
        if os.path.exists(o):
            c.fail("a file exists under the final name after the kill")
        action[1](c, src, o)
        c.rebaseline()
        resumed = c.run(convert(src, o, "Q8_0", "--resume"))
        if not check_result(c, resumed, 0, label="--resume"):
            return
        fresh = c.run(convert(src, c.p("fresh.gguf")))
        if check_result(c, fresh, 0, label="fresh conversion") and H.read(o) != H.read(c.p("fresh.gguf")):
            c.fail("the resumed file differs from a fresh conversion of the same source (stale units kept)")
        verify_ok(c, o, "after --resume")
    return scenario


def change_source(c, src, o):
    H.st_poke_f32(os.path.join(src, "model.safetensors"), "model.embed_tokens.weight", 0, 123.0)
    os.utime(os.path.join(src, "model.safetensors"))


def garbage_journal(c, src, o):
    j = o + ".journal"
    if not os.path.exists(j):
        c.fail("no journal beside the killed conversion")
        return
    lines = H.read(j).split(b"\n")
    H.write(j, lines[0] + b"\n" + b"zzzzzzzzzzzzzzzz token_embd.weight\n0000000000000000 blk.0.attn_q.weight\n\x00\xff garbage\n" + b"\n".join(lines[1:3]) + b"\n")


def tamper_partial(c, src, o):
    partial = os.path.join(c.dir, ".o.gguf.partial")
    if not os.path.exists(partial):
        c.fail("no .o.gguf.partial beside the killed conversion")
        return
    H.patch(partial, 20000, b"\xAA" * 64)  # inside token_embd.weight (written first)


add("convert/kill, source tensor changed, --resume redoes it", "convert", scenario=killed_then(("150000", change_source)), serial=True)
add("convert/kill, journal garbage, --resume", "convert", scenario=killed_then(("150000", garbage_journal)), serial=True)
add("convert/kill, temp file bytes damaged, --resume", "convert", scenario=killed_then(("150000", tamper_partial)), serial=True)
add("convert/kill just before the rename, --resume", "convert", scenario=killed_then(("rename", lambda c, s, o: None)), serial=True)

# ------------------------------------------------------------------ ENOSPC
H.section("S3. ENOSPC and read-only output directories")


def enospc_sweep(c):
    if not H.mount_possible():
        raise H.Skip("cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)")
    src = c.fixture(Q, "model")
    size = os.path.getsize(c.base.p("q.gguf"))
    pages = size // 4096 + 1
    for extra in list(range(-3, 7)) + [9, 12]:
        cap = (pages + extra) * 4096
        mnt = c.p(f"fs{extra + 10}")
        with H.tmpfs(mnt, cap):
            o = os.path.join(mnt, "o.gguf")
            r = c.run(convert(src, o))
            label = f"tmpfs of {pages + extra} pages"
            check_result(c, r, (0, 1), label=label)
            if r.timed_out or r.rc not in (0, 1):
                continue
            if r.rc == 1 and "no space left on device" not in r.err.lower():
                c.fail(f"{label}: exit 1 without the strerror text 'No space left on device' (stderr: {H.tail(r.err)})")
            if os.path.exists(o):
                if not os.path.exists(o + ".manifest.json"):
                    c.fail(f"{label}: o.gguf exists under its final name without o.gguf.manifest.json (exit {r.rc})")
                verify_ok(c, o, label)
            elif r.rc == 0:
                c.fail(f"{label}: exit 0 but no o.gguf")
            if r.rc == 1:
                H.remount(mnt, "size=8m")
                resumed = c.run(convert(src, o, "Q8_0", "--resume"))
                if check_result(c, resumed, 0, label=f"{label}, then --resume with space"):
                    verify_ok(c, o, f"{label}, after --resume")


add("convert/ENOSPC sweep around the output size (manifest included), then --resume", "convert", scenario=enospc_sweep, serial=True, timeout=60)


def full_dir(c, name="full"):
    """A tmpfs whose every page is taken by a filler file: any write there fails with ENOSPC."""
    def fill(path):
        fd = os.open(os.path.join(path, ".filler"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            while os.write(fd, b"\1" * 4096) > 0:
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
    return c.tmpfs(name, 256 << 10, populate=fill)


def ro_dir(c, name="ro"):
    return c.tmpfs(name, 1 << 20, ro=True)


WRITERS = [  # label, group, build(c, directory) -> argv, final output name inside the directory
    ("convert", "convert", lambda c, d: convert(model(c), os.path.join(d, "o.gguf")), "o.gguf"),
    ("convert --layout split", "convert", lambda c, d: convert(model(c), os.path.join(d, "o.gguf"), "Q8_0", "--layout", "split"), "o-00001-of-00002.gguf"),
    ("convert --layout expert-major", "convert", lambda c, d: convert(model(c), os.path.join(d, "o.gguf"), "Q8_0", "--layout", "expert-major"), "o.gguf"),
    ("convert --shard 1/2", "convert", lambda c, d: convert(model(c), os.path.join(d, "o.gguf"), "Q8_0", "--shard", "1/2"), "o.gguf.part-1-of-2"),
    ("convert --format safetensors", "convert", lambda c, d: ["convert", model(c), "--format", "safetensors", "--recipe", "F32", "-o", os.path.join(d, "st")], "st"),
    ("merge", "merge", lambda c, d: ["merge", c.art("m.gguf.part-1-of-2"), c.art("m.gguf.part-2-of-2"), "-o", os.path.join(d, "m.gguf")], "m.gguf"),
    ("dump", "dump", lambda c, d: ["dump", model(c), "lm_head.weight", "-o", os.path.join(d, "x.npy")], "x.npy"),
    ("pack", "pack", lambda c, d: ["pack", model(c), "-o", os.path.join(d, "p")], "p"),
    ("unpack", "unpack", lambda c, d: ["unpack", c.art("packd"), "-o", os.path.join(d, "u")], "u"),
    ("synth", "synth", lambda c, d: ["synth", "--arch", "qwen3_moe", "--preset", "tiny", "--out", os.path.join(d, "s")], "s"),
    ("imatrix", "imatrix", lambda c, d: ["imatrix", model(c), "--text", text(c), "--ctx", "32", "-o", os.path.join(d, "im.gguf")], "im.gguf"),
    ("eval --logits-out", "eval", lambda c, d: ["eval", model(c), "--tokens", toks(c), "--logits-out", os.path.join(d, "l.npy")], "l.npy"),
    ("validate --save-base-logits", "validate", lambda c, d: ["validate", c.art("q.gguf"), "--base", model(c), "--text", text(c), "--ctx", "32", "--save-base-logits", os.path.join(d, "bl.bin")], "bl.bin"),
    ("plan --svg", "plan", lambda c, d: ["plan", model(c), "--target", "rtx4090+64gb", "--svg", os.path.join(d, "p.svg")], "p.svg"),
    ("pipeline", "pipeline", lambda c, d: ["pipeline", c.mk("r.json", json.dumps({"format": "moeq recipe 1", "base": "Q8_0", "source": model(c), "output": os.path.join(d, "o.gguf")}))], "o.gguf"),
]
for label, group, build, final in WRITERS:
    nothing = H.no_files_under if "." not in final else absent  # directory outputs: staged, nothing left on failure
    add(f"{group}/ENOSPC: {label} onto a full disk", group, lambda c, b=build: b(c, full_dir(c)),
        err=["No space left on device"], post=nothing(os.path.join("full", final)))
    add(f"{group}/read-only output directory: {label}", group, lambda c, b=build: b(c, ro_dir(c)),
        err=["Read-only file system"], post=nothing(os.path.join("ro", final)))


def scenario_cases():
    return CASES


# ------------------------------------------------------------------ layer-major validate: events, memory, shards
H.section("S9. validate: --events, --memory 0, --shard / --merge")

def validate_streaming(c):
    args = ["validate", c.art("q.gguf"), "--base", model(c), "--text", text(c), "--ctx", "32"]
    whole = c.run(args + ["--json", "--events"])
    if whole.rc != 0:
        return c.fail(f"--json --events: {whole.describe()}: {H.tail(whole.err)}")
    events = [json.loads(line) for line in whole.err.splitlines() if line.startswith("{")]
    layers = [e for e in events if e.get("event") == "layer"]
    if not layers or events[-1].get("event") != "summary" or {e["model"] for e in layers} != {"quant", "base"}:
        c.fail(f"--events: expected layer events of both models then a summary, got {[e.get('event') for e in events][:8]}")
    elif len(layers) != 2 * layers[0]["layers"] or any(e["layer"] != i % layers[0]["layers"] + 1 for i, e in enumerate(layers)):
        c.fail(f"--events: layers out of order or missing: {[(e['model'], e['layer']) for e in layers]}")
    report = json.loads(whole.out)
    volatile = ("peak_rss_bytes", "resources", "hidden_state_memory_bytes", "read_bytes_per_second")
    spilled = c.run(args + ["--json", "--memory", "0"])
    if spilled.rc != 0 or {k: v for k, v in json.loads(spilled.out).items() if k not in volatile} != {
            k: v for k, v in report.items() if k not in volatile}:
        c.fail(f"--memory 0 (every hidden state in the scratch file) changed the report: {spilled.describe()}")
    parts = []
    for k in (1, 2, 3):
        part = c.p(f"v.part-{k}")
        r = c.run(args + ["--shard", f"{k}/3", "-o", part])
        if r.rc != 0:
            return c.fail(f"--shard {k}/3: {r.describe()}: {H.tail(r.err)}")
        parts.append(part)
    merged = c.run(["validate", "--merge"] + parts[::-1] + ["--json"])
    if merged.rc != 0:
        return c.fail(f"--merge: {merged.describe()}: {H.tail(merged.err)}")
    keep = ("tensors", "base_logits", "bytes_read") + volatile  # a merge reads no weights
    if {k: v for k, v in json.loads(merged.out).items() if k not in keep} != {k: v for k, v in report.items() if k not in keep}:
        c.fail("--merge of 3 shards differs from the single run's report")


add("validate/--events per layer, --memory 0 and 3 shards merged equal the single run", "validate", scenario=validate_streaming, timeout=200)
