"""The roots of a store before a collection, and what became of them after it.

`take_snapshot` records, at a stop where a collection is about to run, every
live stack-map slot of every wasm frame of the process (with the GC heap each
activation's refs live in, and the bytes of the object each heap ref points
at). `check_after`, at the stop where the collection has returned, re-reads
the same slot addresses (the frames are still there: a collection runs below
them) and the heap (it may have grown or moved), and classifies each root:

  moved      the value changed: the collector updated the slot. The object at
             the new index must be the object that was at the old one: same
             kind, type and size, the same bytes except for refs that were
             themselves moved (the old copy's forwarding header says where to).
  unchanged  the value is the same (a non-moving collector, or an object the
             copying collector did not move... which it always does).

and then checks what every heap root points at after the collection: inside
the heap, at a header of a known kind, not a forwarding header (a root the
collector did not update: it still points at the old copy), and with the
copying collector inside the live part of the active semi-space (else the
object is freed: the old semi-space, or past the bump pointer).
"""

import struct
from typing import NamedTuple

from . import gcheap
from .abi import GC_KINDS
from .errors import ReadError, StackMapsError
from .gcdrc import drc_problem
from .gcref import SlotKind
from .session import Collected, Session
from .target import ByteOrder, MemoryCache, Target

OBJECT_BYTES = 512  # bytes of each root's object kept for the identity check
COPIED_BIT = 1  # copying collector: header reserved bit 0 = copied, forwarding ref at +16
FORWARD_OFFSET = 16
# VMContext field that points at the collector's JIT-visible data (Wasmtime 45+; for the
# copying collector {bump_ptr: u32, active_space_end: u32}).
VMCTX_GC_HEAP_DATA = 32
COPYING_ALIGN = 16


class Root(NamedTuple):
    thread: int
    level: int
    function: str | None
    pc: int
    fp: int
    offset: int
    address: int
    raw: int | None
    heap: gcheap.Heap | None  # the heap the activation's refs live in (None: not located)
    collector: str | None
    obj: bytes | None  # the object's first OBJECT_BYTES bytes (heap refs only)
    stack: str | None = None  # a suspended fiber stack's name (`thread` is then 0)


def root_label(r: Root) -> str:
    """`thread 1 frame #3 wasm[0]::function[1]::build SP+8`: where a root is."""
    where = r.stack or f"thread {r.thread}"
    return f"{where} frame #{r.level} {r.function or '??'} SP+{r.offset}"


class Snapshot(NamedTuple):
    roots: list[Root]
    store_context: int | None  # the store the collecting thread runs in, when known
    untied: list[str]  # why each activation with heap refs had no located heap (unchecked)
    # The collecting thread inside a GC builtin: (builtin frame's FP, return address into
    # wasm, builtin name) of its innermost activation, else None.
    in_builtin: tuple[int, int, str] | None = None


BUILTIN_PREFIX = "wasmtime_builtin_"


def _object_size(order: ByteOrder, heap: gcheap.Heap, collector: str | None, head: bytes) -> int:
    """Bytes to keep of an object (its size when the collector says it, else OBJECT_BYTES)."""
    if collector == "copying" and len(head) >= 12:
        return min(order.u32(head, 8), OBJECT_BYTES)
    if collector == "drc" and len(head) >= 24 and heap.layout.drc_header == 24:
        return min(order.u32(head, 20), OBJECT_BYTES)
    return OBJECT_BYTES


def read_object(mem: MemoryCache, heap: gcheap.Heap, collector: str | None, r: int) -> bytes | None:
    """The first bytes of the object at heap index r (bounded by the heap), or None."""
    if r + 8 > heap.length:
        return None
    try:
        head = mem.read(heap.base + r, min(24, heap.length - r))
        n = max(8, min(_object_size(mem.order, heap, collector, head), heap.length - r))
        return mem.read(heap.base + r, n)
    except ReadError:
        return None


