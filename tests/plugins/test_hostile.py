"""Hostile inputs in the debuggers (issue 14): each written once, run under GDB and LLDB.

- a `.cwasm` whose function names hold ESC, BEL and a newline, run by `wasmtime run
  --allow-precompiled`: every name is printed escaped, and still counts as wasm;
- bad arguments and bad files: one line each (`stackmap: ...`), no Python exception,
  no hang (a FIFO is refused before it is opened);
- GDB's own `bt` is not cut short by the frame filter (a frame whose caller GDB cannot
  unwind ends it where GDB's own `bt` ends).
"""

import json
import os
import re
import sys
from pathlib import Path

from wasmtime_stackmaps.image import WasmtimeImage
from wasmtime_stackmaps.text import has_unsafe

from tests.plugins import driver
from tests.plugins.common import CLI_DEPTH, CLI_FLAGS, cli_program, frames_of
from tests.tooling import wasmtime_cli

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))
import elfgen  # noqa: E402  (tests/fuzz: builds Wasmtime-shaped images from parts)

HOSTILE = b"\x1b[\x07\nZ"  # as long as "build": the symbol table keeps its layout
SHOWN = "\\x1b[\\x07\\x0aZ"


def hostile_image(cli_image, tmp_path):
    """deep_trap.cwasm with `build` renamed to ESC [ BEL newline Z (same length)."""
    data = bytearray(cli_image.read_bytes())
    off, size = WasmtimeImage.from_bytes(bytes(data)).sections[".strtab"]
    strtab = bytes(data[off : off + size])
    assert strtab.count(b"::build\0") >= 1
    data[off : off + size] = strtab.replace(b"::build\0", b"::" + HOSTILE + b"\0")
    out = tmp_path / "hostile.cwasm"
    out.write_bytes(bytes(data))
    return out


def _raw_controls(output: str) -> bool:
    """Control characters other than the line ends the debuggers print themselves."""
    return has_unsafe(output.replace("\n", "").replace("\r", "").replace("\t", ""))


def test_hostile_names_escaped(dbg, cli_image, tmp_path):
    img = hostile_image(cli_image, tmp_path)
    prog = [wasmtime_cli(), "run", "--allow-precompiled", *CLI_FLAGS, str(img)]
    cmds = ["stackmap bt --json", "stackmap bt", "stackmap frame 1", "stackmap report"]
    if dbg == "gdb":
        cmds.append("bt")
    r = driver.run(dbg, cmds, prog)
    assert not _raw_controls(r.output), [ln for ln in r.output.splitlines() if _raw_controls(ln)]
    doc = next(d for d in r.docs if "threads" in d)
    named = [f for f in frames_of(doc) if f["function"] == "wasm[0]::function[0]::\x1b[\x07\nZ"]
    # Still wasm functions (the newline does not hide the prefix): maps and live slots.
    assert len([f for f in named if f["safepoint"]]) == CLI_DEPTH, frames_of(doc)
    assert f"wasm[0]::function[0]::{SHOWN}+0x" in r.output
    assert f"frame #1 (thread 1): wasm[0]::function[0]::{SHOWN}" in r.output
    if dbg == "gdb":
        assert re.search(
            r"#1 +0x[0-9a-f]+ in wasm\[0\]::function\[0\]::" + re.escape(SHOWN), r.output
        )


def test_bad_arguments_and_files(dbg, cli_image, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    bomb = tmp_path / "bomb.cwasm"  # one map of 2,000,000 all-ones words in an 8 MB image
    img = elfgen.standard()
    img.section(".wasmtime.stackmap").data = (
        elfgen.u32s([1, 0x10, 0, 1 << 30, 2_000_000]) + b"\xff" * 8_000_000
    )
    bomb.write_bytes(elfgen.build(img))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"kind": "stackmap-snapshot", "frames": 5}))
    cases = [
        (f"stackmap load {fifo} 0x1000", "is a FIFO"),
        (f"stackmap load {bomb} 0x1000", "map has 64000000 live slots"),
        (f"stackmap load {cli_image} 0x10000000000000000000", "not a 64-bit address"),
        ("stackmap bt -n -1", "must be 1 or more"),
        ("stackmap bt -n 0", "must be 1 or more"),
        ("stackmap bt --max-depth 0", "must be 1 or more"),
        ("stackmap frame --max-depth -1", "must be 1 or more"),
        ("stackmap snapshot --file /proc/version", "cannot write the snapshot into proc"),
        (f"stackmap snapshot --file {tmp_path}", "is a directory"),
        ("stackmap snapshot --file /nonexistent/dir/snap.json", "no such directory"),
        (f"stackmap diff --file {fifo}", "is a FIFO"),
        (f"stackmap diff --file {wrong}", "not a valid snapshot: 'frames' is not a list"),
        ("stackmap diff --file /proc/version", "pseudo file system"),
    ]
    cmds = [c for c, _ in cases] + ["stackmap bt -n 2"]
    if dbg == "lldb":  # LLDB's batch mode stops at the first failing command: go on regardless
        cmds = [f"script lldb.debugger.HandleCommand({c!r})" for c in cmds]
    r = driver.run(dbg, cmds, cli_program())
    assert "Traceback" not in r.output and "Python Exception" not in r.output, r.output[-3000:]
    errors = [ln for ln in r.output.splitlines() if "stackmap: " in ln]
    for cmd, phrase in cases:
        assert any(phrase in e for e in errors), (cmd, phrase, errors)
    # The good command after them all still works: 2 frames (of the thread's total).
    shown = r"Thread 1 \"wasmtime\": (?:showing 2 of \d+|2) wasm frames"
    assert re.search(shown, r.output), r.output[-2000:]
    assert not list(tmp_path.glob(".wasmtime-stackmaps-*"))  # no temporary file left


def test_gdb_bt_not_cut_short():
    """The frame filter hands GDB every frame GDB itself would show."""
    r = driver.run(
        "gdb",
        [
            "bt",
            "echo ~~ without the filter ~~\\n",
            "disable frame-filter global wasmtime-stackmaps",
            "bt",
        ],  # fmt: skip
        cli_program(),
    )
    assert "Python Exception" not in r.output, r.output[-3000:]
    with_filter, without = r.output.split("~~ without the filter ~~", 1)
    n_with = len(re.findall(r"^#\d+ ", with_filter, re.M))
    n_without = len(re.findall(r"^#\d+ ", without, re.M))
    assert n_with == n_without >= CLI_DEPTH + 5, (n_with, n_without, r.output[-3000:])
    assert "wasm[0]::function[0]::build" in with_filter
