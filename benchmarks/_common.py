"""Shared helpers for the benchmark scripts (not a test module)."""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / ".cache"
VENV_PY = REPO / ".venv" / "bin" / "python"

sys.path.insert(0, str(REPO))  # tests.tooling

# The debuggers' batch command lines are the core's (what triage and the tests run).
from wasmtime_stackmaps.batch import (  # noqa: E402
    GDB_PLUGIN,  # noqa: F401 (bench_load's)
    LLDB_PLUGIN,
    Launch,
    debugger_env,
    debugger_path,
    gdb_argv,
    lldb_argv,
)


def cache_dir() -> Path:
    CACHE.mkdir(exist_ok=True)
    return CACHE


def wasmtime_cli() -> str:
    from tests.tooling import wasmtime_cli as w

    return w()


def gdb_path():
    return debugger_path("gdb")


def lldb_path():
    return debugger_path("lldb")


def lldb_plugin_ready() -> bool:
    return os.path.isfile(LLDB_PLUGIN) and os.path.getsize(LLDB_PLUGIN) > 0


def env():
    return debugger_env()


def median_time(fn, repeat=5, number=1):
    """Median seconds of `number` calls of fn, over `repeat` runs."""
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        ts.append((time.perf_counter() - t0) / number)
    return statistics.median(ts)


def fmt_s(sec: float) -> str:
    if sec < 0:
        return "-" + fmt_s(-sec)
    if sec < 1e-3:
        return f"{sec * 1e6:.2f} µs"
    if sec < 1:
        return f"{sec * 1e3:.1f} ms"
    return f"{sec:.2f} s"


def table(rows, headers):
    """Print a plain text table."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)))


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def _batch(argv, timeout):
    p = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=env(), stdin=subprocess.DEVNULL
    )
    return p.stdout, p.stderr, p.returncode


def gdb_batch(commands, program=None, load=True, timeout=600):
    """Run gdb -batch (the plugin loaded unless `load` is False) with `commands`, which
    start `program` themselves ("run"); returns (stdout, stderr, returncode)."""
    prog = [str(a) for a in program] if program else None
    return _batch(gdb_argv(commands, Launch(prog, run=False, load=load)), timeout)


def lldb_batch(commands, program, timeout=900):
    """Run lldb -b with the plugin loaded: `program` launched to its first signal stop,
    then `commands`; returns (stdout, stderr, returncode)."""
    return _batch(lldb_argv(commands, Launch([str(a) for a in program])), timeout)


def results_from(text: str, tag="@@BENCH "):
    """Lines `@@BENCH {json}` printed by a script run inside a debugger."""
    import json

    out = []
    for line in text.splitlines():
        if line.startswith(tag):
            out.append(json.loads(line[len(tag) :]))
    return out
