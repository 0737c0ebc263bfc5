"""The plugin scenarios on aarch64: the aarch64 `wasmtime` CLI under qemu-user, debugged
through qemu's GDB stub by gdb-multiarch (`target remote`) and lldb-19 (`gdb-remote`).

One debugger session per (debugger, pointer authentication off/on) runs
`stackmap bt --json`, `stackmap images --json`, `stackmap frame 2 --json` and a few
probes at the wasm trap (SIGILL on `udf #0xc11f`); the tests check its output:

- the exact frames: 6 `build` frames (innermost at the trap), `function[1]` (_start),
  the array-to-wasm trampoline; the i31 values deep_trap.wat put in each frame and
  distinct, even, non-zero GC heap indices;
- frame sizes and slot offsets equal to `wasmtime objdump --stack-maps` of the same
  module compiled by the x86_64 CLI with `--target aarch64-unknown-linux-gnu` and the
  same flags (and the innermost pc is the `udf` trap objdump shows);
- the image was found with no memory map (qemu's stub has none: the plugin's
  `regions()` is None, so discovery scanned back from the pc), and it lies inside one
  of qemu's own host mappings (guest_base 0) at the base the plugin says;
- everything agrees with tests/arch/frame_walk.py, an independent walker that reads the
  image and the stack from target memory without the core;
- with `-C cranelift-sign_return_address=true`: the saved return addresses carry PAC
  bits, the plugin's pcs are the stripped addresses (and the same frames come out);
- GDB's own `bt` goes through the wasm frames into the host (the plugin's unwinder).
"""

import json
import re
import time
from pathlib import Path

import pytest
from wasmtime_stackmaps.batch import LLDB_PLUGIN

from tests.arch import remote
from tests.plugins.common import check_frame_layout
from tests.tooling import REPO, objdump, run_wasmtime

HERE = Path(__file__).resolve().parent
PROGRAM = REPO / "tests" / "programs" / "deep_trap.wat"
FRAME_WALK = HERE / "frame_walk.py"
OUT = HERE / ".cache" / "out"
TARGET = "aarch64-unknown-linux-gnu"
# Same flags as the x86_64 CLI scenarios (tests/plugins): a small memory reservation
# keeps qemu-user fast.
CLI_FLAGS = ["-W", "gc=y", "-O", "memory-reservation=16777216,memory-guard-size=65536"]
PAC_FLAGS = ["-C", "cranelift-sign_return_address=true"]
DEPTH = 5  # deep_trap.wat's _start calls build(5, null, i31 -7)
# Frame k from the innermost has the i31 3*(n+1)+1 stored by the frame with n = k; the
# outermost build frame holds _start's -7.
EXPECTED_I31 = [[3 * (n + 1) + 1] for n in range(1, DEPTH)] + [[-7]]
EXPECTED_FUNCTIONS = ["wasm[0]::function[0]::build"] * (DEPTH + 1) + [
    "wasm[0]::function[1]",
    "wasm[0]::array_to_wasm_trampoline[1]",
]
MASK48 = (1 << 48) - 1
CONFIGS = [("gdb", False), ("gdb", True), ("lldb", False), ("lldb", True)]
LLDB_PLUGIN_MISSING = not LLDB_PLUGIN.exists()


def _config_id(c):
    return f"{c[0]}-{'pac' if c[1] else 'nopac'}"


def _params():
    out = []
    for c in CONFIGS:
        marks = []
        if c[0] == "lldb":
            marks.append(
                pytest.mark.xfail(
                    LLDB_PLUGIN_MISSING,
                    strict=True,
                    reason="lldb_plugin/stackmaps.py does not exist yet",
                )
            )
        out.append(pytest.param(c, id=_config_id(c), marks=marks))
    return out


# -- the objdump reference: the same module compiled for aarch64 by the x86_64 CLI ------
@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("aarch64")
    out = {}
    for pac in (False, True):
        path = d / f"deep_trap{'-pac' if pac else ''}.cwasm"
        run_wasmtime(
            "compile",
            *CLI_FLAGS,
            *(PAC_FLAGS if pac else []),
            "--target",
            TARGET,
            "-o",
            path,
            PROGRAM,
        )
        out[pac] = objdump(path)
    return out


