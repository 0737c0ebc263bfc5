"""The record of one collection gc-watch checked: every root of the store before and after."""

from typing import TYPE_CHECKING, Any

from . import gcafter, gccheck, gcheap, gcverify
from .errors import ReadError
from .target import MemoryCache, Target

if TYPE_CHECKING:
    from .gcwatch import Pending


def _heap_rec(heap: "gcheap.Heap | None", collector: str | None) -> dict[str, Any] | None:
    if heap is None:
        return None
    return {"base": heap.base, "length": heap.length, "collector": collector}


def problem_records(problems: list[gcverify.HeapProblem]) -> list[dict[str, Any]]:
    """The `lost` and verify `problems` records: heap index, what is wrong, how it was
    reached (lost objects)."""
    return [
        {"ref": p.ref, "problem": p.problem, **({"path": p.path} if p.path is not None else {})}
        for p in problems
    ]


def verify_record(ver: gcverify.Verified | None, typed: dict[str, Any]) -> dict[str, Any]:
    """The `verify` record of a collection (`--verify`), with the heap inspector's typed
    verify; `problem_count` counts both (lost objects are counted by the record's own
    `lost`)."""
    rec: dict[str, Any]
    if ver is None:
        rec = {"problem_count": 0}
    elif ver.space is None:
        rec = {"note": ver.note, "problem_count": 0}
    else:
        s, reach = ver.space, ver.reach
        rec = {
            "objects": s.objects,
            "bytes": s.bytes,
            "untraced": s.untraced,
            "problems": problem_records(s.problems),
            "problem_count": s.problem_count,
            "reachable_before": len(reach.parent) if reach is not None else None,
            "untraced_before": reach.untraced if reach is not None else None,
            "lost": problem_records(ver.lost),
        }
    rec["typed"] = typed
    rec["problem_count"] += typed.get("count", 0)
    return rec


def root_record(r: gccheck.Root, a: gcafter.RootAfter, before: str | None) -> dict[str, Any]:
    """One root's record: where it is, its value before and after, its state, what is
    wrong with it after the collection (`problem`) and before it (`problem_before`)."""
    rec: dict[str, Any] = {
        "thread": r.thread,
        "level": r.level,
        "function": r.function,
        "pc": r.pc,
        "fp": r.fp,
        "offset": r.offset,
        "address": r.address,
        "old": r.raw,
        "new": a.new,
        "state": a.state.value,
        "problem": a.problem,
        "identical": a.identical,
        "problem_before": before,
        "path": gccheck.root_label(r),
        "stack": r.stack,
    }
    if a.heap_ref:
        rec["before"] = r.obj.hex() if r.obj is not None else None
        rec["after"] = a.after.hex() if a.after is not None else None
    return rec


def check_after(target: Target, call: "Pending", number: int, host_known: bool) -> dict[str, Any]:
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
        verdict = gcafter.root_after(mem, r, values[r.address], heap, spaces, moved)
        rec = root_record(r, verdict, call.early.get(r.address))
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
