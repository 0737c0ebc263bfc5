"""Shared helpers for the benchmark scripts (not a test module)."""

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / ".cache"
GDB_PLUGIN = REPO / "gdb_plugin" / "stackmaps.py"
LLDB_PLUGIN = REPO / "lldb_plugin" / "stackmaps.py"
VENV_PY = REPO / ".venv" / "bin" / "python"

sys.path.insert(0, str(REPO))  # tests.tooling


def cache_dir() -> Path:
    CACHE.mkdir(exist_ok=True)
    return CACHE


def wasmtime_cli() -> str:
    from tests.tooling import wasmtime_cli as w

    return w()


def gdb_path():
    return shutil.which("gdb")


def lldb_path():
    return shutil.which("lldb-19") or shutil.which("lldb")


def lldb_plugin_ready() -> bool:
    return LLDB_PLUGIN.is_file() and LLDB_PLUGIN.stat().st_size > 0


def env():
    e = dict(os.environ)
    e["NO_COLOR"] = "1"
    e.pop("PYTHONPATH", None)
    e.pop("PYTHONHOME", None)
    return e


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


def gdb_batch(commands, program=None, load=True, timeout=600, pre=()):
    """Run gdb -batch; returns (stdout, stderr, returncode)."""
    argv = [
        gdb_path(),
        "-nx",
        "-batch",
        "-iex",
        "set debuginfod enabled off",
        "-iex",
        "set auto-load safe-path /nonexistent",
        "-ex",
        "set pagination off",
        "-ex",
        "set confirm off",
    ]
    for c in pre:
        argv += ["-ex", c]
    if load:
        argv += ["-ex", f"source {GDB_PLUGIN}"]
    for c in commands:
        argv += ["-ex", c]
    if program:
        argv += ["--args", *map(str, program)]
    p = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, env=env(), stdin=subprocess.DEVNULL
    )
    return p.stdout, p.stderr, p.returncode


def results_from(text: str, tag="@@BENCH "):
    """Lines `@@BENCH {json}` printed by a script run inside a debugger."""
    import json

    out = []
    for line in text.splitlines():
        if line.startswith(tag):
            out.append(json.loads(line[len(tag) :]))
    return out
