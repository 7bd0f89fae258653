"""Helpers for run_suite.py: reading and rewriting the formats moeq reads (safetensors, GGUF, moeq's own
containers), hashing input trees, tmpfs mounts. Standard library only."""
import base64
import re
import signal
import contextlib
import hashlib
import json
import os
import resource
import shutil
import struct
import subprocess
import tempfile
import time

# ---------------------------------------------------------------- files and hashes


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(path, "wb") as f:
        f.write(data)
    return path


def jload(path):
    with open(path, "rb") as f:
        return json.loads(f.read())


def jdump(path, obj, raw=False):
    """Writes obj as JSON; raw=True writes obj (a str) unchanged."""
    return write(path, obj if raw else json.dumps(obj, indent=1))


def edit_json(path, fn):
    """Loads, lets fn mutate the document in place (its return value is ignored), writes back."""
    obj = jload(path)
    fn(obj)
    jdump(path, obj)
    return path


def snapshot(path):
    """{relative path: sha256} of a file or every file under a directory (symlinks recorded, not followed)."""
    result = {}
    if os.path.islink(path):
        return {".": "symlink->" + os.readlink(path)}
    if os.path.isfile(path):
        return {".": hashlib.sha256(read(path)).hexdigest()}
    if not os.path.isdir(path):
        return {".": "<missing>"}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            if name == ".moeq-output":
                continue   # moeq's marker in every directory it writes (formats/README.md): not content
            full = os.path.join(root, name)
            rel = os.path.relpath(full, path)
            if os.path.islink(full):
                result[rel] = "symlink->" + os.readlink(full)
            elif os.path.isfile(full):
                result[rel] = hashlib.sha256(read(full)).hexdigest()
            elif os.path.isdir(full):
                result[rel] = "<dir>"
    return result


def diff_snapshots(before, after):
    """Human-readable differences: changed, removed, new entries."""
    out = []
    for key in sorted(set(before) | set(after)):
        if key not in after:
            out.append(f"{key}: removed")
        elif key not in before:
            out.append(f"{key}: new")
        elif before[key] != after[key]:
            out.append(f"{key}: changed")
    return out


def copytree(src, dst):
    shutil.copytree(src, dst, symlinks=True)
    return dst


# ---------------------------------------------------------------- safetensors

def st_read(path):
    """(header dict in file order, data bytes)."""
    raw = read(path)
    n = struct.unpack_from("<Q", raw, 0)[0]
    header = json.loads(raw[8:8 + n])
    return header, raw[8 + n:]


def st_write(path, header, data, header_bytes=None):
    text = header_bytes if header_bytes is not None else json.dumps(header, separators=(",", ":")).encode()
    pad = (8 - len(text) % 8) % 8
    text += b" " * pad
    return write(path, struct.pack("<Q", len(text)) + text + data)


def st_edit(path, fn):
    """fn(header, data) mutates the header in place (its return value is ignored)."""
    header, data = st_read(path)
    fn(header, data)
    st_write(path, header, data)
    return path


def st_tensor(header, name_part):
    """The first tensor name containing name_part."""
    for name in header:
        if name != "__metadata__" and name_part in name:
            return name
    raise KeyError(name_part)


def st_find(model_dir, name_part):
    """(safetensors path, tensor name) holding the first tensor whose name contains name_part."""
    for fname in sorted(os.listdir(model_dir)):
        if fname.endswith(".safetensors"):
            header, _ = st_read(os.path.join(model_dir, fname))
            for name in header:
                if name != "__metadata__" and name_part in name:
                    return os.path.join(model_dir, fname), name
    raise KeyError(name_part)


def st_poke_f32(path, tensor, index, value):
    """Writes one float32 element of an F32 tensor in place (value may be nan/inf)."""
    header, data = st_read(path)
    info = header[tensor]
    assert info["dtype"] == "F32", info
    start = info["data_offsets"][0] + 4 * index
    data = data[:start] + struct.pack("<f", value) + data[start + 4:]
    st_write(path, header, data)


def st_poke_bf16(path, tensor, index, bits):
    header, data = st_read(path)
    info = header[tensor]
    assert info["dtype"] == "BF16", info
    start = info["data_offsets"][0] + 2 * index
    data = data[:start] + struct.pack("<H", bits) + data[start + 2:]
    st_write(path, header, data)


