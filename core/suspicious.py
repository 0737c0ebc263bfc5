"""The suspicious-slot check: words in a frame that look like GC refs but are not in its map.

A HEURISTIC, and said so wherever it is shown. In a frame at a safepoint,
every 4-byte word of SP..FP that is not a live slot of the stack map is read;
it is reported when its value is a plausible heap index (non-zero, 8-aligned,
inside the located GC heap) AND the heap holds a GC object header of a known
kind at that index. That is what a root missing from a stack map looks like
(wasmtime #12935, #13750): a moving collector would not update it. It is also
what a dead copy of a ref looks like (a spill of a value no longer used, a
stale argument area), so a hit is a place to look, not a verdict. Nothing can
be said when the GC heap was not located.
"""

from collections.abc import Iterable

from .errors import ReadError
from .frames import Activation, WasmFrame
from .gcheap import Heap, HeapReport
from .target import MemoryCache, ThreadState

HEURISTIC_NOTE = (
    "heuristic: words of SP..FP that are not in the stack map but point at a GC "
    "object in the heap (a missing root, or a dead copy of a ref)"
)


def find_suspicious(
    mem: MemoryCache,
    collected: Iterable[tuple[ThreadState, list[Activation]]],
    heap_report: HeapReport,
) -> dict[tuple[int, int], dict]:
    """(thread, level) -> {"words": [...], "note": str} for every frame at a safepoint."""
    out: dict[tuple[int, int], dict] = {}
    for thread, acts in collected:
        for n, act in enumerate(acts):
            heap = heap_report.heap_for(thread.num, n)
            for f in act.frames:
                if f.entry is None:
                    continue
                key = (thread.num, f.level)
                if heap is None:
                    out[key] = {
                        "words": None,
                        "note": "not checked: the GC heap was not located (see heap_note)",
                    }
                    continue
                out[key] = {"words": _scan_frame(mem, f, heap, heap_report), "note": HEURISTIC_NOTE}
    return out


MAX_SCAN = 1 << 20


def _scan_frame(mem: MemoryCache, f: WasmFrame, heap: Heap, heap_report: HeapReport) -> list[dict]:
    entry = f.entry
    if entry is None:  # no map: nothing says which words are live
        return []
    sp = f.fp - entry.frame_size
    # A map may claim a frame of up to 1 GiB: scan at most its first MAX_SCAN bytes.
    size = min(entry.frame_size, MAX_SCAN)
    try:
        block = mem.read(sp, size)
    except ReadError:
        return []
    live = set(entry.offsets)
    words = []
    for off in range(0, size - size % 4, 4):
        if off in live:
            continue
        v = int.from_bytes(block[off : off + 4], mem.byteorder)
        kind = heap_report.is_object(heap, v)
        if kind:
            words.append({"offset": off, "address": sp + off, "raw": v, "object_kind": kind})
    return words
