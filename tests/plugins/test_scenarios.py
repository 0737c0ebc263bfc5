"""Plugin scenarios, written once and run under real GDB and real LLDB.

Each test starts the debugger in batch mode on a real Wasmtime process (the
`wasmtime` CLI or a Python embedder) or on a core file of one, runs
`stackmap ... --json`, and checks the frames against what the wasm program
put on the stack and against `wasmtime objdump`'s stack maps.
"""

import os
import re
import sys

import pytest
from wasmtime_stackmaps import WasmtimeImage

from tests.plugins import driver
from tests.plugins.common import (
    CLI_DEPTH,
    PROGRAMS,
    PY,
    build_frames,
    check_frame_layout,
    check_host_activations,
    check_slots_distinct_heap,
    cli_program,
    frames_of,
    host_program,
    objdump_maps,
    only_doc,
)


# -- the wasmtime CLI, trapping on a fiber stack ---------------------------------------
def test_cli_trap_frames(dbg, cli_image):
    r = driver.run(dbg, ["stackmap bt --json"], cli_program())
    frames = frames_of(only_doc(r))
    builds = build_frames(frames)
    assert len(builds) == CLI_DEPTH + 1, r.output[-3000:]
    inner = builds[0]
    assert inner["level"] == 0 and not inner["safepoint"]
    assert "innermost" in inner["reason"]
    at_calls = builds[1:]
    assert all(f["safepoint"] for f in at_calls), at_calls
    i31s = [[s["value"] for s in f["slots"] if s["kind"] == "i31"] for f in at_calls]
    expected = [[3 * (n + 1) + 1] for n in range(1, CLI_DEPTH)] + [[-7]]
    assert i31s == expected
    check_slots_distinct_heap(at_calls)
    check_frame_layout(frames, at_calls)


def test_cli_trap_matches_objdump(dbg, cli_image):
    """Frame sizes and slot offsets agree with `wasmtime objdump` at the same return address."""
    maps = objdump_maps(cli_image)
    assert maps, "objdump printed no stack maps"
    r = driver.run(dbg, ["stackmap bt --json"], cli_program())
    safepoints = [f for f in frames_of(only_doc(r)) if f["safepoint"]]
    assert len(safepoints) >= CLI_DEPTH
    for f in safepoints:
        assert f["text_offset"] in maps, (hex(f["text_offset"]), maps)
        size, offs = maps[f["text_offset"]]
        assert f["frame_size"] == size
        assert tuple(s["offset"] for s in f["slots"]) == offs


def test_cli_frame_command(dbg):
    r = driver.run(dbg, ["stackmap frame 2 --json", "stackmap frame 2 -x"], cli_program())
    fr = frames_of(only_doc(r))[0]
    assert fr["level"] == 2 and fr["safepoint"]
    assert [s["value"] for s in fr["slots"] if s["kind"] == "i31"] == [10]
    # The text form shows the same slots, and the hexdump marks them.
    assert "i31 10" in r.output
    assert re.search(r"SP\+0\s+[0-9a-f]{8}", r.output), r.output[-2000:]
    assert "(* = live GC reference slot)" in r.output


def test_cli_images(dbg):
    r = driver.run(dbg, ["stackmap images --json"], cli_program())
    doc = only_doc(r)
    imgs = [i for i in doc["images"] if not i["error"]]
    assert len(imgs) == 1, doc
    img = imgs[0]
    assert img["kind"] == "module" and img["path"] is None
    assert img["target"].startswith("x86_64") and img["wasmtime_version"].startswith("49")
    assert img["stackmap_entries"] >= 1 and img["functions"] >= 2


# -- a Python embedder stopped in a host function ----------------------------------------
@pytest.mark.parametrize("mode", ["inproc", "cwasm"])
def test_python_host(dbg, mode, tmp_path):
    args = [mode] + ([tmp_path / "nested.cwasm"] if mode == "cwasm" else []) + [3, 2]
    r = driver.run(dbg, ["stackmap images --json", "stackmap bt --json"], host_program(*args))
    images, bt = r.docs[-2], r.docs[-1]
    imgs = [i for i in images["images"] if not i["error"]]
    assert len(imgs) == 1
    if mode == "cwasm":
        assert imgs[0]["path"] == str(tmp_path / "nested.cwasm")
    else:
        assert imgs[0]["path"] is None
    check_host_activations(frames_of(bt))


def test_core_file_same_as_live(dbg, host_core):
    core, prog = host_core
    r = driver.run(dbg, ["stackmap bt --json"], core=core, executable=prog[0])
    frames = frames_of(only_doc(r))
    check_host_activations(frames)