def st_drop(path, tensor):
    """Removes a tensor (and its bytes) from a safetensors file, offsets recomputed."""
    header, data = st_read(path)
    new_header, chunks, cursor = {}, [], 0
    for name, info in header.items():
        if name == "__metadata__":
            new_header[name] = info
            continue
        if name == tensor:
            continue
        a, b = info["data_offsets"]
        chunks.append(data[a:b])
        new_header[name] = dict(info, data_offsets=[cursor, cursor + b - a])
        cursor += b - a
    st_write(path, new_header, b"".join(chunks))


def st_add(path, tensor, dtype, shape, payload):
    header, data = st_read(path)
    header[tensor] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
    st_write(path, header, data + payload)


def index_add(model_dir, tensor, shard):
    p = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(p):
        edit_json(p, lambda j: j["weight_map"].__setitem__(tensor, shard))


def index_drop(model_dir, tensor):
    p = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(p):
        edit_json(p, lambda j: j["weight_map"].pop(tensor, None))


# ---------------------------------------------------------------- GGUF

GGUF_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class GGUF:
    """Parsed GGUF: kv [(key, type, value)] (arrays as (elem_type, [values])), tensors [dict], raw data section."""

    def __init__(self, path):
        raw = read(path)
        self.raw = raw
        assert raw[:4] == b"GGUF", path
        self.version, nt, nk = struct.unpack_from("<IQQ", raw, 4)
        pos = 24
        self.kv = []
        self.kv_offsets = {}

        def string(p):
            n = struct.unpack_from("<Q", raw, p)[0]
            return raw[p + 8:p + 8 + n].decode("utf-8", "replace"), p + 8 + n

        def value(t, p):
            if t in GGUF_SCALAR:
                v = struct.unpack_from(GGUF_SCALAR[t], raw, p)[0]
                return v, p + struct.calcsize(GGUF_SCALAR[t])
            if t == 8:
                return string(p)
            if t == 9:
                et, n = struct.unpack_from("<IQ", raw, p)
                p += 12
                items = []
                for _ in range(n):
                    v, p = value(et, p)
                    items.append(v)
                return (et, items), p
            raise ValueError(f"type {t}")

        for _ in range(nk):
            at = pos
            key, pos = string(pos)
            t = struct.unpack_from("<I", raw, pos)[0]
            self.kv_offsets[key] = (at, pos + 4)
            v, pos = value(t, pos + 4)
            self.kv.append((key, t, v))
        self.alignment = self.get("general.alignment", 32)
        self.tensors = []
        for _ in range(nt):
            at = pos
            name, pos = string(pos)
            nd = struct.unpack_from("<I", raw, pos)[0]
            dims = list(struct.unpack_from(f"<{nd}Q", raw, pos + 4))
            pos += 4 + 8 * nd
            ttype, off = struct.unpack_from("<IQ", raw, pos)
            self.tensors.append({"name": name, "dims": dims, "type": ttype, "offset": off, "info_at": at, "type_at": pos})
            pos += 12
        self.header_end = pos
        a = self.alignment
        self.data_start = (pos + a - 1) // a * a
        self.data = raw[self.data_start:]

    def get(self, key, default=None):
        for k, t, v in self.kv:
            if k == key:
                return v
        return default

    def set(self, key, t, v):
        for i, (k, _, _) in enumerate(self.kv):
            if k == key:
                self.kv[i] = (key, t, v)
                return
        self.kv.append((key, t, v))

    def tensor(self, part):
        return next(t for t in self.tensors if part in t["name"])

    def tensor_bytes(self, t, nbytes):
        return self.data_start + t["offset"], self.data_start + t["offset"] + nbytes

    def serialize(self):
        out = bytearray(b"GGUF" + struct.pack("<IQQ", self.version, len(self.tensors), len(self.kv)))

        def string(s):
            b = s.encode() if isinstance(s, str) else s
            return struct.pack("<Q", len(b)) + b

        def value(t, v):
            if t in GGUF_SCALAR:
                return struct.pack(GGUF_SCALAR[t], v)
            if t == 8:
                return string(v)
            et, items = v
            return struct.pack("<IQ", et, len(items)) + b"".join(value(et, x) for x in items)

        for k, t, v in self.kv:
            out += string(k) + struct.pack("<I", t) + value(t, v)
        for t in self.tensors:
            out += string(t["name"]) + struct.pack("<I", len(t["dims"])) + b"".join(struct.pack("<Q", d) for d in t["dims"])
            out += struct.pack("<IQ", t["type"], t["offset"])
        a = self.alignment
        out += b"\0" * ((a - len(out) % a) % a)
        return bytes(out) + self.data

    def save(self, path):
        return write(path, self.serialize())


