"""Each activation's GC heap: its store (core/stores.py), that store's heap, its objects.

The store of an activation is established from the runtime's records by
core/stores.py; this module reads that store's `gc_heap` with the versioned
layout of core/gcheap.py, checks that it explains every live heap ref of the
activation (a header of a known kind at `base + ref`, inside the heap), and
decodes the objects (core/gcheap.py). What goes wrong is a note on the
activation and its frames, never an exception and never another store's heap.
"""

from collections.abc import Iterable

from .discover import ImageRegistry
from .errors import ReadError, StackMapsError
from .frames import Activation, Slot, WasmFrame
from .gcheap import (
    Heap,
    HeapFinding,
    HeapReport,
    Layout,
    _Check,
    _check_heap,
    _choose_collector,
    _Finder,
    decode_object,
    layout_for,
)
from .gcref import SlotKind
from .runtime_walk import runtime_activations
from .stores import Candidate, StoreTies, Tie
from .target import MemoryCache, Region, Target, ThreadState


def _check_store(f: _Finder, c: Candidate, refs: list[int], layout: Layout) -> _Check:
    try:
        base, length = f.heap_bounds(c.store_context, c.vmctx, layout)
    except ReadError as e:
        return _Check(False, 0, f"store context {c.store_context:#x} is unreadable ({e})")
    return _check_heap(f, base, length, refs, layout)


# -- the entry point ----------------------------------------------------------------------


def _heap_refs(act: Activation) -> list[tuple[WasmFrame, Slot]]:
    return [
        (fr, s)
        for fr in act.frames
        for s in fr.slots
        if s.ref is not None and s.ref.kind is SlotKind.HEAP
    ]


def _heap_index(s: Slot) -> int:
    """The heap index a slot of `_heap_refs` holds."""
    if s.ref is None or s.ref.value is None:
        raise ValueError(f"slot SP+{s.offset} holds no heap ref")
    return s.ref.value


def _major(act: Activation) -> int | None:
    for fr in act.frames:
        try:
            m = fr.image.engine.major
        except StackMapsError:
            m = None
        if m is not None:
            return m
    return None


def annotate(
    target: Target,
    mem: MemoryCache,
    collected: Iterable[tuple[ThreadState, list[Activation]]],
    regions: list[Region] | None = None,
    registry: ImageRegistry | None = None,
) -> HeapReport:
    """Tie every activation to its store and decode the objects its live heap refs point at.

    `collected` is [(ThreadState, [Activation, ...]), ...] as the commands gather it. With
    the `registry`, activations the walks missed are first added from the runtime's own
    records (core/runtime_walk.py; the activation lists are extended in place).
    Never raises StackMapsError: what goes wrong becomes a note.
    """
    rep = HeapReport()
    f = rep.finder = _Finder(target, mem)
    ties = StoreTies(mem, regions, target.little_endian)
    collected = list(collected)
    # Every store context seen in the stop: a candidate for any activation, which
    # still needs its own proof (stores.StoreTies.tie).
    pool: dict[int, Candidate] = {}
    majors: dict[int, int] = {}

    def gather() -> None:
        for thread, acts in collected:
            for n, act in enumerate(acts):
                major = _major(act)
                for c in ties.own_candidates(thread, act, n == 0) if act.frames else ():
                    pool.setdefault(c.store_context, c)
                    if major is not None:
                        majors.setdefault(c.store_context, major)

    gather()
    if registry is not None and pool:
        records = [ties.records(s, m) for s, m in majors.items()]
        known = [r for r in records if r is not None]
        added = [
            runtime_activations(target, registry, mem, regions, t, acts, known, ties)
            for t, acts in collected
        ]
        if any(added):
            gather()
    for thread, acts in collected:
        for n, act in enumerate(acts):
            if act.frames:
                _annotate_one(rep, f, ties, list(pool.values()), thread, acts, n)
    return rep


def _not_located(
    rep: HeapReport,
    thread: ThreadState,
    n: int,
    pairs: list[tuple[WasmFrame, Slot]],
    note: str,
    tie: Tie | None = None,
    ambiguous: tuple[int, ...] | None = None,
) -> None:
    rep.activations[(thread.num, n)] = HeapFinding(
        False, note, ambiguous=ambiguous, **(_tie_fields(tie) if tie is not None else {})
    )
    for fr in {id(fr): fr for fr, _ in pairs}.values():
        rep.frame_notes[(thread.num, fr.level)] = note


def _tie_fields(tie: Tie) -> dict:
    return {"store_context": tie.store_context, "tie": tie.proof, "tie_by_records": tie.by_records}


