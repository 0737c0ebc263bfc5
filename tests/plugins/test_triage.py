"""Crash triage: `stackmap report`, `wasmtime-stackmaps triage`, snapshots and diffs.

Under both debuggers, on real processes and core files; reports are validated
against the JSON Schema kept in the repo (core/schema/report.schema.json).
"""

import json
import os
import re
import subprocess
import time

import jsonschema
import pytest

from tests.plugins import driver
from tests.plugins.common import (
    CLI_DEPTH,
    PY,
    SCHEMA,
    TRIAGE,
    build_frames,
    check_host_activations,
    cli_program,
    frames_of,
    host_program,
)


def reports(result):
    docs = [d for d in result.docs if "stop" in d]
    assert docs, f"no report:\n{result.output[-3000:]}"
    return docs


def cli_wasm_backtrace_offset():
    """The wasm offset of the trapping instruction, as the CLI itself prints it (independent)."""
    p = subprocess.run(cli_program(), capture_output=True, text=True, timeout=120)
    m = re.search(r"^\s*0:\s+(0x[0-9a-f]+) - ", p.stderr, re.M)
    assert m, p.stderr
    return int(m.group(1), 16)


def test_report_on_cli_trap(dbg):
    r = driver.run(dbg, ["stackmap report --json", "stackmap report"], cli_program())
    doc = reports(r)[-1]
    jsonschema.validate(doc, SCHEMA)
    assert doc["stop"]["signal_name"] == "SIGILL"
    trap = doc["trap"]
    assert trap["name"] == "UnreachableCodeReached", trap
    assert trap["function"].endswith("::build")
    assert trap["wasm_offset"] == cli_wasm_backtrace_offset()
    assert len(build_frames(frames_of(doc, doc["stop"]["thread"]))) == CLI_DEPTH + 1
    assert "trap: UnreachableCodeReached in wasm[0]::function[0]::build" in r.output


