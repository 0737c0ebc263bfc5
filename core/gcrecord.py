"""The record of one collection gc-watch checked: every root of the store before and after."""

from typing import TYPE_CHECKING

from . import gccheck, gcheap
from .errors import ReadError
from .target import MemoryCache, Target

if TYPE_CHECKING:
    from .gcwatch import Pending


def _heap_rec(heap: "gcheap.Heap | None", collector: str | None) -> dict | None:
    if heap is None:
        return None
    return {"base": heap.base, "length": heap.length, "collector": collector}


def check_after(target: Target, call: "Pending", number: int, host_known: bool) -> dict:
    """The record of one watched call: every root of the store before and after, and the
    violations (a root the collector left pointing at a forwarded, freed or out-of-heap
    object, or at an object that is not the one it pointed at before)."""
    mem = MemoryCache(target)
    store = call.before.store_context
    mine = [
        r
        for r in call.before.roots
        if r.heap is not None and (store is None or r.heap.store_context == store)
    ]
    now: dict[int, tuple[gcheap.Heap, gccheck.Spaces | None]] = {}
    for r in mine:
        assert r.heap is not None
        if r.heap.store_context not in now:
            h = gccheck.heap_now(mem, r.heap)
            sp = gccheck.copying_spaces(mem, h) if r.collector == "copying" else None
            now[r.heap.store_context] = (h, sp)
    values: dict[int, int | None] = {}
    moved: dict[int, int] = {}
    for r in mine:
        try:
            values[r.address] = mem.u32(r.address)
        except ReadError:
            values[r.address] = None
        new = values[r.address]
        if r.raw and not r.raw & 1 and new is not None and new != r.raw:
            moved[r.raw] = new
    counts = {"roots": len(mine), "moved": 0, "unchanged": 0, "other": 0}
    roots = []
    for r in mine:
        assert r.heap is not None
        heap, spaces = now[r.heap.store_context]
        new = values[r.address]
        rec: dict = {
            "thread": r.thread,
            "level": r.level,
            "function": r.function,
            "pc": r.pc,
            "fp": r.fp,
            "offset": r.offset,
            "address": r.address,
            "old": r.raw,
            "new": new,
            "state": None,
            "problem": None,
            "identical": None,
            "problem_before": call.early.get(r.address),
            "path": gccheck.root_label(r),
            "stack": r.stack,
        }
        if new is None:
            rec["state"], rec["problem"] = "unreadable", "the slot is unreadable after the call"
        elif new == 0 or new & 1 or not r.raw or r.raw & 1:
            rec["state"] = "other" if new == r.raw else "changed"
            if new != r.raw:
                rec["problem"] = f"a null/i31 root changed: {r.raw:#x} -> {new:#x}"
        else:
            rec["state"] = "moved" if new != r.raw else "unchanged"
            rec["problem"] = gccheck.ref_problem(mem, heap, r.collector, new, spaces, True)
            after = gccheck.read_object(mem, heap, r.collector, new)
            if rec["problem"] is None and r.obj is not None and after is not None:
                diff = gccheck.object_difference(mem.order, r.obj, after, r.collector, moved)
                rec["identical"] = diff is None
                if diff and rec["state"] == "moved":
                    rec["problem"] = f"not the object it pointed at before the move: {diff}"
            rec["before"] = r.obj.hex() if r.obj is not None else None
            rec["after"] = after.hex() if after is not None else None
        counts[rec["state"] if rec["state"] in counts else "other"] += 1
        roots.append(rec)
    # The roots the collector got wrong first (a stale root), then objects that changed.
    violations = sorted(
        (x for x in roots if x["problem"] or x["problem_before"]),
        key=lambda x: (x["problem_before"] is None, x["identical"] is False),
    )
    hb = mine[0].heap if mine else None
    return {
        "collection": number,
        "point": call.point.name,
        "kind": call.point.kind,
        "thread": call.thread,
        "caller": call.caller,
        "collections": len(call.collections)
        if host_known
        else (1 if call.point.kind == "entry" else None),
        "store_context": store,
        "heap_before": _heap_rec(hb, mine[0].collector if mine else None),
        "heap_after": _heap_rec(
            now[hb.store_context][0] if hb else None, mine[0].collector if mine else None
        ),
        "counts": {**counts, "violations": len(violations)},
        "untied_activations": len(call.before.untied),
        "untied_notes": call.before.untied[:8],
        "roots": roots,
        "violations": violations,
    }
