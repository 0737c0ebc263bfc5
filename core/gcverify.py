"""`gc-watch --verify` for the copying collector, without the module's types.

The copying collector keeps what a debugger needs in each object's header
(Wasmtime 46+, `wasmtime_environ::copying`): the object size at +8, a
"copied" bit (reserved bit 0; the forwarding ref then at +16) and, for most
types, inline trace info in the reserved bits: bit 1 "inline", bit 2 "array"
(bit 3: its elements are refs, from +20 for `length` at +16), else a struct
bitmap from bit 3 whose bit i marks the u32 at +16+4i as a ref. With it:

  - before a collection, the objects reachable from the store's roots (a
    breadth-first walk; each remembers the edge that reached it first, so its
    path from a root is a shortest one);
  - after it, a linear parse of the active semi-space from its start to the
    bump pointer: every header of a known kind, a sane size, not copied, and
    every ref field pointing at the start of an object of that space;
  - every object reachable before must have been copied (its old location now
    carries the copied bit): one that was not is gone while still referenced.
Objects whose trace info is out of line are parsed but their refs are not
followed (counted). Everything is bounded by the space and `MAX_OBJECTS`.
"""

from collections import deque
from typing import Any, NamedTuple

from . import gccheck, gcheap
from .abi import GC_KINDS
from .errors import ReadError
from .session import Session
from .target import ByteOrder, MemoryCache, Target

MAX_OBJECTS = 1_000_000
MAX_PROBLEMS = 100
INLINE, ARRAY, ELEMS_ARE_REFS = 1 << 1, 1 << 2, 1 << 3
BITMAP_SHIFT, BITMAP_BITS = 3, 23
ARRAY_ELEMS = 20
MIN_SIZE = 20