# -- one debugger session per configuration, shared by the tests below ----------------
def _commands(debugger):
    cmds = [
        "stackmap bt --json",
        "stackmap images --json",
        "stackmap frame 2 --json",
        "stackmap bt --wide",
        "stackmap frame 2 -x",
    ]
    hostmaps = (
        'print("@@hostmaps-begin\\n" + open("/proc/{qemu_pid}/maps").read() + "@@hostmaps-end")'
    )
    if debugger == "gdb":
        cmds += [
            f"source {FRAME_WALK}",
            "bt 9",
            "python " + hostmaps,
            "python import sys; print('@@regions=%r' % "
            "(sys.modules['wasmtime_stackmaps_gdb'].GdbTarget.selected().regions(),))",
        ]
    else:  # a failing -k command would end the list: the probes go last
        cmds += [
            f"command script import {FRAME_WALK}",
            "archwalk",
            "script " + hostmaps,
            "script import sys, lldb; print('@@regions=%r' % (sys.modules['wasmtime_stackmaps_lldb']"
            ".LldbTarget(None, lldb.debugger).regions(),))",
        ]
    return cmds


class Session:
    def __init__(self, result, pac):
        self.result = result
        self.pac = pac
        self.output = result.output
        docs = result.docs
        assert len(docs) == 3, f"expected 3 JSON documents:\n{self.output[-4000:]}"
        self.bt, self.images, self.frame2 = docs
        ths = self.bt["threads"]
        assert len(ths) == 1, ths
        self.frames = ths[0]["frames"]


_SESSIONS = {}


@pytest.fixture
def session(request, qemu_env):
    debugger, pac = request.param
    if debugger == "lldb" and not qemu_env.lldb:
        from tests.arch.conftest import _unavailable

        _unavailable("lldb-19 is not installed (bash tests/arch/setup_qemu.sh as root)")
    key = (debugger, pac)
    if isinstance(_SESSIONS.get(key), str):  # failed once: don't run it again per test
        pytest.fail(_SESSIONS[key])
    if key not in _SESSIONS:
        program = [qemu_env.wasmtime, "run", *CLI_FLAGS, *(PAC_FLAGS if pac else []), str(PROGRAM)]
        # RUST_BACKTRACE=1 with PAC on crashes wasmtime's own backtrace capture (NOTES.md).
        t0 = time.monotonic()
        r = remote.run_remote(
            debugger,
            _commands(debugger),
            program,
            qemu_env.qemu,
            qemu_env.sysroot,
            env={"RUST_BACKTRACE": "0"},
            debugger_binary=qemu_env.gdb if debugger == "gdb" else qemu_env.lldb,
        )
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"session-{_config_id(key)}.txt").write_text(
            r.output + "\n--- qemu ---\n" + r.target_output
        )
        _record_timing(_config_id(key), r.seconds, time.monotonic() - t0)
        try:
            assert "SIGILL" in r.output, (
                f"no stop at the trap:\n{r.output[-4000:]}\n{r.target_output}"
            )
            _SESSIONS[key] = Session(r, pac)
        except AssertionError as e:
            _SESSIONS[key] = f"{_config_id(key)} session failed: {e}"
            raise
    return _SESSIONS[key]


def _record_timing(name, debugger_s, total_s):
    path = OUT / "timings.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data[name] = {"debugger_s": round(debugger_s, 2), "with_qemu_start_s": round(total_s, 2)}
    path.write_text(json.dumps(data, indent=1, sort_keys=True))


def _maps(objd):
    return {m.pc: (m.frame_size, m.offsets) for m in objd.stack_maps}


def _i31s(frame):
    return [s["value"] for s in frame["slots"] if s["kind"] == "i31"]


def _heaps(frame):
    return [s["value"] for s in frame["slots"] if s["kind"] == "heap"]


def _frame_walk(output):
    """frame_walk.py's lines: {level: (text offset, raw ra or None, fp, rest)}, .text start."""
    m = re.search(r"image at 0x([0-9a-f]+) e_machine=183 \.text=0x([0-9a-f]+)\.\.", output)
    assert m, f"frame_walk.py printed no image:\n{output[-3000:]}"
    frames = {}
    for fm in re.finditer(
        r"^frame (\d+) ra=text\+0x([0-9a-f]+)(?: \(raw 0x([0-9a-f]+), PAC bits "
        r"stripped\))? fp=0x([0-9a-f]+)(.*)$",
        output,
        re.M,
    ):
        frames[int(fm.group(1))] = (
            int(fm.group(2), 16),
            int(fm.group(3), 16) if fm.group(3) else None,
            int(fm.group(4), 16),
            fm.group(5),
        )
    host = re.search(
        r"^frame (\d+) ra=0x([0-9a-f]+)(?: \(raw 0x([0-9a-f]+), PAC bits "
        r"stripped\))?: outside \.text, host caller",
        output,
        re.M,
    )
    assert host, output[-3000:]
    return int(m.group(1), 16), int(m.group(2), 16), frames, host


