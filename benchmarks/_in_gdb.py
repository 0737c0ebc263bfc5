"""Measurements run inside GDB's Python, after gdb_plugin/stackmaps.py is sourced.

`source benchmarks/_in_gdb.py`, then `python bench_...()`. Each result is one
line `@@BENCH {json}` on stdout for the driver script to pick up. The
plugin's objects are reached through its adapter module; the plugin is not changed: counters wrap its objects at run time.
"""

import json
import os
import sys
import time

import gdb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # `source` does not
from _records import bt_record  # noqa: E402

# The plugin's GDB adapter (gdb_plugin/adapter.py); None in a bare GDB (bench_images'
# host-mode baselines run without the plugin: only its unwinder is measured then).
P = sys.modules.get("wasmtime_stackmaps_gdb")

_perf = time.perf_counter
# The plugin unwinder's own __call__, before any wrapper below.
ORIG_CALL = P.WasmUnwinder.__call__ if hasattr(P, "WasmUnwinder") else None


def emit(**kw):
    gdb.write("@@BENCH " + json.dumps(kw) + "\n")
    gdb.flush()


class Counters:
    """Counts the unwinder's calls, claims, time and debugger memory reads."""

    def __init__(self):
        self.reset()
        self.installed = False

    def reset(self):
        self.calls = 0
        self.claimed = 0
        self.time = 0.0
        self.reads = 0
        self.read_bytes = 0

    def install(self):
        if self.installed or not hasattr(P, "WasmUnwinder"):
            return
        self.installed = True
        cls = P.WasmUnwinder
        orig_call = cls.__call__
        me = self

        def counted_call(unwinder, pending):
            t0 = _perf()
            r = orig_call(unwinder, pending)
            me.time += _perf() - t0
            me.calls += 1
            if r is not None:
                me.claimed += 1
            return r

        cls.__call__ = counted_call
        tgt = P.GdbTarget  # the unwinder reads memory through a GdbTarget
        orig_read = tgt.read_memory

        def counted_read(target, address, size):
            me.reads += 1
            me.read_bytes += size
            return orig_read(target, address, size)

        tgt.read_memory = counted_read


COUNTERS = Counters()


def flush_frames():
    """Make GDB forget its frame cache (and the unwinder's memory cache)."""
    try:
        gdb.execute("maintenance flush register-cache", to_string=True)
    except gdb.error:
        gdb.execute("flushregs", to_string=True)
    if hasattr(P, "_UNWINDER"):
        P._UNWINDER.mem = None


def time_cmd(cmd):
    """(seconds, output); a gdb.error ends the output with its message."""
    t0 = _perf()
    try:
        out = gdb.execute(cmd, to_string=True)
    except gdb.error as e:
        out = f"\n<gdb.error: {e}>"
    return _perf() - t0, out


def count_bt_frames(text):
    return sum(1 for line in text.splitlines() if line.startswith("#"))


def bench_stackmap_bt(label, repeat=3, args="--json"):
    """`stackmap bt --json`: first (cold) and later runs, with the stats it reports."""
    runs = []
    doc = None
    for _ in range(repeat):
        flush_frames()
        dt, out = time_cmd(f"stackmap bt {args}")
        runs.append(dt)
        if doc is None:
            start = out.find("{")
            doc = json.loads(out[start:])
    emit(**bt_record(label, runs, doc))


def bench_gdb_bt(label, repeat=3, args=""):
    """GDB's own `bt`, cold frame cache each time; unwinder counters when the plugin is loaded."""
    COUNTERS.install()
    runs = []
    frames = None
    calls = []
    for _ in range(repeat):
        flush_frames()
        COUNTERS.reset()
        dt, out = time_cmd(f"bt {args}".strip())
        runs.append(dt)
        frames = count_bt_frames(out)
        calls.append(
            {
                "calls": COUNTERS.calls,
                "claimed": COUNTERS.claimed,
                "unwinder_time": COUNTERS.time,
                "reads": COUNTERS.reads,
                "read_bytes": COUNTERS.read_bytes,
            }
        )
        last = out.strip().splitlines()[-1] if out.strip() else ""
    emit(
        kind="gdb_bt",
        label=label,
        args=args,
        runs=runs,
        frames=frames,
        unwinder=calls[0] if COUNTERS.installed else None,
        last_line=last[:200],
        plugin=hasattr(P, "_SESSION"),
    )


