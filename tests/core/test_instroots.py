"""Globals and tables as GC roots: the module's counts, the VMContext offsets per version, and
reading them from a synthetic instance (no debugger; the real processes are in
tests/plugins/test_heap_roots.py)."""

import struct

import pytest
import wasmtime
from wasmtime_stackmaps import instroots
from wasmtime_stackmaps.errors import ReadError
from wasmtime_stackmaps.gctypes import interned_map
from wasmtime_stackmaps.modfind import LoadedModule
from wasmtime_stackmaps.wasmparse import RefType, parse_module

from tests.tooling import REPO

SOURCE = (REPO / "tests" / "programs" / "heap_roots.wat").read_text()
CLI = SOURCE.replace(";;STOP", "(unreachable)")
PY = SOURCE.replace(";;IMPORT", '(import "host" "stop" (func $h))').replace(";;STOP", "(call $h)")


def module(text):
    return parse_module(bytes(wasmtime.wat2wasm(text)))


def test_counts_and_types():
    m = module(PY)
    assert (m.imported_funcs, m.imported_tables, m.imported_globals, m.imported_memories) == (
        1,
        0,
        0,
        0,
    )
    assert m.memories_shared == [False] and m.imported_tags == 0
    assert [g[0] for g in m.globals] == [RefType(True, 0), "i32", RefType(True, "any")]
    assert [(t.element, t.minimum, t.maximum) for t in m.tables] == [
        (RefType(True, 0), 8, None),
        (RefType(True, "func"), 2, None),
        (RefType(True, "any"), 4, None),
    ]
    gc = [instroots.is_gc_root_type(m, t.element) for t in m.tables]
    assert gc == [True, False, True]


def test_imports_shared_memory_and_table_initializers():
    m = module(
        """(module
        (type $s (struct))
        (import "a" "t" (table 1 2 externref)) (import "a" "g" (global (mut anyref)))
        (import "a" "m" (memory 1 2 shared)) (import "a" "tag" (tag))
        (memory 1 1 shared) (memory 1)
        (table 3 (ref null $s) (struct.new $s)))"""
    )
    assert (m.imported_tables, m.imported_globals, m.imported_memories, m.imported_tags) == (
        1,
        1,
        1,
        1,
    )
    assert m.memories_shared == [True, True, False]
    assert m.tables[1].element == RefType(True, 0) and m.tables[1].minimum == 3
    assert m.tables[0].maximum == 2


@pytest.mark.parametrize(
    "major, text, tables, globals_",
    [
        # 49: fixed fields end at 48; one defined memory (a pointer, 8, and its definition,
        # 16); the CLI module imports nothing, the host's imports one function (32 from 45).
        (49, CLI, 72, 128),
        (49, PY, 104, 160),
        (44, PY, 96, 144),  # a function import is 24 bytes before 45
        (33, PY, 104, 160),  # fixed fields end at 56 in 33/34
        (32, PY, 120, 176),  # and at 72 in 32
    ],
)
def test_offsets_follow_the_version(major, text, tables, globals_):
    off = instroots.vmctx_offsets(module(text), major)
    assert (off.tables, off.globals) == (tables, globals_)
    assert off.memories == off.owned_memories - 8


def test_unknown_version():
    assert instroots.vmctx_offsets(module(CLI), 31) is None


class Memory:
    """A sparse little-endian address space."""

    def __init__(self):
        self.blocks = {}

    def put(self, addr, data):
        self.blocks[addr] = bytes(data)

    def read(self, addr, n):
        for a, b in self.blocks.items():
            if a <= addr and addr + n <= a + len(b):
                return b[addr - a : addr - a + n]
        raise ReadError(f"cannot read {n} bytes at {addr:#x}", addr)


def instance(m, major=49, *, table0_len=8, type_ids=None):
    """A VMContext at 0x10000 laid out as Wasmtime `major` does for module `m`."""
    mem = Memory()
    vmctx = 0x10000
    off = instroots.vmctx_offsets(m, major)
    ctx = bytearray(off.globals + 16 * len(m.globals))
    ctx[0:4] = b"core"
    _, count = interned_map(m)
    ids = type_ids if type_ids is not None else list(range(count))
    mem.put(0x20000, struct.pack(f"<{count}I", *ids))
    struct.pack_into("<Q", ctx, 40, 0x20000)  # type_ids (35+)
    struct.pack_into("<Q", ctx, off.memories, vmctx + off.owned_memories)
    tables = {
        0: (0x30000, [0, 0, 0, 0x50, 0, 0x90, 0, 0], table0_len),
        2: (0x31000, [19, 0xB0, 0, 0], 4),
    }
    tables[1] = (0x32000, [0, 0], 2)
    for i, (base, elems, n) in tables.items():
        struct.pack_into("<QQ", ctx, off.tables + 16 * i, base, n)
        mem.put(base, struct.pack(f"<{len(elems)}I", *elems))
    struct.pack_into("<I", ctx, off.globals, 0x20)  # global 0: a node
    struct.pack_into("<I", ctx, off.globals + 16, 12345)  # global 1: an i32
    struct.pack_into("<I", ctx, off.globals + 32, 11)  # global 2: an i31
    mem.put(vmctx, ctx)
    return mem, vmctx


