"""The versioned tables against Wasmtime's source, release by release (docs/format.md §5-§7).

Each expectation below was read from Wasmtime's source at the release tag named
in docs/format.md; a table edit that breaks one of them is a regression.
"""

import pytest
from wasmtime_stackmaps.gcheap import KINDS, LAYOUTS, layout_for
from wasmtime_stackmaps.runtime import store_layout_for
from wasmtime_stackmaps.traps import trap_name, trap_names

# Number of `Trap` variants per major version (crates/environ/src/trap_encoding.rs).
TRAP_COUNTS = {32: 20, 33: 20, 34: 21, 35: 24, 36: 24, 37: 24, 38: 25, 39: 25, 40: 26, 41: 36}
TRAP_COUNTS |= {42: 34, 43: 45, 44: 46, 45: 48, 46: 49, 47: 50, 48: 50}


@pytest.mark.parametrize("major", sorted(TRAP_COUNTS))
def test_trap_variant_count(major):
    assert len(trap_names(major)) == TRAP_COUNTS[major]


@pytest.mark.parametrize(
    "major,code,name",
    [
        (33, 11, "AlwaysTrapAdapter"),
        (34, 20, "DisabledOpcode"),
        (35, 20, "UnhandledTag"),  # inserted before DisabledOpcode in 35
        (35, 22, "DisabledOpcode"),
        (37, 23, "AsyncDeadlock"),
        (38, 24, "CannotLeaveComponent"),  # new in 38 (the table had it from 39 only)
        (39, 24, "CannotLeaveComponent"),
        (40, 25, "CannotBlockSyncTask"),
        (41, 29, "DebugAssertMayEnterUnset"),
        (42, 11, "OutOfFuel"),  # AlwaysTrapAdapter removed in 42
        (42, 28, "DebugAssertPointerAligned"),  # and DebugAssertMayEnterUnset
        (43, 44, "CannotResumeThread"),
        (46, 48, "WaitableSyncAndAsync"),
        (46, 0xFE, "GcHeapCorrupt"),
        (47, 0xFF, "InternalAssert"),
        (48, 49, "UncaughtException"),
    ],
)
def test_trap_code_names(major, code, name):
    assert trap_name(code, major) == name


def test_no_gc_corrupt_codes_before_46():
    assert trap_name(0xFE, 45).startswith("unknown trap code")


@pytest.mark.parametrize(
    "major,exit_fp,exit_pc,entry_fp,trampoline",
    [
        (32, 24, 32, 40, False),
        (33, 40, 48, 56, False),
        (36, 40, 48, 56, False),
        (37, 40, 48, 56, True),
        (38, 40, 48, 64, True),
        (42, 40, 48, 64, True),
        (43, 48, 56, 72, True),
        (48, 48, 56, 72, True),
    ],
)
def test_store_context_rows(major, exit_fp, exit_pc, entry_fp, trampoline):
    row = store_layout_for(major)
    assert row is not None
    assert (row.exit_fp, row.exit_pc, row.entry_fp) == (exit_fp, exit_pc, entry_fp)
    assert row.exit_fp_is_trampoline is trampoline


def test_store_context_not_before_32():
    assert store_layout_for(31) is None and store_layout_for(None) is None


@pytest.mark.parametrize(
    "major,heap_in,heap_offset,mask,drc_header,default",
    [
        (32, "vmctx", 40, 0xF8000000, 16, "drc"),
        (33, "store", 24, 0xF8000000, 16, "drc"),
        (34, "store", 24, 0xF8000000, 16, "drc"),
        (35, "store", 24, 0xF8000000, 24, "drc"),
        (36, "store", 24, 0xFC000000, 24, "drc"),
        (42, "store", 24, 0xFC000000, 24, "drc"),
        (43, "store", 32, 0xFC000000, 24, "drc"),
        (45, "store", 32, 0xFC000000, 24, "drc"),
        (46, "store", 32, 0xFC000000, 24, "copying"),
        (48, "store", 32, 0xFC000000, 24, "copying"),
    ],
)
def test_heap_layout_rows(major, heap_in, heap_offset, mask, drc_header, default):
    row, _ = layout_for(major)
    assert row is not None
    assert (row.heap_in, row.heap_offset, row.kind_mask) == (heap_in, heap_offset, mask)
    assert row.drc_header == drc_header
    assert row.collectors[0] == default
    assert ("copying" in row.collectors) == (major >= 45)


def test_heap_store_offset_is_store_gc_heap():
    """33 on, the heap offset in LAYOUTS is the store context's gc_heap: it sits right
    before the exit fp field in every row of the store context table."""
    for major in range(33, 49):
        heap, _ = layout_for(major)
        store = store_layout_for(major)
        assert heap.heap_offset + 16 == store.exit_fp, major


def test_exnref_invisible_under_old_mask():
    exn = next(k for k, v in KINDS.items() if v == "exnref")
    assert exn & LAYOUTS[32].kind_mask == 0
    assert exn & LAYOUTS[36].kind_mask == exn
