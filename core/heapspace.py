"""The copying collector's active semi-space, walked linearly: objects no root reaches.

The copying collector (Wasmtime 45+) bump-allocates in its active
semi-space. `VMCopyingHeapData {bump_ptr: u32, active_space_end: u32}` sits
behind the VMContext's `gc_heap_data` pointer (vmoffsets.rs). The active
space is the first half of the heap (objects from index 16, 0 is never an
object) or, after an odd number of collections, the second half ending at
`active_space_end` (objects from its start + 16). Every object's header
holds its size, so the space is walked object by object up to `bump_ptr`.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .gcheap import Heap
    from .heapgraph import Walk
    from .heapview import HeapView

from .errors import ReadError
from .gctypes import gc_heap_data_offset

MAX_LINEAR = 5_000_000
ALIGN = 16


def unreachable_in_active_space(view: HeapView, heap: Heap, walk: Walk) -> dict:
    if view.collector != "copying":
        return {
            "walked": False,
            "note": f"only the copying collector's heap can be walked "
            f"linearly (this one: {view.collector or 'unknown'})",
        }
    off = gc_heap_data_offset(heap.major)
    try:
        e = "<" if view.little else ">"
        ptr = struct.unpack(e + "Q", view.target.read_memory(heap.vmctx + off, 8))[0]
        bump, end = struct.unpack(e + "II", view.target.read_memory(ptr, 8))
    except (ReadError, TypeError):
        return {"walked": False, "note": "the collector's bump pointer is unreadable"}
    if not (bump <= end <= view.length) or bump % ALIGN:
        return {"walked": False, "note": f"implausible bump {bump:#x} / end {end:#x}"}
    start = 0 if end * 2 <= view.length + ALIGN else end // 2
    r = start + ALIGN
    count = size = 0
    note = None
    seen = 0
    while r < bump and seen < MAX_LINEAR:
        try:
            h = view.header(r)
        except ReadError as ex:
            note = f"stopped at {r:#x}: {ex}"
            break
        if h.kind is None or not view.size_ok(h) or h.size == 0:
            note = f"stopped at {r:#x}: no valid object header"
            break
        if r not in walk.headers:
            count += 1
            size += h.size
        seen += 1
        r += h.size
    rec = {
        "walked": True,
        "space": [start, end],
        "bump": bump,
        "objects": count,
        "bytes": size,
        "scanned": seen,
    }
    if note:
        rec["note"] = note
    return rec