# -- the tests ----------------------------------------------------------------------------
@pytest.mark.parametrize("session", _params(), indirect=True)
def test_frames(session):
    """The exact wasm frames of the trap, with the values the program stored."""
    frames = session.frames
    assert [f["function"] for f in frames] == EXPECTED_FUNCTIONS, session.output[-4000:]
    assert [f["level"] for f in frames] == list(range(len(EXPECTED_FUNCTIONS)))
    assert {f["activation"] for f in frames} == {0}
    assert all(not f["error"] for f in frames), [f["error"] for f in frames]
    inner = frames[0]
    assert inner["innermost"] and not inner["safepoint"] and "innermost" in inner["reason"]
    calls = frames[1 : DEPTH + 1]
    assert all(f["safepoint"] for f in calls), calls
    assert [_i31s(f) for f in calls] == EXPECTED_I31
    heap = [v for f in calls for v in _heaps(f)]
    assert len(heap) == DEPTH and all(v and v % 2 == 0 for v in heap), heap
    assert len(set(heap)) == DEPTH, f"heap refs not distinct: {heap}"
    assert not frames[DEPTH + 1]["safepoint"]
    assert frames[DEPTH + 1]["reason"] == "call site with no live GC references"
    assert "not wasm code" in frames[DEPTH + 2]["reason"]
    check_frame_layout(frames, calls)
    # Each callee's frame record sits right below its caller's SP (docs/format.md §4).
    for callee, caller in zip(frames, calls, strict=False):
        assert callee["fp"] + 16 == caller["sp"]


@pytest.mark.parametrize("session", _params(), indirect=True)
def test_matches_objdump(session, reference):
    """Frame sizes and slot offsets are objdump's for the module compiled for aarch64."""
    objd = reference[session.pac]
    maps = _maps(objd)
    assert maps, "objdump printed no stack maps"
    frames = session.frames
    for f in frames[1 : DEPTH + 1]:
        assert f["text_offset"] in maps, (hex(f["text_offset"]), maps)
        size, offs = maps[f["text_offset"]]
        assert f["frame_size"] == size
        assert tuple(s["offset"] for s in f["slots"]) == offs
    # The other frames' return addresses have no map; the innermost pc is the trap.
    for f in frames[DEPTH + 1 :]:
        assert f["text_offset"] not in maps
    inner = frames[0]
    addr = inner["function_offset"] if objd.relative else inner["text_offset"]
    assert re.search(
        rf"^\s+{addr:x}:\s+udf\s.*\n.*trap: Normal\(UnreachableCodeReached\)", objd.text, re.M
    ), f"no udf trap at {addr:#x} in objdump"
    if session.pac:
        assert re.search(r"\bpaci(a|b)(sp|z)\b", objd.text), "PAC flag gave no signing code"


@pytest.mark.parametrize("session", _params(), indirect=True)
def test_images_without_memory_map(session, reference):
    """One image, found with no memory map: scanned back from the trap pc."""
    assert "@@regions=None" in session.output, session.output[-3000:]
    imgs = session.images["images"]
    assert len(imgs) == 1 and not session.images["problems"], session.images
    img = imgs[0]
    assert not img["error"], img
    assert img["kind"] == "module" and img["path"] is None and img["loaded_from"] == "memory"
    assert img["arch"] == "aarch64" and img["target"] == TARGET
    assert img["wasmtime_version"] == "49"
    objd = reference[session.pac]
    assert img["stackmap_entries"] == len(objd.stack_maps)
    assert img["functions"] == len(objd.functions)
    base, text = img["base"], img["text_start"]
    assert base % 4096 == 0 and base < text
    assert all(text <= f["pc"] < text + img["text_size"] for f in session.frames)
    # Independent witnesses of the base: frame_walk.py's own scan, and qemu's host
    # mappings (qemu-user maps the guest at the same addresses: guest_base 0).
    fw_base, fw_text, _, _ = _frame_walk(session.output)
    assert (fw_base, fw_text) == (base, text)
    m = re.search(r"@@hostmaps-begin\n(.*?)@@hostmaps-end", session.output, re.S)
    assert m, session.output[-3000:]
    spans = [
        tuple(int(x, 16) for x in line.split()[0].split("-"))
        for line in m.group(1).splitlines()
        if line.strip()
    ]
    assert any(lo <= base and base + img["size"] <= hi for lo, hi in spans), (
        f"image {base:#x}+{img['size']:#x} not inside any qemu mapping"
    )