def take_snapshot(session: Session, target: Target, thread: int | None) -> Snapshot:
    """The roots of every wasm frame of every thread, and the store `thread` collects in.

    Frame levels are those the thread will have once the watched call has returned:
    a builtin trampoline stopped at its entry is frame 0 now and gone then."""
    got = session.collect(target)
    roots: list[Root] = []
    store = None
    untied: list[str] = []
    in_builtin = None
    for t, acts in got.threads:
        frames = acts[0].frames if acts else []
        name = frames[0].function_name or "" if frames else ""
        shift = 0
        if t.num == thread and name.startswith(BUILTIN_PREFIX):
            shift = 1  # the builtin's frame: gone once it has returned
            if len(frames) > 1:
                in_builtin = (frames[0].fp, frames[1].pc, name[len(BUILTIN_PREFIX) :])
        for n, act in enumerate(acts):
            heap = got.heap.heaps.get((t.num, n))
            finding = got.heap.activations.get((t.num, n))
            collector = finding.collector if finding is not None else None
            if heap is None and finding is not None and finding.located is False:  # refs, no heap
                untied.append(f"thread {t.num} activation {n}: {finding.note}")
            if heap is not None and t.num == thread and store is None:
                store = heap.store_context
            for f in act.frames:
                for s in f.slots:
                    obj = None
                    if (
                        heap is not None
                        and s.ref is not None
                        and s.ref.kind is SlotKind.HEAP
                        and s.ref.value is not None
                    ):
                        obj = read_object(got.mem, heap, collector, s.ref.value)
                    roots.append(
                        Root(
                            t.num,
                            f.level - shift,
                            f.function_name,
                            f.pc,
                            f.fp,
                            s.offset,
                            s.address,
                            s.raw,
                            heap,
                            collector,
                            obj,
                        )
                    )
    roots += _suspended_roots(got)
    return Snapshot(roots, store, untied, in_builtin)


def _suspended_roots(got: Collected) -> list[Root]:
    """The live slots of suspended fiber stacks whose heap is located: each activation in
    the heap of the store it is tied to (its own tie, so that a store with no activation
    on any thread, e.g. one the host collects while its async call is suspended, counts)."""
    heaps: dict[int, tuple[gcheap.Heap, str | None]] = {}
    for key, h in got.heap.heaps.items():
        finding = got.heap.activations.get(key)
        heaps.setdefault(h.store_context, (h, finding.collector if finding else None))
    out = []
    for st in got.suspended or []:
        for act, info in st.activations:
            own = info.get("heap")
            store = info.get("store_context")
            if isinstance(own, gcheap.HeapFinding) and own.located and own.heap is not None:
                found: tuple[gcheap.Heap, str | None] | None = (own.heap, own.collector)
            else:
                found = heaps.get(store) if store is not None else None
            if found is None:
                continue
            heap, collector = found
            where = f"suspended stack {st.region.start:#x}"
            for f in act.frames:
                for s in f.slots:
                    obj = None
                    if (
                        s.ref is not None
                        and s.ref.kind is SlotKind.HEAP
                        and s.ref.value is not None
                    ):
                        obj = read_object(got.mem, heap, collector, s.ref.value)
                    out.append(
                        Root(0, f.level, f.function_name, f.pc, f.fp, s.offset, s.address,
                             s.raw, heap, collector, obj, where)
                    )  # fmt: skip
    return out


class Spaces(NamedTuple):
    start: int
    bump: int
    end: int


