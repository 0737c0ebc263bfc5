#!/usr/bin/env python3
"""Benchmark 4: plugin load time in GDB and LLDB (goal < 200 ms each).

    .venv/bin/python benchmarks/bench_load.py [--repeat N]

Wall time of `gdb -nx -batch -ex 'source gdb_plugin/stackmaps.py'` minus bare
`gdb -nx -batch`, runs interleaved in the same loop (median of N each), and the
same for `lldb -b -o 'command script import lldb_plugin/stackmaps.py'`. Also
the load measured inside the debugger's Python (perf_counter around the
command). Two byte-code cache states: warm (`.pyc` files in a cache directory
from an earlier load: what an installed checkout sees) and none (empty cache
directory and PYTHONDONTWRITEBYTECODE=1: every module compiled from source,
as in this sandbox where PYTHONDONTWRITEBYTECODE=1 is set).
"""

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time

from _common import (
    GDB_PLUGIN,
    LLDB_PLUGIN,
    cache_dir,
    env,
    fmt_s,
    gdb_path,
    lldb_path,
    lldb_plugin_ready,
    table,
    verdict,
)

GOAL = 0.200


def gdb_argv(load, script=GDB_PLUGIN):
    argv = [gdb_path(), "-nx", "-batch", "-iex", "set debuginfod enabled off"]
    if load:
        argv += [
            "-ex",
            "python import time; __t0 = time.perf_counter()",
            "-ex",
            f"source {script}",
            "-ex",
            "python print('@@LOAD', time.perf_counter() - __t0)",
        ]
    else:
        argv += [
            "-ex",
            "python import time; __t0 = time.perf_counter()",
            "-ex",
            "python print('@@LOAD', time.perf_counter() - __t0)",
        ]
    return argv


def lldb_argv(load):
    argv = [
        lldb_path(),
        "--no-lldbinit",
        "-b",
        "-o",
        "script import time; __t0 = time.perf_counter()",
    ]
    if load:
        argv += ["-o", f"command script import {LLDB_PLUGIN}"]
    argv += ["-o", "script print('@@LOAD', time.perf_counter() - __t0)"]
    return argv


def run(argv, e):
    t0 = time.perf_counter()
    p = subprocess.run(
        argv, capture_output=True, text=True, env=e, stdin=subprocess.DEVNULL, timeout=120
    )
    wall = time.perf_counter() - t0
    inner = None
    for line in p.stdout.splitlines():
        if line.startswith("@@LOAD"):
            inner = float(line.split()[1])
    if inner is None:
        raise SystemExit(f"no @@LOAD from {argv[0]}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return wall, inner, p.stdout + p.stderr


def measure(make_argv, e, repeat):
    bare_w, load_w, bare_i, load_i = [], [], [], []
    out = ""
    for _ in range(repeat):
        w, i, _o = run(make_argv(False), e)
        bare_w.append(w)
        bare_i.append(i)
        w, i, out = run(make_argv(True), e)
        load_w.append(w)
        load_i.append(i)
    med = statistics.median
    return {
        "bare": med(bare_w),
        "loaded": med(load_w),
        "diff": med(load_w) - med(bare_w),
        "inner": med(load_i) - med(bare_i),
        "out": out,
    }


def cache_env(state):
    e = env()
    if state == "warm":
        d = cache_dir() / "pycache"
        d.mkdir(exist_ok=True)
        e["PYTHONPYCACHEPREFIX"] = str(d)
        e.pop("PYTHONDONTWRITEBYTECODE", None)
        return e, None
    d = tempfile.mkdtemp(prefix="wsm-nopyc-")
    e["PYTHONPYCACHEPREFIX"] = d
    e["PYTHONDONTWRITEBYTECODE"] = "1"
    return e, d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=9)
    args = ap.parse_args()
    rows = []
    debuggers = [("GDB", gdb_argv)]
    if lldb_plugin_ready() and lldb_path():
        debuggers.append(("LLDB", lldb_argv))
    for name, make in debuggers:
        for state in ("warm", "none"):
            e, tmp = cache_env(state)
            if state == "warm":
                run(make(True), e)  # fill the cache
            try:
                r = measure(make, e, args.repeat)
            finally:
                if tmp:
                    shutil.rmtree(tmp, ignore_errors=True)
            if "wasmtime-stackmaps: missing" in r["out"]:
                rows.append(
                    [name, state, "plugin did not load: " + r["out"][-200:], "", "", "", ""]
                )
                continue
            rows.append(
                [
                    name,
                    state,
                    fmt_s(r["bare"]),
                    fmt_s(r["loaded"]),
                    fmt_s(r["diff"]),
                    fmt_s(r["inner"]),
                    f"< 200 ms {verdict(r['diff'] < GOAL)}",
                ]
            )
    print(f"bench_load: median of {args.repeat} interleaved runs each")
    table(
        rows,
        [
            "debugger",
            ".pyc cache",
            "bare",
            "with plugin",
            "difference (wall)",
            "in-debugger load",
            "goal (wall difference)",
        ],
    )


if __name__ == "__main__":
    main()
