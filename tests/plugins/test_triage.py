"""Crash triage: `stackmap report`, `wasmtime-stackmaps triage`, snapshots and diffs.

Under both debuggers, on real processes and core files; reports are validated
against the JSON Schema kept in the repo (core/schema/report.schema.json).
"""

import json
import re
import subprocess

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


def test_triage_exit_codes(tmp_path):
    # 2: input error (no such core, not a core file)
    p = subprocess.run(
        TRIAGE + ["--core", str(tmp_path / "missing")], capture_output=True, text=True
    )
    assert p.returncode == 2 and "no such core file" in p.stderr
    junk = tmp_path / "junk.core"
    junk.write_bytes(b"not a core file" * 100)
    p = subprocess.run(TRIAGE + ["--core", str(junk)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, (p.returncode, p.stderr)
    # 1: a process with no Wasmtime in it
    p = subprocess.run(
        TRIAGE + ["--run", PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTRAP)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 1 and "no Wasmtime images" in p.stderr, p.stderr
    # 3: the debugger did not finish in time
    p = subprocess.run(
        TRIAGE + ["--timeout", "0.01", "--run"] + cli_program(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 3, p.stderr
    # 0: a report of a live program run to its trap
    p = subprocess.run(
        TRIAGE + ["--json", "--run"] + cli_program(), capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, p.stderr
    jsonschema.validate(json.loads(p.stdout), SCHEMA)


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