def test_roots_from_a_synthetic_instance():
    m = module(CLI)
    mem, vmctx = instance(m)
    lm = LoadedModule("roots.wat", m, "test")
    roots, read, notes = instroots.store_roots(mem.read, [vmctx], [lm], 49, True)
    got = {r.label: r.ref for r in roots}
    assert got == {"global 0": 0x20, "table 0[3]": 0x50, "table 0[5]": 0x90, "table 2[1]": 0xB0}
    assert read == [
        f"globals, tables of vmctx {vmctx:#x} (roots.wat): 2 GC global(s), 2 GC table(s) "
        "with 12 element(s)"
    ]
    assert not notes
    assert next(r for r in roots if r.label == "table 0[5]").address == 0x30000 + 20


def test_a_layout_that_does_not_fit_is_not_read():
    m = module(CLI)
    mem, vmctx = instance(m, table0_len=1)  # below the table's minimum of 8
    lm = LoadedModule("roots.wat", m, "test")
    roots, read, notes = instroots.store_roots(mem.read, [vmctx], [lm], 49, True)
    assert not roots and not read
    assert "defined table 0 has 1 elements, outside its limits 8.." in notes[0]
    # A version whose fixed fields end elsewhere reads the memory pointer at the wrong place.
    mem, vmctx = instance(m)
    roots, read, notes = instroots.store_roots(mem.read, [vmctx], [lm], 33, True)
    assert not roots and "no module fits" in notes[0]


def test_table_reads_are_bounded(monkeypatch):
    m = module(CLI)
    mem, vmctx = instance(m)
    monkeypatch.setattr(instroots, "MAX_TABLE_READ", 4)
    lm = LoadedModule("roots.wat", m, "test")
    roots, _, notes = instroots.store_roots(mem.read, [vmctx], [lm], 49, True)
    assert "table 0[5]" not in {r.label for r in roots}
    assert "table 0: 4 of its 8 elements read" in notes


def test_no_module_or_no_instance_says_so():
    assert "no module" in instroots.store_roots(Memory().read, [1], [], 49, True)[2][0]
    m = LoadedModule("x", module(CLI), "test")
    assert "no instance" in instroots.store_roots(Memory().read, [], [m], 49, True)[2][0]


def test_imported_global_and_table_read_through_their_records():
    """An imported global/table: the import record's first word points at the exporter's
    definition; a definition reached twice (imported here, defined by another instance of
    the same store) is read once."""
    m = module(
        """(module
        (import "a" "g" (global $g (mut anyref))) (import "a" "t" (table $t 2 anyref))
        (import "a" "f" (func)))"""
    )
    off = instroots.vmctx_offsets(m, 49)
    assert off.imported_tables == 48 + 32  # after one function import (32 bytes from 45)
    assert off.imported_globals == off.imported_tables + 24
    mem = Memory()
    vmctx = 0x10000
    ctx = bytearray(off.globals)
    ctx[0:4] = b"core"
    _, count = interned_map(m)
    mem.put(0x20000, struct.pack(f"<{count}I", *range(count)))
    struct.pack_into("<Q", ctx, 40, 0x20000)
    struct.pack_into("<Q", ctx, off.imported_globals, 0x40000)  # VMGlobalImport.from
    struct.pack_into("<Q", ctx, off.imported_tables, 0x41000)  # VMTableImport.from
    mem.put(vmctx, ctx)
    mem.put(0x40000, struct.pack("<I12x", 0x30))  # the exporter's VMGlobalDefinition
    mem.put(0x41000, struct.pack("<QQ", 0x42000, 2))  # the exporter's VMTableDefinition
    mem.put(0x42000, struct.pack("<2I", 0, 0x48))
    lm = LoadedModule("imports.wat", m, "test")
    roots, read, _ = instroots.store_roots(mem.read, [vmctx], [lm], 49, True)
    assert {r.label: (r.ref, r.address) for r in roots} == {
        "global 0": (0x30, 0x40000),
        "table 0[1]": (0x48, 0x42004),
    }
    assert "1 GC global(s), 1 GC table(s) with 2 element(s)" in read[0]
    seen = {0x40000, 0x41000}  # already read as another instance's definitions
    got = instroots.read_instance_roots(mem.read, vmctx, m, off, True, "", seen, [100])
    assert got.roots == [] and got.globals_read == 0