@pytest.mark.parametrize("session", _params(), indirect=True)
def test_frame_command(session):
    """`stackmap frame 2` is frame #2 of `stackmap bt`: i31 10 and its struct."""
    fr = session.frame2["threads"][0]["frames"]
    assert len(fr) == 1
    fr = fr[0]
    assert fr["level"] == 2 and fr["safepoint"]
    assert _i31s(fr) == [10]
    bt2 = session.frames[2]
    keys = ("pc", "fp", "sp", "frame_size", "function", "text_offset")
    assert {k: fr[k] for k in keys} == {k: bt2[k] for k in keys}
    assert [(s["offset"], s["raw"]) for s in fr["slots"]] == [
        (s["offset"], s["raw"]) for s in bt2["slots"]
    ]


@pytest.mark.parametrize("session", _params(), indirect=True)
def test_text_output(session):
    """The text forms show the same frames; the hexdump marks the live slots."""
    out = session.output
    assert f"{len(EXPECTED_FUNCTIONS)} wasm frames in 1 activation" in out, out[-3000:]
    f2 = session.frames[2]
    line = re.search(r"^#2\s+0x0*([0-9a-f]+) in (\S+)\+0x[0-9a-f]+ .*$", out, re.M)
    assert line and int(line.group(1), 16) == f2["pc"] and line.group(2) == f2["function"]
    assert "SP+0=i31 10" in line.group(0) and f"SP+8=heap {_heaps(f2)[0]:#x}" in line.group(0)
    assert re.search(r"^frame #2 \(thread \d+\): wasm\[0\]::function\[0\]::build$", out, re.M)
    assert re.search(r"SP\+0\s+[0-9a-f]{8}\*", out), out[-3000:]
    assert "(* = live GC reference slot)" in out


@pytest.mark.parametrize("session", _params(), indirect=True)
def test_agrees_with_independent_walker(session):
    """frame_walk.py (no core code) reads the same frames, slots and return addresses."""
    _, text, walk, host = _frame_walk(session.output)
    frames = session.frames
    assert sorted(walk) == list(range(1, len(frames)))
    for level, (off, _raw, fp, rest) in walk.items():
        f = frames[level]
        assert (f["text_offset"], f["fp"]) == (off, fp)
        if f["safepoint"]:
            vals = re.findall(r"sp\+(\d+)=0x([0-9a-f]+)", rest)
            assert [(int(o), int(v, 16)) for o, v in vals] == [
                (s["offset"], s["raw"]) for s in f["slots"]
            ]


@pytest.mark.parametrize("session", _params(), indirect=True)
def test_return_addresses_stripped(session):
    """With PAC the saved return addresses are signed and the plugin shows them stripped;
    without it they are plain."""
    _, text, walk, host = _frame_walk(session.output)
    # {return address: raw value as saved, None when it carries no PAC bits}
    saved = {text + off: raw for off, raw, _, _ in walk.values()}
    saved[int(host.group(2), 16)] = int(host.group(3), 16) if host.group(3) else None
    if session.pac:
        # Cranelift signs with `paciaz` (no modifier): one PAC per address and run. A
        # zero PAC is possible (about 2**-15 per address): allow one unsigned address.
        unsigned = [hex(a) for a, raw in saved.items() if raw is None]
        assert len(saved) >= 4 and len(unsigned) <= 1, saved
        for level, (_off, raw, _, _) in walk.items():
            if raw is not None:
                assert raw >> 48 and raw & MASK48 == session.frames[level]["pc"]
    else:
        assert all(raw is None for raw in saved.values()), saved
    assert all(f["pc"] <= MASK48 for f in session.frames)


@pytest.mark.parametrize(
    "session", [c for c in _params() if c.values[0][0] == "gdb"], indirect=True
)
def test_gdb_own_bt(session):
    """GDB's `bt` walks the wasm frames (the plugin's unwinder) into the host caller."""
    lines = re.findall(r"^#(\d+)\s+0x([0-9a-f]+) in (\S+)", session.output, re.M)
    got = {int(n): (int(pc, 16), fn) for n, pc, fn in lines}
    for f in session.frames:
        assert got.get(f["level"]) == (f["pc"], f["function"]), (f["level"], got)
    n = len(session.frames)
    assert n in got and "catch_traps" in got[n][1], got.get(n)