def test_core_file_live_equivalence(host_core):
    """GDB and LLDB agree on the core file frame for frame."""
    core, prog = host_core
    docs = {}
    for name in driver.DEBUGGERS:
        if driver.debugger_path(name) is None:
            pytest.fail(f"{name} missing")
        docs[name] = frames_of(
            only_doc(driver.run(name, ["stackmap bt --json"], core=core, executable=prog[0]))
        )
    keys = ("level", "pc", "function", "fp", "sp", "frame_size", "safepoint", "slots")
    strip = [[{k: f[k] for k in keys} for f in d] for d in docs.values()]
    assert strip[0] == strip[1]


# -- bad cases: one clear line, no traceback ---------------------------------------------
def assert_one_error(output, pattern):
    assert "Traceback" not in output, output[-3000:]
    assert re.search(pattern, output), output[-3000:]


def test_no_process(dbg):
    r = driver.run(dbg, ["stackmap bt"], None)
    assert_one_error(r.output, r"stackmap: no process")


def test_not_a_wasmtime_process(dbg):
    prog = [PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTRAP)"]
    r = driver.run(dbg, ["stackmap report --json", "stackmap bt", "stackmap images"], prog)
    assert_one_error(r.output, r"stackmap: no Wasmtime images found")
    # With --json, why it failed is also a JSON document (what `triage` reads).
    (doc,) = r.docs
    assert doc["error"]["kind"] == "no-images", doc
    assert doc["error"]["message"].startswith("no Wasmtime images found"), doc


def test_exited_process(dbg):
    prog = [PY, "-c", "print('bye')"]
    r = driver.run(dbg, ["stackmap bt"], prog)
    assert_one_error(r.output, r"stackmap: no process")


def test_corrupt_stackmap_in_memory(dbg, tmp_path):
    """An image whose .wasmtime.stackmap index points past the data: errors on the frames."""
    import wasmtime

    sys.path.insert(0, str(PROGRAMS))
    import host  # noqa: E402  (the program's own engine settings)

    path = tmp_path / "corrupt.cwasm"
    data = bytearray(
        wasmtime.Module(host.engine(), (PROGRAMS / "host_nested.wat").read_text()).serialize()
    )
    img = WasmtimeImage.from_bytes(bytes(data))
    off, size = img.sections[".wasmtime.stackmap"]
    n = int.from_bytes(data[off : off + 4], "little")
    for i in range(n):  # every index[i] -> far past the end
        at = off + 4 + 4 * n + 4 * i
        data[at : at + 4] = (0x7FFFFFF0).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    r = driver.run(dbg, ["stackmap bt --json", "stackmap bt"], host_program("cwasm", path, 3, 1))
    frames = frames_of(only_doc(r))
    builds = build_frames(frames)
    assert len(builds) == 4  # the walk went on
    errs = [f["error"] for f in builds if f["error"]]
    assert errs and all("past the end of the map data" in e for e in errs), builds
    assert "Traceback" not in r.output


# -- the debugger's own frame list through wasm frames -----------------------------------
# The plugin gives the debugger each image's symbol table at its load address
# (core/symfile.py): the debugger's own commands name wasm code.
OWN_COMMANDS = {
    "gdb": [
        "bt 12",
        "echo ==BT-END==\\n",
        "frame 3",
        "stackmap frame --json",
        "frame 2",
        "up",
        "info symbol $pc",
    ],
    "lldb": [
        "bt 12",
        "script print('==BT-END==')",
        "frame select 3",
        "stackmap frame --json",
        "frame select 2",
        "up",
        "image lookup -a $pc",
    ],
}
# `#N  0x... in NAME ()` (GDB), `frame #N: 0x... MODULE`NAME + OFF` (LLDB).
OWN_FRAME = {
    "gdb": re.compile(r"^#(\d+)\s+0x[0-9a-f]+ in (\S+)", re.M),
    "lldb": re.compile(r"^\s*\*? frame #(\d+): 0x[0-9a-f]+ (?:\S+`)?(\S+)", re.M),
}
BUILD = "wasm[0]::function[0]::build"


