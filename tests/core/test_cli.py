"""The `wasmtime-stackmaps` console tool, run as a subprocess on fixture images."""

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from core_fixtures import FIXTURES
from wasmtime_stackmaps import WasmtimeImage

ENTRY_POINT = Path(sys.executable).parent / "wasmtime-stackmaps"


def run(*args, module=False):
    """Run the tool; through `python -m wasmtime_stackmaps.cli` when module=True."""
    if module or not ENTRY_POINT.exists():
        cmd = [sys.executable, "-m", "wasmtime_stackmaps.cli"]
    else:
        cmd = [str(ENTRY_POINT)]
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, timeout=60)


# A few representative images (one per kind of target and compiler) keep this quick;
# test_fixtures.py covers every image in-process.
PICKED = [
    k
    for k in FIXTURES
    if k
    in {
        ("structs", "cli", "x86_64-unknown-linux-gnu"),
        ("arrays", "cli", "aarch64-unknown-linux-gnu"),
        ("tailcall", "cli", "riscv64gc-unknown-linux-gnu"),
        ("externref", "cli", "s390x-unknown-linux-gnu"),
        ("i31", "cli", "pulley32"),
        ("component", "cli", "pulley64"),
        ("component", "py", "host"),
        ("structs", "py", "pulley64"),
    }
]


@pytest.fixture(scope="module", params=PICKED, ids=lambda k: "-".join(k))
def picked(request, fixture_store):
    return fixture_store.get(request.param)


def test_entry_point_installed():
    assert ENTRY_POINT.exists(), "pip install -e . should have made the console script"


def test_info_json(picked):
    r = run("info", "--json", picked.path)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    img = WasmtimeImage.from_file(str(picked.path))
    assert info["kind"] == img.kind == ("component" if picked.wat == "component" else "module")
    assert info["arch"] == img.arch
    assert info["pulley"] == img.pulley
    assert info["target"] == img.engine.target
    assert info["wasmtime_version"] == img.engine.version
    assert info["stackmap_entries"] == len(picked.objdump.stack_maps) > 0
    assert 0 < info["distinct_maps"] <= info["stackmap_entries"]
    assert info["functions"] == len(picked.objdump.functions)
    assert 0 < info["wasm_functions"] < info["functions"]
    assert info["stackmap_note"] is None


def test_info_text(picked):
    r = run("info", picked.path)
    assert r.returncode == 0, r.stderr
    n = len(picked.objdump.stack_maps)
    assert f"stack-map entries: {n}" in r.stdout
    assert "wasmtime version:" in r.stdout
    if picked.target.startswith("pulley"):
        assert "Pulley" in r.stdout


