"""Measurements run inside LLDB's Python, after lldb_plugin/stackmaps.py is imported.

`command script import benchmarks/_in_lldb.py`, then
`script _in_lldb.bench_...(lldb.debugger, ...)`. Results are `@@BENCH {json}` lines.
"""

import json
import os
import sys
import time

import lldb

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _records import bt_record  # noqa: E402

_perf = time.perf_counter


def emit(**kw):
    print("@@BENCH " + json.dumps(kw), flush=True)


def time_cmd(debugger, cmd):
    ci = debugger.GetCommandInterpreter()
    res = lldb.SBCommandReturnObject()
    t0 = _perf()
    ci.HandleCommand(cmd, res)
    dt = _perf() - t0
    return dt, (res.GetOutput() or "") + (res.GetError() or "")


def bench_stackmap_bt(debugger, label, repeat=3, args="--json"):
    runs = []
    doc = None
    out = ""
    for _ in range(repeat):
        dt, out = time_cmd(debugger, f"stackmap bt {args}")
        runs.append(dt)
        if doc is None and "{" in out:
            try:
                doc = json.loads(out[out.find("{") :])
            except ValueError:
                doc = None
    if doc is None:
        emit(**bt_record(label, runs, None, error=out[-500:]))
        return
    emit(**bt_record(label, runs, doc))


def bench_lldb_bt(debugger, label, repeat=1, args=""):
    """LLDB's own `bt` (the first run unwinds; later runs use LLDB's frame cache)."""
    runs = []
    frames = 0
    for _ in range(repeat):
        dt, out = time_cmd(debugger, f"bt {args}".strip())
        runs.append(dt)
        frames = sum(
            1 for line in out.splitlines() if line.strip().startswith(("frame #", "* frame #"))
        )
    emit(kind="lldb_bt", label=label, runs=runs, frames=frames)


def bench_cmd(debugger, label, cmd, repeat=3):
    runs = []
    out = ""
    for _ in range(repeat):
        dt, out = time_cmd(debugger, cmd)
        runs.append(dt)
    emit(kind="cmd", label=label, cmd=cmd, runs=runs, output_tail=out[-400:])


def forget_images():
    import wasmtime_stackmaps as wsm

    s = getattr(wsm, "_lldb_session", None)
    if s is not None:
        s.invalidate()
        s._identity = None
