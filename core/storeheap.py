"""The GC heap of a store already established for an activation, and its objects.

When the runtime's own records say which `VMStoreContext` an activation runs
in (a suspended fiber's saved exit record, the store context whose exit FP/PC
lead to Pulley frames), there is nothing to search for: the heap is read at
the version's offset in that store context (in the vmctx for Wasmtime 32),
every live heap ref of the activation is checked against it, and only then
are the objects decoded. Offsets, checks and decoding are gcheap's.
"""

from typing import NamedTuple

from . import gcheap
from .errors import ReadError, StackMapsError
from .frames import Activation, Slot, WasmFrame
from .gcref import SlotKind


class StoreHeap(NamedTuple):
    finding: gcheap.HeapFinding  # the activation's heap: located (and where) or why not
    note: str | None  # the frames' `heap_note`
    objects: dict[tuple[int, int], gcheap.GcObject]  # (id(frame), slot offset) -> object
    heap: gcheap.Heap | None = None


def heap_refs(act: Activation) -> list[tuple[WasmFrame, Slot, int]]:
    """(frame, slot, heap index) of every live heap ref of the activation."""
    out = []
    for f in act.frames:
        for s in f.slots:
            if s.ref is not None and s.ref.kind is SlotKind.HEAP and s.ref.value is not None:
                out.append((f, s, s.ref.value))
    return out


def activation_major(act: Activation) -> int | None:
    for f in act.frames:
        try:
            return f.image.engine.major
        except StackMapsError:
            continue
    return None


def read_heap(
    finder: gcheap._Finder, store: int, vmctx: int | None, layout: gcheap.Layout
) -> tuple[int, int] | None:
    """(base, length) of the store's GC heap, None when unreadable."""
    try:
        if layout.heap_in == "vmctx":
            if vmctx is None:
                return None
            hb = finder.mem.read(vmctx + layout.heap_offset, 16)
        else:
            hb = finder.mem.read(store + layout.heap_offset, 16)
    except ReadError:
        return None
    return finder.u64(hb, 0), finder.u64(hb, 8)


def check_store(
    finder: gcheap._Finder, store: int, vmctx: int | None, refs: list[int], layout: gcheap.Layout
) -> tuple[tuple[int, int] | None, str | None]:
    """((base, length), None) when the store's heap explains every ref, else (None, why)."""
    hb = read_heap(finder, store, vmctx, layout)
    if hb is None:
        return None, f"store context {store:#x} is unreadable"
    chk = gcheap._check_heap(finder, hb[0], hb[1], refs, layout)
    return (hb, None) if chk.ok else (None, f"store context {store:#x}: {chk.why}")


def not_located(note: str) -> StoreHeap:
    return StoreHeap(gcheap.HeapFinding(False, note), note, {})


def decode_in_store(
    finder: gcheap._Finder,
    act: Activation,
    store: int,
    vmctx: int | None,
    found_at: int,
    found_in: str,
) -> StoreHeap | None:
    """The activation's objects decoded in `store`'s heap; None when it has no heap refs."""
    pairs = heap_refs(act)
    if not pairs:
        return None
    refs = sorted({r for _, _, r in pairs})
    major = activation_major(act)
    layout, key = gcheap.layout_for(major)
    if layout is None:
        return not_located(
            f"GC heap not located: Wasmtime {major} is not covered by the heap layout "
            f"table (32 and later)"
        )
    hb, why = check_store(finder, store, vmctx, refs, layout)
    if hb is None:
        return not_located(f"GC heap not located: {why}")
    base, length = hb
    heap = gcheap.Heap(base, length, vmctx or 0, store, found_at, found_in, major or 0, layout)
    heads = {}
    for r in refs:
        try:
            head = finder.object_bytes(base, r, length)
        except ReadError:
            continue
        if len(head) >= 24:
            heads[r] = head
    collector = gcheap._choose_collector(finder, heap, heads) if heads else None
    finding = gcheap.HeapFinding(
        True, heap=heap, collector=collector, layout_from=key, vmctx=vmctx, store_context=store
    )
    note = (
        f"GC heap {base:#x}..{base + length:#x} ({collector or 'unknown'} collector), "
        f"store context {store:#x} ({found_in} at {found_at:#x})"
    )
    objects = {
        (id(f), s.offset): gcheap.decode_object(finder, heap, r, collector) for f, s, r in pairs
    }
    return StoreHeap(finding, note, objects, heap)
