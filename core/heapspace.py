"""The collector's bump-allocated space, walked linearly: objects no root reaches.

Two collectors allocate by bumping a pointer, and every object's header holds
its size, so their heap can be walked object by object up to that pointer:

- the copying collector (Wasmtime 45+): `VMCopyingHeapData {bump_ptr: u32,
  active_space_end: u32}` behind the VMContext's `gc_heap_data` pointer
  (vmoffsets.rs). The active space is the first half of the heap (objects
  from index 16, 0 is never an object) or, after an odd number of
  collections, the second half ending at `active_space_end` (objects from its
  start + 16); sizes are multiples of 16.
- the null collector (every version): `gc_heap_data` points at its `next:
  u32` bump pointer (`null.rs`); objects start at index 8 (1 aligned to the
  8-byte header), each at its layout's alignment (8, or 16 with v128 fields:
  the skipped word is still zero, the null collector never frees), and
  nothing is ever collected: every object allocated is still there.

DRC keeps a free list: its heap cannot be walked this way.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .gcheap import Heap
    from .heapgraph import Walk
    from .heapview import HeapView

from .errors import ReadError
from .gctypes import gc_heap_data_offset

MAX_LINEAR = 5_000_000
ALIGN = 16
NULL_FIRST = 8  # the null collector's first object: index 1 aligned to its 8-byte header


def unreachable_in_active_space(view: HeapView, heap: Heap, walk: Walk) -> dict[str, Any]:
    """The objects of the bump-allocated space that the walk from the roots did not reach."""
    if view.collector not in ("copying", "null"):
        return {
            "walked": False,
            "note": f"only the copying and null collectors' heaps can be walked "
            f"linearly (this one: {view.collector or 'unknown'})",
        }
    off = gc_heap_data_offset(heap.major)
    if heap.vmctx is None or off is None:
        return {"walked": False, "note": "no VMContext of the store: its bump pointer is unknown"}
    e = "<" if view.little else ">"
    try:
        ptr = struct.unpack(e + "Q", view.target.read_memory(heap.vmctx + off, 8))[0]
        raw = view.target.read_memory(ptr, 8 if view.collector == "copying" else 4)
    except ReadError:
        return {"walked": False, "note": "the collector's bump pointer is unreadable"}
    if view.collector == "null":
        (bump,) = struct.unpack(e + "I", raw)
        if not NULL_FIRST <= bump <= view.length:
            return {"walked": False, "note": f"implausible bump pointer {bump:#x}"}
        return _walk(view, walk, NULL_FIRST, bump, 8, [NULL_FIRST, bump])
    bump, end = struct.unpack(e + "II", raw)
    if not (bump <= end <= view.length) or bump % ALIGN:
        return {"walked": False, "note": f"implausible bump {bump:#x} / end {end:#x}"}
    start = 0 if end * 2 <= view.length + ALIGN else end // 2
    return _walk(view, walk, start + ALIGN, bump, ALIGN, [start, end])


def _walk(
    view: HeapView, walk: Walk, r: int, bump: int, align: int, space: list[int]
) -> dict[str, Any]:
    count = size = seen = 0
    note = None
    while r < bump and seen < MAX_LINEAR:
        try:
            h = view.header(r)
        except ReadError as ex:
            note = f"stopped at {r:#x}: {ex}"
            break
        if h.kind_word == 0 and align == 8 and r % 16 == 8:
            r += 8  # the padding before a 16-aligned object
            continue
        if h.kind is None or not view.size_ok(h) or not h.size:
            note = f"stopped at {r:#x}: no valid object header"
            break
        if r not in walk.headers:
            count += 1
            size += h.size
        seen += 1
        r = (r + h.size + align - 1) // align * align
    rec: dict[str, Any] = {
        "walked": True,
        "space": space,
        "bump": bump,
        "objects": count,
        "bytes": size,
        "scanned": seen,
    }
    if note:
        rec["note"] = note
    return rec