def patch(path, offset, data):
    """Overwrites bytes at offset in place."""
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
    return path


def truncate(path, size):
    with open(path, "r+b") as f:
        f.truncate(size)
    return path


# ---------------------------------------------------------------- moeq containers (magic + u64 length + JSON + rest)

def container_read(path, magic_len=8):
    raw = read(path)
    n = struct.unpack_from("<Q", raw, magic_len)[0]
    start = magic_len + 8
    return raw[:magic_len], json.loads(raw[start:start + n]), raw[start + n:]


def container_write(path, magic, index, rest, same_length=True, original_len=None):
    """Writes magic + u64 len + JSON + rest. When same_length, pads/keeps the JSON at original_len bytes
    (parts and expert packs store absolute offsets past the index, so the index must not change length)."""
    text = json.dumps(index, indent=1).encode()
    if same_length and original_len is not None:
        if len(text) > original_len:
            text = json.dumps(index, separators=(",", ":")).encode()
        assert len(text) <= original_len, "edited index longer than the original"
        text += b" " * (original_len - len(text))
    return write(path, magic + struct.pack("<Q", len(text)) + text + rest)


def container_edit(path, fn):
    raw = read(path)
    n = struct.unpack_from("<Q", raw, 8)[0]
    magic, index, rest = container_read(path)
    fn(index)  # in place; the return value is ignored
    container_write(path, magic, index, rest, original_len=n)
    return path


def base_logits_edit(path, fn):
    """Edits the JSON header of a MOEQBL01 record (its length may change: only the payload follows)."""
    magic, header, rest = container_read(path)
    fn(header)  # in place; the return value is ignored
    text = json.dumps(header, indent=1).encode()
    return write(path, magic + struct.pack("<Q", len(text)) + text + rest)


# ---------------------------------------------------------------- small writers

def npy(path, dtype_descr, values, shape=None, fmt=None):
    """A .npy (version 1.0) of values packed with struct format fmt (one char per element)."""
    shape = shape or (len(values),)
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (dtype_descr, ", ".join(map(str, shape)) + ("," if len(shape) == 1 else ""))
    header = header.encode()
    total = 10 + len(header) + 1
    header += b" " * ((64 - total % 64) % 64) + b"\n"
    body = struct.pack("<%d%s" % (len(values), fmt), *values) if values else b""
    return write(path, b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body)


def imatrix_dat(path, entries, trailer=True, count=None):
    """Legacy llama.cpp imatrix .dat: int32 count; per entry int32 len, name, int32 ncall, int32 nval, f32[nval]."""
    out = struct.pack("<i", len(entries) if count is None else count)
    for name, ncall, values in entries:
        b = name.encode()
        out += struct.pack("<i", len(b)) + b + struct.pack("<ii", ncall, len(values)) + struct.pack(f"<{len(values)}f", *values)
    if trailer:
        ds = b"calibration.txt"
        out += struct.pack("<i", 10) + struct.pack("<i", len(ds)) + ds
    return write(path, out)


def zstd_raw(data):
    """A valid zstd frame holding data in raw (stored) blocks, with its content size: lets the suite craft
    payloads without a zstd library."""
    out = bytearray(struct.pack("<I", 0xFD2FB528) + bytes([0xE0]) + struct.pack("<Q", len(data)))
    chunks = [data[i:i + (128 << 10)] for i in range(0, len(data), 128 << 10)] or [b""]
    for i, chunk in enumerate(chunks):
        last = 1 if i == len(chunks) - 1 else 0
        out += struct.pack("<I", last | (len(chunk) << 3))[:3] + chunk
    return bytes(out)