def ref_offsets(order: ByteOrder, head: bytes, data: bytes | None = None) -> list[int] | None:
    """Offsets of the ref fields of an object from its header, or None (out of line).
    `data` (the object's bytes) is needed for an array of refs (its length)."""
    word = order.u32(head)
    reserved = word & 0x03FFFFFF
    if not reserved & INLINE:
        return None
    if reserved & ARRAY:
        if not reserved & ELEMS_ARE_REFS:
            return []
        if data is None or len(data) < ARRAY_ELEMS:
            return None
        n = order.u32(data, 16)
        size = order.u32(data, 8)
        n = min(n, max(0, (size - ARRAY_ELEMS) // 4))
        return [ARRAY_ELEMS + 4 * i for i in range(n)]
    bitmap = (reserved >> BITMAP_SHIFT) & ((1 << BITMAP_BITS) - 1)
    return [16 + 4 * i for i in range(BITMAP_BITS) if bitmap >> i & 1]


class HeapProblem(NamedTuple):
    """An object of the heap found wrong after a collection (core/gcrecord.py makes its
    record)."""

    ref: int  # its heap index
    problem: str
    path: str | None = None  # how the roots reached it before the collection (lost objects)


class SpaceCheck(NamedTuple):
    """The copying collector's active semi-space parsed object by object."""

    objects: int
    bytes: int
    untraced: int  # objects whose refs could not be followed (trace info out of line)
    problems: list[HeapProblem]  # the first MAX_PROBLEMS
    problem_count: int


class Verified(NamedTuple):
    """`gc-watch --verify` of one collection: the active space after it (or why it could
    not be read), what the roots reached before it, and which of those it lost."""

    space: SpaceCheck | None
    note: str | None  # why `space` is None
    reach: "Reach | None"
    lost: list[HeapProblem]


class Reach(NamedTuple):
    parent: dict[int, tuple[int | None, int, str]]  # ref -> (parent ref, field offset, root)
    untraced: int  # objects whose refs could not be followed
    truncated: bool


def _object(mem: MemoryCache, heap: gcheap.Heap, r: int) -> bytes | None:
    if r + MIN_SIZE > heap.length:
        return None
    try:
        head = mem.read(heap.base + r, 16)
        size = mem.order.u32(head, 8)
        if size < MIN_SIZE or r + size > heap.length:
            return None
        return mem.read(heap.base + r, min(size, 1 << 20))
    except ReadError:
        return None


def reachable(mem: MemoryCache, heap: gcheap.Heap, roots: list[tuple[str, int]]) -> Reach:
    """The objects reachable from `roots` ((label, heap index) pairs), breadth first."""
    parent: dict[int, tuple[int | None, int, str]] = {}
    queue: deque[int] = deque()
    for label, r in roots:
        if r and not r & 1 and r not in parent:
            parent[r] = (None, 0, label)
            queue.append(r)
    untraced = 0
    while queue:
        if len(parent) > MAX_OBJECTS:
            return Reach(parent, untraced, True)
        r = queue.popleft()
        data = _object(mem, heap, r)
        if data is None:
            continue
        offs = ref_offsets(mem.order, data, data)
        if offs is None:
            untraced += 1
            continue
        root = parent[r][2]
        for off in offs:
            if off + 4 > len(data):
                break
            v = mem.order.u32(data, off)
            if v and not v & 1 and v not in parent:
                parent[v] = (r, off, root)
                queue.append(v)
    return Reach(parent, untraced, False)


def path_of(reach: Reach, r: int) -> str:
    """`thread 1 frame #3 ... SP+8 -> +0x14 -> +0x14`: how the walk reached r."""
    steps = []
    seen = set()
    cur: int | None = r
    label = "?"
    while cur is not None and cur not in seen:
        seen.add(cur)
        par, off, label = reach.parent.get(cur, (None, 0, "?"))
        if par is not None:
            steps.append(f"+{off:#x}")
        cur = par
    return " -> ".join([label, *reversed(steps)]) + f" = heap {r:#x}"


def verify_space(mem: MemoryCache, heap: gcheap.Heap, spaces: gccheck.Spaces) -> SpaceCheck:
    """Parse the active semi-space object by object; check headers and ref fields."""
    problems: list[HeapProblem] = []
    starts: list[tuple[int, bytes]] = []
    pos = spaces.start + 16
    total = 0
    while pos < spaces.bump and len(starts) < MAX_OBJECTS:
        data = _object(mem, heap, pos)
        try:
            word = mem.u32(heap.base + pos)
        except ReadError:
            word = 0
        if data is None or word & heap.layout.kind_mask not in GC_KINDS:
            problems.append(
                HeapProblem(pos, f"no object header here ({word:#010x}): the parse stops")
            )
            break
        size = mem.order.u32(data, 8)
        if size % 16 or pos + size > spaces.bump:
            problems.append(HeapProblem(pos, f"object size {size:#x} does not fit"))
            break
        if word & gccheck.COPIED_BIT:
            problems.append(HeapProblem(pos, "copied bit set after the collection"))
        starts.append((pos, data))
        total += size
        pos += size
    live = {p for p, _ in starts}
    untraced = 0
    for p, data in starts:
        offs = ref_offsets(mem.order, data, data)
        if offs is None:
            untraced += 1
            continue
        for off in offs:
            if off + 4 > len(data):
                break
            v = mem.order.u32(data, off)
            if v and not v & 1 and v not in live:
                problems.append(
                    HeapProblem(
                        p,
                        f"field +{off:#x} holds {v:#x}: not an object of the active space "
                        "(dangling)",
                    )
                )
    return SpaceCheck(len(starts), total, untraced, problems[:MAX_PROBLEMS], len(problems))


def lost(mem: MemoryCache, heap_after: gcheap.Heap, before: Reach) -> list[HeapProblem]:
    """Objects reachable before the collection that it did not copy."""
    out = []
    for r in before.parent:
        try:
            word = mem.u32(heap_after.base + r)
        except ReadError:
            continue
        if not word & gccheck.COPIED_BIT:
            out.append(
                HeapProblem(
                    r,
                    "reachable before the collection, not copied by it: gone while still "
                    "referenced",
                    path_of(before, r),
                )
            )
            if len(out) >= MAX_PROBLEMS:
                break
    return out


def _store_roots(snap: gccheck.Snapshot) -> list[gccheck.Root]:
    return [
        r
        for r in snap.roots
        if r.heap is not None
        and r.collector == "copying"
        and (snap.store_context is None or r.heap.store_context == snap.store_context)
    ]


def before_collection(mem: MemoryCache, snap: gccheck.Snapshot) -> Reach | None:
    """What the store's stack roots reach now (copying collector only; else None)."""
    roots = _store_roots(snap)
    if not roots:
        return None
    assert roots[0].heap is not None
    labels = [(gccheck.root_label(r), r.raw or 0) for r in roots]
    return reachable(mem, roots[0].heap, labels)


def after_collection(
    mem: MemoryCache, snap: gccheck.Snapshot, reach: Reach | None
) -> Verified | None:
    """A collection verified: the active space parsed, the objects `reach` (taken before
    it) held that it lost; None when the store has no copying-collector roots."""
    roots = _store_roots(snap)
    if not roots or roots[0].heap is None:
        return None
    heap = gccheck.heap_now(mem, roots[0].heap)
    spaces = gccheck.copying_spaces(mem, heap)
    if spaces is None:
        return Verified(None, "the copying collector's active space could not be read", reach, [])
    gone = lost(mem, heap, reach) if reach is not None else []
    return Verified(verify_space(mem, heap, spaces), None, reach, gone)


def lost_after(mem: MemoryCache, snap: gccheck.Snapshot, reach: Reach | None) -> list[HeapProblem]:
    """After a collection: the objects `reach` (taken before it) holds that it did not copy."""
    roots = _store_roots(snap)
    if reach is None or not roots or roots[0].heap is None:
        return []
    return lost(mem, gccheck.heap_now(mem, roots[0].heap), reach)


TYPED_LISTED = 20


def typed(session: Session, target: Target) -> dict[str, Any]:
    """The heap inspector's `verify` (types, array lengths, forwarding headers) over the
    store's roots, from the stop after a collection; a note when it cannot run."""
    from .errors import StackMapsError

    try:
        from .heapctx import context
        from .heapverify import verify
    except ImportError:
        return {"note": "typed verify not available"}
    try:
        ctx = context(session, target)
        res = verify(ctx.view, ctx.roots)
    except StackMapsError as e:
        return {"note": str(e)}
    listed = res["violations"][:TYPED_LISTED]
    return {
        "objects": res["objects"],
        "refs_checked": res["refs_checked"],
        "count": len(res["violations"]) + res["violations_not_listed"],
        "violations": listed,
        "typed": ctx.view.types is not None,
    }