def test_debugger_own_bt_names_wasm_frames(dbg):
    r = driver.run(dbg, OWN_COMMANDS[dbg], cli_program())
    out = r.output
    bt = re.split(r"^==BT-END==$", out, flags=re.M)[0]
    if dbg == "lldb":  # LLDB echoes its commands; before `bt` is the stop report
        bt = bt.split("(lldb) bt 12")[-1]
    funcs = [n for _, n in OWN_FRAME[dbg].findall(bt)]
    assert funcs[: CLI_DEPTH + 1] == [BUILD] * (CLI_DEPTH + 1), funcs
    assert any("array_to_wasm_trampoline" in f for f in funcs)
    # Frames above the wasm ones are host frames again (the unwind went back into Wasmtime).
    host = funcs[funcs.index(next(f for f in funcs if "array_to_wasm" in f)) + 1 :]
    assert host and all(not f.startswith("wasm[") for f in host)
    # 'stackmap frame' with no number uses the debugger's selected frame (#3 here).
    fr = frames_of(only_doc(r))[0]
    assert fr["level"] == 3 and fr["safepoint"]
    assert [s["value"] for s in fr["slots"] if s["kind"] == "i31"] == [13]
    after = out.split("stackmap frame --json")[-1]
    if dbg == "gdb":
        # The stop line, `frame 2`, `up` and `info symbol` name the wasm function.
        stop = out.split("received signal SIGILL")[1].splitlines()[1]
        assert re.fullmatch(r"0x[0-9a-f]+ in wasm\[0\]::function\[0\]::build \(\)", stop), stop
        assert re.search(r"^#2\s+0x[0-9a-f]+ in wasm\[0\]::function\[0\]::build \(\)", after, re.M)
        assert re.search(r"^#3\s+0x[0-9a-f]+ in wasm\[0\]::function\[0\]::build \(\)", after, re.M)
        assert re.search(r"^wasm\[0\]::function\[0\]::build \+ 180 in section \.text", after, re.M)
    else:
        stop = out.split("stop reason = signal SIGILL")[1].splitlines()[1]
        assert re.search(r"frame #0: 0x[0-9a-f]+ \S+`wasm\[0\]::function\[0\]::build \+ \d+", stop)
        assert re.search(r"frame #2: 0x[0-9a-f]+ \S+`wasm\[0\]::function\[0\]::build \+ 180", after)
        assert re.search(r"frame #3: 0x[0-9a-f]+ \S+`wasm\[0\]::function\[0\]::build \+ 180", after)
        assert re.search(r"Summary: \S+`wasm\[0\]::function\[0\]::build \+ 180", after)


def test_debugger_names_wasm_code_in_disassembly(dbg):
    """`x/i $pc` and `disassemble` at a wasm frame show the function's name."""
    cmds = {
        "gdb": ["frame 1", "x/i $pc", "disassemble"],
        "lldb": ["frame select 1", "x/i $pc", "disassemble -c 3"],
    }[dbg]
    r = driver.run(dbg, cmds, cli_program())
    if dbg == "gdb":
        assert re.search(r"<wasm\[0\]::function\[0\]::build\+180>:", r.output), r.output[-2000:]
        assert "Dump of assembler code for function wasm[0]::function[0]::build:" in r.output
    else:
        assert re.search(r"`wasm\[0\]::function\[0\]::build:\n.*<\+0>: pushq\s+%rbp", r.output), (
            r.output[-2000:]
        )
        assert re.search(r"0x[0-9a-f]+ <\+180>:", r.output), r.output[-2000:]


def test_symbol_files_go_with_the_process(dbg):
    """The symbol files are the debugger's private temp files, gone when the inferior is."""
    cmds = {
        "gdb": [
            "python import wasmtime_stackmaps as w; print('SYMS', [s.path for s in w._gdb_symbols.loaded.values()])",
            "kill",
            "python import wasmtime_stackmaps as w; print('AFTER', len(w._gdb_symbols.loaded))",
        ],
        "lldb": [
            "script import wasmtime_stackmaps as w; print('SYMS', [s.path for s in w._lldb_symbols.loaded.values()])",
        ],
    }[dbg]
    r = driver.run(dbg, cmds, cli_program())
    m = re.search(r"^SYMS \[(.*)\]$", r.output, re.M)
    assert m, r.output[-2000:]
    paths = re.findall(r"'([^']+)'", m.group(1))
    assert len(paths) == 1, paths
    top = os.path.dirname(os.path.dirname(paths[0]))
    assert os.path.basename(top).startswith("wasmtime-stackmaps-symbols-"), paths
    # Removed when the process went (GDB) and with the debugger (both).
    assert not os.path.exists(top)
    if dbg == "gdb":
        assert re.search(r"^AFTER 0$", r.output, re.M), r.output[-2000:]


def test_selected_frame_is_restored(dbg):
    """Commands switch threads and frames to read registers; the selection is put back."""
    sel = {
        "gdb": [
            "frame 2",
            "stackmap bt --all-threads",
            "stackmap frame 1",
            "stackmap report",
            "info frame",
        ],
        "lldb": [
            "frame select 2",
            "stackmap bt --all-threads",
            "stackmap frame 1",
            "stackmap report",
            "frame info",
        ],
    }[dbg]
    r = driver.run(dbg, sel, cli_program())
    if dbg == "gdb":
        assert re.search(r"Stack level 2, frame at", r.output), r.output[-2000:]
    else:
        assert re.search(r"frame #2:", r.output.split("stackmap report")[-1]), r.output[-2000:]
