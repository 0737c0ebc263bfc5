"""The decoder against `wasmtime objdump --stack-maps` on fixtures compiled this session.

Fixtures: every `.wat` in wat/ (GC structs, arrays, i31, externref/anyref,
tail calls, a component with two GC core modules), compiled by the wasmtime
CLI (49.x) for x86_64, aarch64, riscv64gc, s390x and Pulley (64, 32, 64be),
and by the wasmtime Python package (50.x) for the host and Pulley.
"""

import platform

import pytest
import tooling
from core_fixtures import MIN_ENTRIES, WATS
from wasmtime_stackmaps import FileSource, WasmtimeImage

ARCH_OF_TARGET = {
    "x86_64-unknown-linux-gnu": "x86_64",
    "aarch64-unknown-linux-gnu": "aarch64",
    "riscv64gc-unknown-linux-gnu": "riscv64",
    "s390x-unknown-linux-gnu": "s390x",
    "pulley64": "pulley64",
    "pulley32": "pulley32",
    "pulley64be": "pulley64",
}
HOST_ARCH = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "aarch64",
    "riscv64": "riscv64",
    "s390x": "s390x",
}.get(platform.machine().lower())


def label(built) -> str:
    return f"{built.compiler}:{built.target}"


def expected_arch(built) -> str:
    return HOST_ARCH if built.target == "host" else ARCH_OF_TARGET[built.target]


def decoded(img):
    sm = img.stackmaps
    assert sm is not None, f"{img.name}: no .wasmtime.stackmap section"
    return [(e.pc, e.frame_size, tuple(e.offsets)) for e in sm]


def test_decoder_matches_objdump(built, compared):
    """Entry for entry: pc (text offset), frame_size and live offsets."""
    img = WasmtimeImage.from_file(str(built.path))
    ours = decoded(img)
    theirs = [m.key() for m in built.objdump.stack_maps]
    assert len(theirs) >= MIN_ENTRIES[built.wat], (
        f"{built}: objdump shows only {len(theirs)} stack maps; the fixture should have "
        f">= {MIN_ENTRIES[built.wat]}"
    )
    if ours != theirs:
        missing = sorted(set(theirs) - set(ours))
        extra = sorted(set(ours) - set(theirs))
        pytest.fail(
            f"{built}: decoder and objdump disagree\n"
            f"  only in objdump: {missing[:10]}\n  only in decoder: {extra[:10]}"
        )
    compared[label(built)] += len(ours)


def test_objdump_addresses_are_text_offsets(fixture_store):
    """Multi-function images tell whether objdump prints text offsets or function offsets.

    (They are text offsets in 49.x; the parser in tooling.py copes with either.)
    """
    modes = set()
    for b in fixture_store.all():
        od = b.objdump
        assert len(od.functions) > 3
        if od.relative is not None:
            modes.add(od.relative)
        # Stack maps live in functions other than the first, so a function-relative
        # reading would have given different pcs; the decoder comparison above settles it.
        assert any(
            f.start != 0 and any(m.function == f.name for m in od.stack_maps) for f in od.functions
        ), b
    assert modes == {False}


def test_function_naming(built):
    """function_at() names the function objdump prints each stack map under."""
    img = WasmtimeImage.from_file(str(built.path))
    od = built.objdump
    by_name = {f.name: f for f in od.functions}
    assert len(img.functions) == len(od.functions)
    for f in img.functions:
        assert f.name in by_name, f"{f.name} not listed by objdump"
        assert f.start == by_name[f.name].start, f.name
        assert f.size > 0
        assert img.function_at(f.start) == f
        assert img.function_at(f.end - 1) == f
    for m in od.stack_maps:
        f = img.function_at(m.pc)
        assert f is not None, f"no function at stack map pc {m.pc:#x}"
        assert f.name == m.function
        assert f.is_wasm and f.module is not None and f.index is not None
        assert f.name.startswith(f"wasm[{f.module}]::function[{f.index}]")
        assert f.start < m.pc <= f.end  # a return address: strictly after the call
    # Functions that keep refs live across calls (names from the name section).
    names = {img.function_at(m.pc).name for m in od.stack_maps}
    expect = {
        "structs": {
            "wasm[0]::function[2]::one",
            "wasm[0]::function[3]::many",
            "wasm[0]::function[4]::build",
        },
        "arrays": {"wasm[0]::function[2]::fill", "wasm[0]::function[3]::of_refs"},
        "i31": {"wasm[0]::function[3]::rec", "wasm[0]::function[4]::arr"},
        "externref": {"wasm[0]::function[3]::keep", "wasm[0]::function[4]::any"},
        "tailcall": {"wasm[0]::function[1]::loop", "wasm[0]::function[2]::sum"},
        "component": {"wasm[0]::function[0]::build", "wasm[1]::function[1]"},
    }[built.wat]
    assert expect <= names, f"stack maps only in {sorted(names)}"
    # Trampolines and builtins are named but are not wasm functions.
    others = [f for f in img.functions if not f.is_wasm]
    assert any("trampoline" in f.name for f in others)
    assert img.find_function("build") or built.wat != "structs"
    if built.wat == "structs":
        (b,) = img.find_function("build")
        assert b.index == 4 and img.find_function("4") == [b]
        assert img.find_function(b.name) == [b]


