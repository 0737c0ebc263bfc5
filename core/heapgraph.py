"""The object graph behind a store's roots: reachable set, histogram, root paths, checks.

One breadth-first walk from the roots (`walk`) records, for every object
reached, the first edge that reached it (so the path back to a root is a
shortest one), its header, and the problems met (`verify` adds type checks).
Everything is bounded: at most `max_objects` objects, arrays by their object
size, a header that is not an object stops that branch only. `stackmap
verify`'s checks over the walk are in core/heapverify.py.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from .errors import ReadError
from .heapview import KINDS, NO_TYPE, Header, HeapView
from .wasmparse import RefType

DEFAULT_MAX_OBJECTS = 5_000_000


class Root(NamedTuple):
    label: str  # e.g. "thread 1 frame #3 SP+8"
    ref: int  # heap index
    field_type: RefType | None = None  # declared type, when known (globals, tables)
    address: int | None = None  # where the ref is stored (globals, tables)


# An edge: (parent, slot): the parent object's heap index (-1 - i for root i) and the heap
# index of the slot holding the ref.


class Walk(NamedTuple):
    reached: dict[int, tuple[int, int]]  # object ref -> the first edge (parent, slot) to it
    headers: dict[int, Header]
    problems: list[dict]  # {"ref", "slot", "parent", "problem"}
    truncated: bool
    roots: list[Root]


def walk(view: HeapView, roots: list[Root], max_objects: int = DEFAULT_MAX_OBJECTS) -> Walk:
    reached: dict[int, tuple[int, int]] = {}
    headers: dict[int, Header] = {}
    problems: list[dict] = []
    queue: deque[int] = deque()
    for i, root in enumerate(roots):
        if root.ref not in reached:
            reached[root.ref] = (-1 - i, -1)
            queue.append(root.ref)
    truncated = False
    # The hot loop reads headers and ref fields straight from the view's 1 MiB chunks; any
    # case off that path (an object across chunks, an unreadable chunk) goes through the
    # view's checked reads.
    u32, header, plan_of, size_ok = view.u32, view.header, view.ref_plan, view.size_ok
    chunks, chunk_size, unpack, unpack2 = view._chunks, view.CHUNK, view._u32, view._u32x2
    plans, load = view._plans, view._chunk
    mask, size_at, copying = view.kind_mask, view.size_offset(), view.collector == "copying"
    popleft, push = queue.popleft, queue.append
    while queue:
        if len(headers) >= max_objects:
            truncated = True
            break
        r = popleft()
        ci, o = divmod(r, chunk_size)
        chunk = chunks.get(ci)
        if chunk is None and ci not in chunks:
            chunk = load(ci)
        if size_at and chunk is not None and o + 24 <= len(chunk) and r and not r % 8:
            word, ty = unpack2(chunk, o)
            size = unpack(chunk, o + size_at)[0]
            fwd = unpack(chunk, o + 16)[0] if copying and word & 1 else None
            h = Header(r, KINDS.get(word & mask), word, None if ty == NO_TYPE else ty, size, fwd)
        else:
            try:
                h = header(r)
            except ReadError as e:
                problems.append({"ref": r, "problem": str(e)})
                continue
        headers[r] = h
        if h.kind is None:
            problems.append({"ref": r, "problem": f"{h.kind_word:#010x} is not a GC object header"})
            continue
        if not size_ok(h):
            problems.append({"ref": r, "problem": f"size {h.size} does not fit the layout"})
            continue
        plan = plans.get(h.shared_type)
        if plan is None:
            plan = plan_of(h.shared_type)
        if not plan:
            continue
        size = h.size or 0
        if plan[0] == "struct":
            if chunk is not None and o + size <= len(chunk):
                for rel in plan[1]:
                    raw = unpack(chunk, o + rel)[0]
                    if raw and not raw & 1 and raw not in reached:
                        reached[raw] = (r, r + rel)
                        push(raw)
                continue
            slots: list[int] | range = [r + rel for rel in plan[1]]
        else:
            n = u32(r + plan[1])
            end = r + plan[2] + 4 * n
            if end > r + size:
                problems.append(
                    {"ref": r, "problem": f"array length {n} runs past the object's {size} bytes"}
                )
                continue
            slots = range(r + plan[2], end, 4)
        for slot in slots:
            try:
                raw = u32(slot)
            except ReadError:
                continue
            if raw == 0 or raw & 1 or raw in reached:
                continue
            reached[raw] = (r, slot)
            push(raw)
    return Walk(reached, headers, problems, truncated, roots)


def slot_label(view: HeapView, parent: int, slot: int) -> str:
    """`node.next` / `arr[3]` for the slot at heap index `slot` of object `parent`."""
    try:
        h = view.header(parent)
    except ReadError:
        return f"+{slot - parent}"
    t = view.type_of(h.shared_type)
    if t is None:
        return f"+{slot - parent}"
    idx, comp, lay = t
    tname = view.types.name(idx) if view.types else None
    tname = tname or f"type{idx}"
    if comp.kind == "struct":
        names = view.types.module.field_names.get(idx, {}) if view.types else {}
        for i, off in enumerate(lay.offsets):
            if parent + off == slot:
                return f"{tname}.{names.get(i) or i}"
        return f"{tname}+{slot - parent}"
    return f"{tname}[{(slot - parent - lay.elems_offset) // 4}]"


def path_to(view: HeapView, w: Walk, ref: int, limit: int = 64) -> list[str]:
    """Root label, then each edge's slot label, then the ref: the first path found."""
    steps: list[str] = []
    cur = ref
    for _ in range(limit):
        e = w.reached.get(cur)
        if e is None:
            break
        parent, slot = e
        if parent < 0:
            steps.append(w.roots[-1 - parent].label)
            return list(reversed(steps))
        steps.append(slot_label(view, parent, slot))
        cur = parent
    steps.append("...")
    return list(reversed(steps))