def bench_frame_walk(label, repeat=3, limit=1_000_000):
    """Unwind only: newest_frame().older() to the end (no printing, no frame filters)."""
    COUNTERS.install()
    runs = []
    first = None
    for _ in range(repeat):
        flush_frames()
        COUNTERS.reset()
        t0 = _perf()
        n = 0
        err = None
        try:
            f = gdb.newest_frame()
            while f is not None and n < limit:
                n += 1
                f = f.older()
        except gdb.error as e:
            err = str(e)
        runs.append(_perf() - t0)
        if first is None:
            first = {
                "calls": COUNTERS.calls,
                "claimed": COUNTERS.claimed,
                "unwinder_time": COUNTERS.time,
                "reads": COUNTERS.reads,
                "read_bytes": COUNTERS.read_bytes,
            }
    emit(
        kind="frame_walk",
        label=label,
        runs=runs,
        frames=n,
        error=err,
        unwinder=first if COUNTERS.installed else None,
    )


def bench_cmd(label, cmd, repeat=3, cold=None):
    """Any command; `cold()` is called before each run."""
    runs = []
    out = ""
    for _ in range(repeat):
        if cold:
            cold()
        dt, out = time_cmd(cmd)
        runs.append(dt)
    emit(kind="cmd", label=label, cmd=cmd, runs=runs, output_tail=out[-400:])


def forget_images():
    """A fresh plugin session for this inferior: the next command rediscovers every image."""
    P._SESSION.invalidate()
    P._SESSION._identity = None


def bench_stop_hook(label, repeat=3):
    """The plugin's stop hook (image discovery) from an empty registry."""
    runs = []
    for _ in range(repeat):
        forget_images()
        t0 = _perf()
        P._on_stop()
        runs.append(_perf() - t0)
    emit(
        kind="stop_hook",
        label=label,
        runs=runs,
        images=len(P._SESSION.registry),
        problems=len(P._SESSION.registry.problems),
    )


def profile_cmd(cmd, path, cold=None, top=25):
    """cProfile one command; stats to `path`, the top entries on stdout."""
    import cProfile
    import io
    import pstats

    if cold:
        cold()
    pr = cProfile.Profile()
    pr.enable()
    try:
        gdb.execute(cmd, to_string=True)
    except gdb.error as e:
        gdb.write(f"(error: {e})\n")
    pr.disable()
    pr.dump_stats(path)
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(top)
    gdb.write(s.getvalue())


def install_noop_unwinder():
    """A Python unwinder that only reads the pc and declines: the floor cost of any
    Python unwinder in GDB (GDB's sniffer, gdb._execute_unwinders, read_register)."""
    import gdb.unwinder

    class Noop(gdb.unwinder.Unwinder):
        def __init__(self):
            super().__init__("bench-noop")
            self.calls = 0
            self.time = 0.0

        def __call__(self, pending):
            t0 = _perf()
            int(pending.read_register("pc"))
            self.time += _perf() - t0
            self.calls += 1
            return None

    global NOOP
    NOOP = Noop()
    gdb.unwinder.register_unwinder(None, NOOP, replace=True)


def bench_reject_micro(label, n=20000):
    """Time the plugin's reject path on a real PendingFrame: a probe unwinder (run
    first) calls the plugin unwinder's __call__ n times on the same pending frame."""
    import gdb.unwinder

    result = {}

    class Probe(gdb.unwinder.Unwinder):
        def __init__(self):
            super().__init__("bench-probe")

        def __call__(self, pending):
            if result:
                return None
            pc = int(pending.read_register("pc"))
            reg = P._SESSION.registry
            if reg.image_at(pc) is not None:
                return None
            u = P._UNWINDER
            t0 = _perf()
            for _ in range(n):
                ORIG_CALL(u, pending)
            t_full = (_perf() - t0) / n
            t0 = _perf()
            for _ in range(n):
                int(pending.read_register(P.ARCHES[P._arch_of(pending)].gdb.pc[0]))
            t_rip = (_perf() - t0) / n
            t0 = _perf()
            for _ in range(n):
                int(pending.read_register("pc"))
            t_reg = (_perf() - t0) / n
            t0 = _perf()
            for _ in range(n):
                pass
            t_loop = (_perf() - t0) / n
            result.update(
                pc=pc,
                in_range=reg.lo <= pc < reg.hi,
                reject=t_full - t_loop,
                read_register=t_reg - t_loop,
                read_arch_pc=t_rip - t_loop,
            )
            return None

    probe = Probe()
    gdb.unwinder.register_unwinder(None, probe, replace=True)
    # Our probe is now first in gdb.frame_unwinders: the next unwind calls it.
    flush_frames()
    try:
        f = gdb.newest_frame()
        for _ in range(3):
            f = f.older()
            if f is None:
                break
    finally:
        probe.enabled = False
        gdb.frame_unwinders[:] = [u for u in gdb.frame_unwinders if u is not probe]
        flush_frames()
    emit(kind="reject_micro", label=label, **result)


def _walk_once(limit=1_000_000):
    flush_frames()
    t0 = _perf()
    n = 0
    try:
        f = gdb.newest_frame()
        while f is not None and n < limit:
            n += 1
            f = f.older()
    except gdb.error:
        pass
    return _perf() - t0, n