def test_engine_arch_kind(built):
    img = WasmtimeImage.from_file(str(built.path))
    eng = img.engine
    if built.compiler == "cli":
        assert eng.major == 49, eng
    else:
        assert eng.major == 50, eng
    arch = expected_arch(built)
    assert img.arch == arch
    if built.target == "host":
        assert eng.target.startswith(arch.replace("riscv64", "riscv64gc") + "-"), eng
    elif built.target.startswith("pulley"):
        assert eng.target == f"{built.target}-unknown-unknown-elf"
    else:
        assert eng.target == built.target
    assert img.pulley == ({"pulley64": 64, "pulley64be": 64, "pulley32": 32}.get(built.target))
    assert img.kind == ("component" if built.wat == "component" else "module")
    # s390x and pulley64be images have big-endian ELF headers, the rest little-endian.
    assert img.header.little_endian == (
        built.target not in ("s390x-unknown-linux-gnu", "pulley64be")
    )


def test_lookup_is_exact(built):
    img = WasmtimeImage.from_file(str(built.path))
    sm = img.stackmaps
    sm.validate()
    pcs = set(sm.pcs)
    text_size = img.text_range[1]
    for i, e in enumerate(sm):
        assert sm.find(e.pc) == i
        assert img.lookup(e.pc) == e
        assert e.pc <= text_size
        for near in (e.pc - 1, e.pc + 1):
            if near not in pcs:
                assert sm.lookup(near) is None
                assert "not a safepoint" in img.describe_no_map(near)
        assert all(o % 4 == 0 and o < e.frame_size for o in e.offsets)
        assert e.offsets == tuple(sorted(set(e.offsets)))
    assert img.lookup(text_size + 16) is None
    assert "outside .text" in img.describe_no_map(text_size + 16)
    assert 1 <= sm.distinct_maps() <= len(sm)
    # entries_between splits by function exactly like function_at.
    total = 0
    for f in img.functions:
        got = list(sm.entries_between(f.start, f.end))
        assert all(f.start <= e.pc < f.end for e in got)
        total += len(got)
    assert total == len([e for e in sm if img.function_at(e.pc) is not None])


def test_bytes_and_file_sources_agree(built):
    data = built.path.read_bytes()
    a = WasmtimeImage.from_file(str(built.path))
    b = WasmtimeImage.from_bytes(data, "fixture")
    c = WasmtimeImage(FileSource(str(built.path)))
    assert decoded(a) == decoded(b) == decoded(c)
    assert a.functions == b.functions
    assert a.engine == b.engine
    assert a.sections == b.sections
    assert a.size <= len(data)


def test_fixture_matrix_is_complete(fixture_store, compared):
    """Every .wat built for every target (this also reports the totals)."""
    assert len(fixture_store.all()) == len(WATS) * (
        len(tooling.NATIVE_TARGETS) + len(tooling.PULLEY_TARGETS) + 2
    )


def test_memory_source_and_base(built):
    """Read as a debugger would (memory at a load address, size unknown): same result."""
    from wasmtime_stackmaps import MemorySource

    data = built.path.read_bytes()
    base = 0x7F12_3456_0000

    def read_memory(addr, size):
        off = addr - base
        return data[max(0, off) : max(0, off) + size]

    src = MemorySource(read_memory, base)
    img = WasmtimeImage(src, base=base)
    assert img.size <= len(data)
    assert decoded(img) == decoded(WasmtimeImage.from_bytes(data))
    text_off, text_size = img.text_range
    assert img.text_start == base + text_off
    for pc, _, _ in decoded(img):
        assert img.text_offset(base + text_off + pc) == pc
    assert img.text_offset(base + text_off - 1) is None
    assert img.text_offset(base + text_off + text_size) is None
    assert src.reads <= 2 + len(data) // src.CHUNK + 1
    assert WasmtimeImage.from_bytes(data).text_start is None