def histogram(w: Walk, view: HeapView) -> list[dict]:
    """Per type: count and bytes, largest total first (like SOS `!dumpheap -stat`)."""
    by: dict[tuple, list[int]] = {}
    for h in w.headers.values():
        key = (h.kind, h.shared_type)
        acc = by.setdefault(key, [0, 0])
        acc[0] += 1
        acc[1] += h.size or 0
    out = []
    for (kind, shared), (count, size) in by.items():
        t = view.type_of(shared)
        out.append(
            {
                "kind": kind,
                "type_index": shared,
                "type": {"module_index": t[0], "name": view.types.name(t[0])}  # type: ignore
                if t
                else None,
                "count": count,
                "bytes": size,
            }
        )
    out.sort(key=lambda d: (-d["bytes"], -d["count"], str(d["type_index"])))
    return out


# -- gcroot: every path, shortest first ---------------------------------------------------


def root_paths(
    view: HeapView,
    roots: list[Root],
    target: int,
    max_paths: int = 10,
    max_objects: int = DEFAULT_MAX_OBJECTS,
) -> tuple[list[list[str]], bool]:
    """Up to `max_paths` distinct paths (root ... target), shortest first: one per root
    that reaches `target` (BFS from that root alone). Returns (paths, truncated)."""
    found: list[tuple[int, list[str]]] = []
    truncated = False
    seen_roots: set[int] = set()
    budget = max_objects
    for root in roots:
        if root.ref in seen_roots and root.ref != target:
            continue
        seen_roots.add(root.ref)
        if len(found) >= max_paths:
            truncated = True
            break
        w1 = _walk_until(view, root, target, budget)
        budget -= len(w1.headers)
        if target in w1.reached:
            p = path_to(view, w1, target)
            found.append((len(p), p))
        if budget <= 0:
            truncated = True
            break
    found.sort(key=lambda t: t[0])
    return [p for _, p in found], truncated


def _walk_until(view: HeapView, root: Root, target: int, budget: int) -> Walk:
    reached = {root.ref: (-1, -1)}
    headers: dict[int, Header] = {}
    queue = deque([root.ref])
    while queue and target not in headers and len(headers) < budget:
        r = queue.popleft()
        if r == target:
            break
        try:
            h = view.header(r)
        except ReadError:
            continue
        headers[r] = h
        if h.kind is None or not view.size_ok(h):
            continue
        for slot in view.ref_field_offsets(h)[0]:
            try:
                raw = view.u32(slot)
            except ReadError:
                continue
            if raw and not raw & 1 and raw not in reached:
                reached[raw] = (r, slot)
                queue.append(raw)
    return Walk(reached, headers, [], False, [root])