def copying_spaces(mem: MemoryCache, heap: gcheap.Heap) -> Spaces | None:
    """The copying collector's active semi-space [start, end) and bump pointer, or None.

    The JIT-visible data holds the bump pointer and the active space's end; the
    start is 0 (first half) or end/2 (second half: both halves have one size).
    The first object sits ALIGN bytes into the space: the hypothesis whose first
    header is a known kind wins when the bump pointer allows both."""
    if heap.vmctx is None:
        return None  # the store was tied without a VMContext: its collector data unknown
    try:
        data_ptr = mem.u64(heap.vmctx + VMCTX_GC_HEAP_DATA)
        bump, end = mem.order.unpack("II", mem.read(data_ptr, 8))
    except (ReadError, struct.error):
        return None
    if not 0 < end <= heap.length or end % COPYING_ALIGN or bump > end:
        return None
    candidates = [s for s in (0, end // 2) if s <= bump]
    if not candidates:
        return None
    if len(candidates) == 2 and bump > end // 2 + COPYING_ALIGN:
        first = end // 2 + COPYING_ALIGN
        try:
            kind = mem.u32(heap.base + first)
        except ReadError:
            kind = 0
        start = end // 2 if kind & heap.layout.kind_mask in GC_KINDS else 0
    else:
        start = max(candidates)
    return Spaces(start, bump, end)


def ref_problem(
    mem: MemoryCache,
    heap: gcheap.Heap,
    collector: str | None,
    r: int,
    spaces: Spaces | None,
    stack_root: bool = False,
) -> str | None:
    """Why heap index r does not point at a live object after a collection (None: it does).
    stack_root: r is held by a wasm frame's live slot (the DRC collector's stack-root rule)."""
    if r + 8 > heap.length:
        return f"out of the heap (index {r:#x}, heap length {heap.length:#x})"
    try:
        kind = mem.order.u32(mem.read(heap.base + r, 8))  # the header: kind word, type
    except ReadError:
        return f"object header at {heap.base + r:#x} is unreadable"
    if kind & heap.layout.kind_mask not in GC_KINDS:
        return f"not an object: header {kind:#010x} is of no known kind"
    if collector == "copying":
        if kind & COPIED_BIT:
            try:
                fwd = mem.u32(heap.base + r + FORWARD_OFFSET)
            except ReadError:
                fwd = None
            to = f"{fwd:#x}" if fwd is not None else "?"
            return f"forwarded object (copied to {to}): the root was not updated"
        if spaces is not None:
            if not spaces.start <= r < spaces.end:
                return "freed object: in the idle semi-space (the root was not updated)"
            if r >= spaces.bump:
                return f"unallocated memory: past the bump pointer {spaces.bump:#x}"
    if collector == "drc" and heap.layout.drc_size_in_header:
        return drc_problem(mem, heap, r, kind, stack_root)
    return None


def forwarded_to(mem: MemoryCache, heap: gcheap.Heap, r: int) -> int | None:
    """Copying collector: where the object that was at r went (its forwarding ref), or None."""
    try:
        kind = mem.u32(heap.base + r)
        if not kind & COPIED_BIT:
            return None
        return mem.u32(heap.base + r + FORWARD_OFFSET)
    except ReadError:
        return None


def object_difference(
    order: ByteOrder, before: bytes, after: bytes, collector: str | None, moved: dict[int, int]
) -> str | None:
    """None when `after` is `before` moved: same header (but for the collector's own bits)
    and payload, 32-bit words that are refs to moved objects excepted."""
    if len(before) < 8 or len(after) < 8:
        return "object bytes missing"
    hb, ha = order.unpack("II", before), order.unpack("II", after)
    mask = 0xFC000000  # the kind bits; the rest of the word is the collector's
    if hb[0] & mask != ha[0] & mask or hb[1] != ha[1]:
        return (
            f"header changed: kind/type {hb[0] & mask:#010x}/{hb[1]:#x} -> "
            f"{ha[0] & mask:#010x}/{ha[1]:#x}"
        )
    hs = {"copying": 16, "drc": 24, "null": 8}.get(collector or "", 8)
    if collector == "copying" and before[8:12] != after[8:12]:
        return "object size changed"
    n = min(len(before), len(after))
    for off in range(hs, n - 3, 4):
        ob, oa = order.u32(before, off), order.u32(after, off)
        if ob != oa and moved.get(ob) != oa:
            return f"payload differs at +{off:#x}: {ob:#010x} -> {oa:#010x}"
    return None


def heap_now(mem: MemoryCache, heap: gcheap.Heap) -> gcheap.Heap:
    """The heap re-read through its VMContext (it may have grown or moved)."""
    try:
        data = mem.read(heap.store_context + heap.layout.heap_offset, 16)
        if heap.layout.heap_in == "vmctx" and heap.vmctx is not None:
            data = mem.read(heap.vmctx + heap.layout.heap_offset, 16)
    except ReadError as e:
        raise StackMapsError(f"GC heap of store context {heap.store_context:#x}: {e}") from e
    base, length = mem.order.unpack("QQ", data)
    return heap._replace(base=base, length=length)


def problems_now(mem: MemoryCache, roots: list[Root], store: int | None) -> dict[int, str]:
    """{slot address: problem} for the heap roots of `store` that do not point at a live
    object right now (at a collection's start: a stale root planted before it)."""
    out: dict[int, str] = {}
    spaces: dict[int, Spaces | None] = {}
    for r in roots:
        if r.heap is None or not r.raw or r.raw & 1:
            continue
        if store is not None and r.heap.store_context != store:
            continue
        key = r.heap.store_context
        if r.collector == "copying" and key not in spaces:
            spaces[key] = copying_spaces(mem, r.heap)
        why = ref_problem(mem, r.heap, r.collector, r.raw, spaces.get(key), True)
        if why:
            out[r.address] = why
    return out