def test_dump_json_matches_objdump(picked):
    r = run("dump", "--json", picked.path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    got = [(e["pc"], e["frame_size"], tuple(e["offsets"]), e["function"]) for e in doc["entries"]]
    want = [(m.pc, m.frame_size, m.offsets, m.function) for m in picked.objdump.stack_maps]
    assert got == want
    starts = {f.name: f.start for f in picked.objdump.functions}
    for e in doc["entries"]:
        assert e["function_offset"] == e["pc"] - starts[e["function"]]


def test_dump_text_and_function_filter(picked):
    r = run("dump", picked.path)
    assert r.returncode == 0, r.stderr
    maps = picked.objdump.stack_maps
    assert r.stdout.rstrip().endswith(f"{len(maps)} entries")
    for m in maps:
        assert f"{m.pc:#10x}" in r.stdout
    # --function with a full name, then with a wasm function index.
    fname = maps[0].function
    r = run("dump", "--json", "--function", fname, picked.path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [e["pc"] for e in doc["entries"]] == [m.pc for m in maps if m.function == fname]
    # An unknown function is a usage error (exit 2), not a crash.
    r = run("dump", "--function", "no_such_function", picked.path)
    assert r.returncode == 2
    assert "no function matches" in r.stderr


def test_lookup(picked):
    m = picked.objdump.stack_maps[-1]
    r = run("lookup", "--json", picked.path, hex(m.pc))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["safepoint"] is True
    assert doc["frame_size"] == m.frame_size
    assert doc["offsets"] == list(m.offsets)
    assert doc["function"] == m.function
    r = run("lookup", picked.path, str(m.pc))  # decimal too
    assert r.returncode == 0 and f"frame_size={m.frame_size}" in r.stdout
    for o in m.offsets:
        assert f"SP+{o}" in r.stdout
    # One byte before a return address is not a safepoint.
    pcs = {x.pc for x in picked.objdump.stack_maps}
    if m.pc - 1 not in pcs:
        r = run("lookup", "--json", picked.path, hex(m.pc - 1))
        doc = json.loads(r.stdout)
        assert (
            r.returncode == 0 and doc["safepoint"] is False and "not a safepoint" in doc["reason"]
        )
        r = run("lookup", picked.path, hex(m.pc - 1))
        assert "no stack map" in r.stdout
    r = run("lookup", picked.path, "0x7fffffff")
    assert r.returncode == 0 and "outside .text" in r.stdout
    r = run("lookup", picked.path, "not-a-number")
    assert r.returncode == 2 and "not a number" in r.stderr


def test_python_dash_m(picked):
    r = run("check", picked.path, module=True)
    assert r.returncode == 0, r.stderr
    assert "valid" in r.stdout


# -- check: exit codes -------------------------------------------------------------------------


def _stackmap_section(data: bytes):
    img = WasmtimeImage.from_bytes(data)
    return img.sections[".wasmtime.stackmap"]


@pytest.fixture(scope="module")
def x86_image(fixture_store):
    return fixture_store.get(("structs", "cli", "x86_64-unknown-linux-gnu")).path


def _patched(tmp_path, src: Path, name: str, patch) -> Path:
    data = bytearray(src.read_bytes())
    off, size = _stackmap_section(bytes(data))
    patch(data, off, size)
    out = tmp_path / name
    out.write_bytes(bytes(data))
    return out


def test_check_valid(picked):
    r = run("check", picked.path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"valid ({len(picked.objdump.stack_maps)} stack-map entries" in r.stdout


@pytest.mark.parametrize(
    "what,patch,message",
    [
        (
            "n-too-large",
            lambda d, off, size: d.__setitem__(slice(off, off + 4), struct.pack("<I", size)),
            "entry count N=",
        ),
        (
            "unsorted",
            lambda d, off, size: d.__setitem__(
                slice(off + 4, off + 12), d[off + 8 : off + 12] + d[off + 4 : off + 8]
            ),
            "not strictly ascending",
        ),
        ("frame-size-0", None, "frame_size is 0"),
        ("pc-past-text", None, "past the end of .text"),
    ],
)
def test_check_invalid(tmp_path, x86_image, what, patch, message):
    if what == "frame-size-0":

        def patch(d, off, size):
            n = struct.unpack_from("<I", d, off)[0]
            data = off + 4 + 8 * n
            k = struct.unpack_from("<I", d, off + 4 + 4 * n)[0]
            struct.pack_into("<I", d, data + 4 * k, 0)
    elif what == "pc-past-text":

        def patch(d, off, size):
            n = struct.unpack_from("<I", d, off)[0]
            struct.pack_into("<I", d, off + 4 + 4 * (n - 1), 0x7FFFFFF0)

    bad = _patched(tmp_path, x86_image, f"{what}.cwasm", patch)
    r = run("check", bad)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "invalid" in r.stdout and message in r.stdout, r.stdout
    # The other commands report a corrupt section as invalid too (exit 1), or work.
    r = run("dump", bad)
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr


def test_check_unreadable(tmp_path, x86_image):
    cases = {}
    cases["missing"] = tmp_path / "does-not-exist.cwasm"
    (tmp_path / "text.cwasm").write_text("hello, not an image\n")
    cases["not-elf"] = tmp_path / "text.cwasm"
    (tmp_path / "empty.cwasm").write_bytes(b"")
    cases["empty"] = tmp_path / "empty.cwasm"
    data = x86_image.read_bytes()
    (tmp_path / "trunc.cwasm").write_bytes(data[: len(data) // 2])
    cases["truncated"] = tmp_path / "trunc.cwasm"
    elf = bytearray(data)
    elf[7] = 0  # a plain System V ELF, not Wasmtime's OS/ABI
    (tmp_path / "sysv.cwasm").write_bytes(bytes(elf))
    cases["other-elf"] = tmp_path / "sysv.cwasm"
    cases["directory"] = tmp_path
    for what, path in cases.items():
        for cmd in (["check"], ["info"], ["dump", "--json"], ["lookup", "0x10"]):
            args = [cmd[0], *cmd[1:], path] if cmd[0] != "lookup" else ["lookup", path, cmd[1]]
            r = run(*args)
            assert r.returncode == 2, (what, cmd, r.stdout, r.stderr)
            assert r.stderr.startswith("wasmtime-stackmaps: "), (what, cmd, r.stderr)
            assert "Traceback" not in r.stderr


def test_check_image_without_stackmaps(tmp_path):
    """A module with no live GC refs at any call has no section: valid, with a note."""
    import tooling

    src = tmp_path / "plain.wat"
    src.write_text(
        '(module (func $f (result i32) (i32.const 1)) (func (export "g") (result i32) (call $f)))'
    )
    out = tooling.compile_wat(src, tmp_path / "plain.cwasm", flags=())
    r = run("check", out)
    assert r.returncode == 0 and "0 stack-map entries" in r.stdout
    assert "no .wasmtime.stackmap section" in r.stdout
    r = run("dump", "--json", out)
    doc = json.loads(r.stdout)
    assert doc["entries"] == [] and "no call site" in doc["note"]
    r = run("info", "--json", out)
    assert json.loads(r.stdout)["stackmap_entries"] == 0


def test_usage_errors():
    r = run()
    assert r.returncode == 2
    r = run("frobnicate", "x")
    assert r.returncode == 2