def _annotate_one(
    rep: HeapReport,
    f: _Finder,
    ties: StoreTies,
    pool: list[Candidate],
    thread: ThreadState,
    acts: list[Activation],
    n: int,
) -> None:
    act = acts[n]
    pairs = _heap_refs(act)
    refs = sorted({_heap_index(s) for _, s in pairs})
    major = _major(act)
    layout, key = layout_for(major)
    if layout is None:
        if pairs:
            _not_located(
                rep, thread, n, pairs,
                f"GC heap not located: Wasmtime "
                f"{major if major is not None else '(unknown version)'} is not covered by the "
                f"heap layout table (32 and later)",
            )  # fmt: skip
        return
    assert major is not None

    def explains(c: Candidate) -> tuple[bool, int, str | None]:
        chk = _check_store(f, c, refs, layout)
        return chk.ok, chk.valid, chk.why

    tie = ties.tie(thread, acts, n, major, pool, explains if refs else None)
    if tie.store_context is None:
        if tie.ambiguous:
            _not_located(rep, thread, n, pairs, tie.note or "heap ambiguous", tie,
                         tuple(tie.ambiguous))  # fmt: skip
        elif pairs:
            _not_located(rep, thread, n, pairs, _why_not(f, ties, thread, act, refs, layout, tie),
                         tie)  # fmt: skip
        return
    c = tie.candidate
    vmctx = c.vmctx if c is not None else None
    if not pairs:  # no refs to decode: the store tie alone
        rep.activations[(thread.num, n)] = HeapFinding(None, vmctx=vmctx, **_tie_fields(tie))
        return
    try:
        base, length = f.heap_bounds(tie.store_context, vmctx, layout)
        chk = _check_heap(f, base, length, refs, layout)
    except ReadError as e:
        chk = _Check(False, 0, f"store context {tie.store_context:#x} is unreadable ({e})")
    if not chk.ok:
        _not_located(
            rep, thread, n, pairs,
            f"GC heap not located: the store context {tie.store_context:#x} established by "
            f"{tie.proof} has no heap that holds every live ref ({chk.valid} of {len(refs)} "
            f"valid: {chk.why})", tie,
        )  # fmt: skip
        return
    heap = Heap(
        base, length, vmctx, tie.store_context,
        c.found_at if c else None, c.found_in if c else None, major, layout, tie.proof or "",
    )  # fmt: skip
    _decode_all(rep, f, thread, n, pairs, refs, heap, key, tie)


def _why_not(
    f: _Finder,
    ties: StoreTies,
    thread: ThreadState,
    act: Activation,
    refs: list[int],
    layout: Layout,
    tie: Tie,
) -> str:
    """The note of an activation with refs and no store: the best candidate's failure."""
    cands = ties.own_candidates(thread, act, act.frames[0].level == 0) or ties.stack_candidates(
        thread
    )
    if not cands:
        return (
            "GC heap not located: no VMContext (magic 'core'/'comp' leading to a store "
            f"context) found in the activation's frames or the thread's stack; {tie.note}"
        )
    if all(c.store_context in ties.unreadable for c in cands):
        shown = ", ".join(
            f"{c.store_context:#x} (from vmctx {c.vmctx:#x} at {c.found_at:#x}): "
            f"{ties.unreadable[c.store_context]}"
            for c in cands
        )
        return f"GC heap not located: the store context is unreadable: {shown}"
    best = max(((_check_store(f, c, refs, layout), c) for c in cands), key=lambda x: x[0].valid)
    chk, c = best
    return (
        f"GC heap not located: {len(cands)} VMContext candidate{'s' * (len(cands) != 1)}, none "
        f"whose GC heap holds every live ref (best: vmctx {c.vmctx:#x}, store context "
        f"{c.store_context:#x}, {chk.valid} of {len(refs)} refs valid: {chk.why}); {tie.note}"
    )


def _decode_all(
    rep: HeapReport,
    f: _Finder,
    thread: ThreadState,
    n: int,
    pairs: list[tuple[WasmFrame, Slot]],
    refs: list[int],
    heap: Heap,
    key: int | None,
    tie: Tie,
) -> None:
    heads = {}
    for r in refs:
        try:
            head = f.object_bytes(heap.base, r, heap.length)
        except ReadError:
            continue
        if len(head) >= 24:
            heads[r] = head
    collector = _choose_collector(f, heap, heads) if heads else None
    rep.heaps[(thread.num, n)] = heap
    rep.activations[(thread.num, n)] = HeapFinding(
        True,
        heap=heap,
        collector=collector,
        layout_from=key,
        vmctx=heap.vmctx,
        store_context=heap.store_context,
        tie=heap.tie,
        tie_by_records=tie.by_records,
    )
    note = (
        f"GC heap {heap.base:#x}..{heap.base + heap.length:#x} "
        f"({collector or 'unknown'} collector), store context "
        f"{heap.store_context:#x} ({heap.tie})"
    )
    if not tie.by_records and tie.note:
        note += f"; unconfirmed: {tie.note}"
    if collector is None:
        note += "; object sizes fit no known collector layout: sizes not shown"
    for fr, s in pairs:
        rep.objects[(thread.num, fr.level, s.offset)] = decode_object(
            f, heap, _heap_index(s), collector
        )
        rep.frame_notes[(thread.num, fr.level)] = note