def bench_unwinder_ab(label, rounds=15):
    """Interleaved in one session: the frame walk and `bt` with the plugin's unwinder
    (and frame filter) on, with them off, and with only a no-op Python unwinder."""
    install_noop_unwinder()
    NOOP.enabled = False
    U = P._UNWINDER
    F = P._FILTER

    class PassThrough:
        """A frame filter that changes nothing: GDB's own frame-filter cost."""

        def __init__(self):
            self.name = "bench-pass-through"
            self.priority = 0
            self.enabled = False

        def filter(self, it):
            return it

    PT = PassThrough()
    gdb.frame_filters[PT.name] = PT
    configs = {
        "plugin off": (False, False, False),
        "pass-through frame filter only": (False, "pt", False),
        "no-op unwinder only": (False, False, True),
        "plugin unwinder only": (True, False, False),
        "plugin unwinder + frame filter": (True, True, False),
    }
    res = {k: {"walk": [], "bt": []} for k in configs}
    frames = {}
    for _ in range(rounds):
        for name, (u_on, f_on, noop_on) in configs.items():
            U.enabled, F.enabled, NOOP.enabled = u_on, f_on is True, noop_on
            PT.enabled = f_on == "pt"
            dt, n = _walk_once()
            res[name]["walk"].append(dt)
            frames[name] = n
            flush_frames()
            dt, out = time_cmd("bt")
            res[name]["bt"].append(dt)
    U.enabled, F.enabled, NOOP.enabled = True, True, False
    del gdb.frame_filters[PT.name]
    emit(kind="unwinder_ab", label=label, results=res, frames=frames)


def bench_json(label, repeat=3):
    """How much of `stackmap bt --json` is JSON encoding: the same document encoded
    as core/report.py does not (indent=1: Python's pure-Python encoder) and compactly
    (the C encoder), in GDB's Python."""
    dt, out = time_cmd("stackmap bt --json")
    doc = json.loads(out[out.find("{") :])

    def t(fn):
        best = None
        for _ in range(repeat):
            t0 = _perf()
            fn()
            d = _perf() - t0
            best = d if best is None else min(best, d)
        return best

    t_indent = t(lambda: json.dumps(doc, indent=1))
    t_compact = t(lambda: json.dumps(doc))

    def top_level_indent():
        # Same top-level layout (so '{\n "schema": 1' still starts the document),
        # each value encoded by the C encoder.
        return (
            "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in doc.items()) + "\n}"
        )

    t_top = t(top_level_indent)
    emit(
        kind="json",
        label=label,
        command=dt,
        indent1=t_indent,
        compact=t_compact,
        top_level_indent=t_top,
        bytes_indent=len(json.dumps(doc, indent=1)),
    )


def bench_phases(label, cmd="stackmap bt --json", repeat=2):
    """Where the time of one `stackmap` command goes: wraps, at run time, the functions
    a command calls (threads, discovery, walk, heap annotation, report, JSON
    or text rendering). Best of `repeat`."""
    import types

    import wasmtime_stackmaps.handlers as C
    import wasmtime_stackmaps.report as R
    import wasmtime_stackmaps.session as S

    acc = {}

    def timed(name, fn):
        def wrapper(*a, **k):
            t0 = _perf()
            try:
                return fn(*a, **k)
            finally:
                acc[name] = acc.get(name, 0.0) + _perf() - t0

        return wrapper

    saved = []

    def patch(obj, attr, name):
        orig = getattr(obj, attr)
        saved.append((obj, attr, orig))
        setattr(obj, attr, timed(name, orig))

    patch(P.GdbTarget, "threads", "target.threads() (GDB registers, lazy frame lister)")
    patch(S.Session, "discover", "Session.discover (header checks, /proc maps, pc scan)")
    patch(S, "thread_activations", "walk.thread_activations (FP walk, maps, slots, scan)")
    patch(S.heapfind, "annotate", "heapfind.annotate (store ties, GC objects of heap refs)")
    patch(C, "threads_document", "report.threads_document (report records + heap objects)")
    patch(C, "bt_lines", "btrender.bt_lines (text)")
    shim = types.SimpleNamespace(
        **{k: getattr(json, k) for k in dir(json) if not k.startswith("__")}
    )
    shim.dumps = timed("json.dumps (indent=1)", json.dumps)
    saved.append((R, "json", R.json))
    R.json = shim
    best = None
    try:
        for _ in range(repeat):
            acc.clear()
            flush_frames()
            dt, out = time_cmd(cmd)
            if best is None or dt < best[0]:
                best = (dt, dict(acc))
    finally:
        for obj, attr, orig in reversed(saved):
            setattr(obj, attr, orig)
    emit(kind="phases", label=label, cmd=cmd, total=best[0], phases=best[1])