def tiktoken_line(token_bytes, rank):
    return base64.b64encode(token_bytes).decode() + " " + str(rank) + "\n"


# ---------------------------------------------------------------- mounts (root only; callers SKIP when impossible)

_MOUNT_OK = None


def mount_possible():
    global _MOUNT_OK
    if os.environ.get("MOEQ_HOSTILE_NO_MOUNT"):
        return False  # for testing the SKIP path, or CI without privileges
    if _MOUNT_OK is None:
        probe = tempfile.mkdtemp(prefix="moeq-hostile-mnt-")
        try:
            ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", probe], capture_output=True).returncode == 0
            if ok:
                subprocess.run(["umount", probe], capture_output=True)
            _MOUNT_OK = ok
        except OSError:
            _MOUNT_OK = False
        finally:
            os.rmdir(probe)
    return _MOUNT_OK


@contextlib.contextmanager
def tmpfs(path, size_bytes):
    """A tmpfs of size_bytes at path (created), unmounted afterwards."""
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", path], capture_output=True, text=True)
    if r.returncode != 0:
        raise OSError("mount tmpfs failed: " + r.stderr.strip())
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], capture_output=True)


def remount(path, options):
    r = subprocess.run(["mount", "-o", "remount," + options, path], capture_output=True, text=True)
    if r.returncode != 0:
        raise OSError("remount failed: " + r.stderr.strip())



# ---------------------------------------------------------------- running moeq

ADDRESS_SPACE = 4 << 30


def limits():
    """preexec_fn: 4 GiB of address space (an allocation sized from input fails fast), no core files."""
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class Result:
    def __init__(self, rc, out, err, seconds, timed_out=False):
        self.rc, self.out, self.err, self.seconds, self.timed_out = rc, out, err, seconds, timed_out

    def describe(self):
        if self.timed_out:
            return f"timed out after {self.seconds:.0f} s"
        if self.rc < 0:
            return f"killed by {signame(self.rc)}"
        return f"exit {self.rc}"


def spawn(moeq, args, cwd, env=None):
    """Starts moeq under the limits in its own process group."""
    p = subprocess.Popen([moeq] + [str(a) for a in args], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, preexec_fn=limits, start_new_session=True)
    p.started = time.time()
    return p


def finish(p, timeout):
    """Waits for a spawned moeq; on timeout the whole process group is killed."""
    try:
        out, err = p.communicate(timeout=max(0.1, timeout - (time.time() - p.started)))
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        timed_out = True
    return Result(p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), time.time() - p.started, timed_out)


# ---------------------------------------------------------------- cases and checks

ERROR_LINE = re.compile(r"^(moeq: )?error:", re.I | re.M)
# Rules every failing run's stderr must also follow (the "Messages" findings): the strerror text, not a bare
# errno number, and no raw Foundation NSError dump.
BARE_ERRNO = re.compile(r"\(errno \d+\)")
NSERROR = "Error Domain="


class Skip(Exception):
    pass


def signame(rc):
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


_SECTION = [""]


def section(title):
    """Cases added after this call belong to `title` (the report groups failures by section)."""
    _SECTION[0] = title


class Case:
    """build(c) -> argv (moeq's arguments), or scenario(c) runs everything itself and calls c.fail."""

    def __init__(self, name, group, build=None, rc=1, err=(), not_err=(), post=None, scenario=None, timeout=None,
                 new_ok=False, serial=False, note=""):
        self.section = _SECTION[0]
        self.name, self.group, self.build, self.rc, self.err, self.not_err = name, group, build, rc, err, not_err
        self.post, self.scenario, self.timeout, self.new_ok, self.serial, self.note = post, scenario, timeout, new_ok, serial, note