@pytest.mark.parametrize("debugger", driver.DEBUGGERS)
def test_triage_core_file_json(debugger, host_core, tmp_path):
    if driver.debugger_path(debugger) is None:
        pytest.fail(f"{debugger} is not installed")
    core, prog = host_core
    out = tmp_path / "report.json"
    p = subprocess.run(
        TRIAGE
        + ["--debugger", debugger, "--core", core, "--exe", prog[0], "--json", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, SCHEMA)
    assert doc["stop"]["signal_name"] == "SIGTRAP"
    assert doc["trap"] is None  # stopped in host code (kill), not at a trap site
    assert doc["process"]["core_file"] and doc["triage"]["source"] == "core"
    check_host_activations(frames_of(doc, doc["stop"]["thread"]))


def test_triage_text_report(host_core):
    core, prog = host_core
    p = subprocess.run(
        TRIAGE + ["--core", core, "--exe", prog[0]], capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr
    assert "stop: thread 1, signal SIGTRAP" in p.stdout
    assert re.search(r"SP\+\d+=i31 1007", p.stdout), p.stdout


# The README's triage table: (row, how to set it up, exit code, phrase of the one line).
# Every row runs under GDB and under LLDB and must give the same code.
TRIAGE_ROWS = ["report", "no-frames", "exited", "timeout", "no-core", "not-a-core",
               "truncated-core", "wrong-exe", "no-pid", "unattachable-pid", "no-program",
               "unwritable-output"]  # fmt: skip


def _triage_row(row, debugger, tmp_path, host_core):
    """(argv, expected exit code, phrase in the one line) of one row of the table."""
    base = ["--debugger", debugger]
    if row == "report":
        return base + ["--json", "--run"] + cli_program(), 0, None
    if row == "no-frames":
        prog = [PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTRAP)"]
        return base + ["--run"] + prog, 1, "no Wasmtime images"
    if row == "exited":
        return base + ["--run", "/bin/true"], 4, "exited without stopping (exit status 0)"
    if row == "timeout":
        return base + ["--timeout", "3", "--run", PY, "-c", SLEEPER, MARKER], 3, "within 3 s"
    if row == "no-core":
        return base + ["--core", str(tmp_path / "missing")], 2, "no such core file"
    if row == "not-a-core":
        return base + ["--core", "/etc/passwd"], 2, "not a core file"
    core, prog = host_core
    if row == "truncated-core":
        cut = tmp_path / "cut.core"
        data = open(core, "rb").read()
        cut.write_bytes(data[: len(data) // 2])
        return base + ["--core", str(cut), "--exe", prog[0]], 2, "truncated core file"
    if row == "wrong-exe":
        return base + ["--core", core, "--exe", "/bin/ls"], 2, "not the program that dumped"
    if row == "no-pid":
        return base + ["--pid", "4194303"], 2, "no such process"
    if row == "unattachable-pid":
        return base + ["--pid", "{traced}"], 2, "cannot attach to process"
    if row == "no-program":
        return base + ["--run", str(tmp_path / "nothing-here")], 2, "no such program"
    assert row == "unwritable-output"
    return base + ["-o", "/nonexistent/dir/report.json", "--core", core], 2, "no such directory"


MARKER = "wasmtime-stackmaps-triage-timeout-marker"
SLEEPER = "import sys, time; time.sleep(600)"
# A process traced by its parent (PTRACE_TRACEME): no debugger can attach to it.
TRACED = "import ctypes, time; ctypes.CDLL(None).ptrace(0, 0, 0, 0); time.sleep(120)"


def _running_markers():
    out = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if MARKER.encode() in f.read():
                    out.append(int(pid))
        except OSError:
            continue
    return out


@pytest.mark.parametrize("row", TRIAGE_ROWS)
def test_triage_table(row, dbg, tmp_path, host_core):
    """Each row of the exit-code table, the same under GDB and LLDB: the code, one line."""
    argv, code, phrase = _triage_row(row, dbg, tmp_path, host_core)
    traced = None
    if row == "unattachable-pid":
        traced = subprocess.Popen([PY, "-c", TRACED])
        time.sleep(0.5)
        argv = [a.replace("{traced}", str(traced.pid)) for a in argv]
    try:
        p = subprocess.run(TRIAGE + argv, capture_output=True, text=True, timeout=300)
    finally:
        if traced is not None:
            traced.kill()
            traced.wait()
    assert p.returncode == code, (row, dbg, p.returncode, p.stderr[-2000:])
    assert "Traceback" not in p.stderr
    if code == 0:
        jsonschema.validate(json.loads(p.stdout), SCHEMA)
        return
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("wasmtime-stackmaps triage: "), (
        row,
        p.stderr,
    )
    assert phrase in p.stderr, (row, dbg, p.stderr)
    if row == "timeout":  # the program the debugger ran is gone too (no orphan)
        deadline = time.time() + 5
        while _running_markers() and time.time() < deadline:
            time.sleep(0.2)
        assert not _running_markers(), f"{dbg} left the program running after the timeout"


def test_triage_report_written_atomically(tmp_path, host_core):
    """-o replaces the file in one step; a directory or /proc is refused before any debugger."""
    core, prog = host_core
    out = tmp_path / "r.json"
    out.write_text("old")
    p = subprocess.run(
        TRIAGE + ["--core", core, "--exe", prog[0], "--json", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    jsonschema.validate(json.loads(out.read_text()), SCHEMA)
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]  # no temporary file left
    for bad, phrase in ((tmp_path, "is a directory"), ("/proc/version", "cannot write")):
        t = time.monotonic()
        p = subprocess.run(
            TRIAGE + ["-o", str(bad), "--core", core], capture_output=True, text=True
        )
        assert p.returncode == 2 and phrase in p.stderr, p.stderr
        assert time.monotonic() - t < 10  # refused before a debugger ran


def test_snapshot_and_diff(dbg, tmp_path):
    """Roots of the outer activation are matched across stops; the nested one is new."""
    snap = tmp_path / "snap.json"
    cont = "continue" if dbg == "gdb" else "process continue"
    r = driver.run(
        dbg,
        [
            f"stackmap snapshot --file {snap}",
            cont,
            "stackmap diff --json",
            "stackmap snapshot --name inner",
            cont,
            "stackmap diff --name inner --json",
            f"stackmap diff --file {snap}",
        ],
        host_program("inproc", 3, 2, "--stop-each", "--gc"),
    )
    diffs = [d for d in r.docs if "counts" in d]
    assert len(diffs) == 2, r.output[-3000:]
    first, second = diffs
    # Stop 1 (activation 0 only) -> stop 2 (activation 1 nested): act 0's 3 frames match.
    assert first["counts"]["unchanged"] + first["counts"]["changed"] == 6
    assert len(first["frames"]) == 3 and len(first["frames_new"]) >= 3
    assert not first["frames_gone"]
    # Stop 2 -> stop 3 (after store.gc()): every frame still there; i31 roots never change.
    assert len(second["frames"]) == 6 and not second["frames_gone"]
    assert sum(second["counts"].values()) == 12
    for f in second["frames"]:
        for s in f["slots"]:
            if s["old"] & 1:  # i31
                assert s["state"] == "unchanged"
    assert "roots changed value" in r.output
    saved = json.loads(snap.read_text())
    assert saved["kind"] == "stackmap-snapshot" and len(saved["frames"]) == 3


def test_suspicious_slots(dbg):
    """`bt --suspicious` flags non-map words that point at GC objects (a heuristic).

    In deep_trap.wat each frame still holds its `$prev` parameter in its frame
    after storing it into the new struct: a dead copy of a ref, not in the map.
    The check must find exactly that word in frames 1..4 (frame 5's $prev is
    null), pointing at the object the caller frame roots.
    """
    r = driver.run(
        dbg, ["stackmap bt --suspicious --json", "stackmap bt --suspicious"], cli_program()
    )
    doc = [d for d in r.docs if "threads" in d][-1]
    builds = [f for f in build_frames(frames_of(doc)) if f["safepoint"]]
    assert len(builds) == CLI_DEPTH
    for f, caller in zip(builds, builds[1:], strict=False):
        heap = [s["value"] for s in caller["slots"] if s["kind"] == "heap"]
        assert [w["raw"] for w in f["suspicious"]] == heap, f
        assert all(w["offset"] not in [s["offset"] for s in f["slots"]] for w in f["suspicious"])
        assert f["suspicious"][0]["object_kind"] == "structref"
        assert "heuristic" in f["suspicious_note"]
    assert builds[-1]["suspicious"] == []
    assert "suspicious (heuristic, not in the map)" in r.output
