"""What the DRC collector's object header says about a ref after a collection."""

from . import gcheap
from .errors import ReadError
from .target import MemoryCache

# DRC collector, header reserved bits (Wasmtime 35+): bit 1 = in the over-approximated
# stack-roots list (every ref a wasm frame holds is, with one count, until a collection).
DRC_IN_STACK_ROOTS_BIT = 1 << 1


def drc_problem(
    mem: MemoryCache, heap: gcheap.Heap, r: int, kind: int, stack_root: bool
) -> str | None:
    """The DRC collector (Wasmtime 35+) frees in place: a freed object keeps its bytes, so
    its ref count (u64 after the 8-byte common header) tells. A ref on a wasm stack is held
    by the collector's over-approximated stack-roots list (a header bit, and one count)
    until a collection sees it gone from every traced stack: such a ref out of the list is
    one the collector did not trace (the count it dropped may have freed the object)."""
    if r + 16 > heap.length:
        return f"DRC header cut off by the heap's end (index {r:#x}, length {heap.length:#x})"
    try:
        count = mem.order.u64(mem.read(heap.base + r + 8, 8))
    except ReadError:
        return f"DRC header at {heap.base + r:#x} is unreadable"
    if count == 0:
        return "freed object: its DRC ref count is 0 (a reference the collector did not count)"
    if stack_root and not kind & DRC_IN_STACK_ROOTS_BIT:
        return (
            f"not in the DRC over-approximated stack-roots list (ref count {count}): "
            "the collector did not trace this root"
        )
    return None