def check_result(c, r, rc, err=(), not_err=(), label=""):
    """The standard checks on one moeq run; failures go to c.fail. Returns True when all held."""
    n = len(c.failures)
    p = f"{label}: " if label else ""
    if r.timed_out:
        c.fail(f"{p}timed out after {r.seconds:.0f} s")
    elif r.rc < 0:
        c.fail(f"{p}killed by {signame(r.rc)} (stderr: {tail(r.err)})")
    else:
        allowed = rc if isinstance(rc, tuple) else (rc,)
        if r.rc not in allowed:
            c.fail(f"{p}exit {r.rc}, expected {'/'.join(map(str, allowed))} (stderr: {tail(r.err)}; stdout: {tail(r.out, 160)})")
        elif r.rc != 0 and not ERROR_LINE.search(r.err):
            c.fail(f"{p}exit {r.rc} without an 'error:' line on stderr (stderr: {tail(r.err)})")
        if r.rc != 0 and 0 not in allowed:
            low = r.err.lower()
            for want in err:
                options = want if isinstance(want, tuple) else (want,)
                if not any(o.lower() in low for o in options):
                    c.fail(f"{p}stderr lacks {' or '.join(repr(o) for o in options)} (stderr: {tail(r.err)})")
            for bad in not_err:
                if bad.lower() in low:
                    c.fail(f"{p}stderr contains {bad!r} (stderr: {tail(r.err)})")
        if r.rc != 0:
            if BARE_ERRNO.search(r.err):
                c.fail(f"{p}an errno number without its strerror text (stderr: {tail(r.err)})")
            if NSERROR in r.err:
                c.fail(f"{p}a raw Foundation error dump instead of a message (stderr: {tail(r.err)})")
    return len(c.failures) == n


def tail(text, limit=240):
    text = " | ".join(line for line in text.strip().splitlines() if line.strip() and not line.startswith("{"))
    return (text[:limit] + "…") if len(text) > limit else (text or "(empty)")




# ---------------------------------------------------------------- building blocks shared by the case modules

Q, QS, MX, DS, WIDE = "qwen3_moe-f32", "qwen3_moe-bf16-sharded", "mixtral-f32", "deepseek_v3-f32", "trained-qwen3_moe_wide"
DEL = object()


class Raw(str):
    """A JSON token written as is (e.g. 1e12, a float literal)."""


def set_config(d, changes, file="config.json"):
    path = os.path.join(d, file)
    obj, raws = jload(path), {}
    for key, value in changes.items():
        target, parts = obj, key.split("/")
        for p in parts[:-1]:
            target = target[p]
        if value is DEL:
            target.pop(parts[-1], None)
        elif isinstance(value, Raw):
            marker = f"@@RAW{len(raws)}@@"
            raws[json.dumps(marker)] = str(value)
            target[parts[-1]] = marker
        else:
            target[parts[-1]] = value
    text = json.dumps(obj, indent=1)
    for marker, raw in raws.items():
        text = text.replace(marker, raw)
    write(path, text)


def model(c, fixture=Q, name="model", cfg=None):
    d = c.fixture(fixture, name)
    if cfg:
        set_config(d, cfg)
    return d


def toks(c, ids="0 5 17 42 100 7 8 9 11 12 13 14"):
    return c.mk("tok.txt", ids)


def text(c, name="t.txt", source="t.txt"):
    return c.mk(name, read(c.base.p(source)))


def st_of(d):
    return os.path.join(d, "model.safetensors")


def out(c, name="out.gguf"):
    return c.p(name)


def absent(*names):
    def post(c, r):
        return [f"{n} exists afterwards" for n in names if os.path.lexists(c.p(n))]
    return post


def no_files_under(name):
    """The output directory `name` is absent or empty (a failed directory write leaves nothing behind)."""
    def post(c, r):
        d = c.p(name)
        left = [os.path.relpath(os.path.join(root, f), d) for root, _, files in os.walk(d) for f in files] if os.path.isdir(d) else []
        return [f"{name}/ holds {', '.join(sorted(left)[:5])} afterwards"] if left else []
    return post


def verified(name):
    def post(c, r):
        v = c.run(["verify", c.p(name)])
        return [] if v.rc == 0 else [f"`moeq verify {name}` afterwards: {v.describe()}: {tail(v.err)}"]
    return post


def replaced_by(name, prefix):
    def post(c, r):
        return [] if read(c.p(name)).startswith(prefix) else [f"{name} was not replaced by the output"]
    return post


def both(*posts):
    return lambda c, r: sum((p(c, r) or [] for p in posts), [])


def convert(d, o, recipe="Q8_0", *extra):
    return ["convert", d, "-o", o, "--recipe", recipe, *extra]


