"""`stackmap verify`: every reachable ref checked against the heap and the declared types.

One walk from the roots (core/heapgraph.py), then for every object reached: a
valid header of a known kind, no forwarding header outside a collection, a
size that fits its type, array lengths inside the object, and each ref field
(and each root with a declared type: globals, tables) null/i31/an object of a
type the field allows (subtyping respected). Each violation carries its path
from a root.
"""

from __future__ import annotations

from typing import Any

from .errors import ReadError
from .gctypes import canonical_ids, heap_top, is_concrete_subtype, kind_matches_abstract
from .heapgraph import DEFAULT_MAX_OBJECTS, Root, path_to, slot_label, walk
from .heapview import HeapView
from .wasmparse import RefType, WasmModule

MAX_VIOLATIONS = 10_000


def verify(
    view: HeapView, roots: list[Root], max_objects: int = DEFAULT_MAX_OBJECTS
) -> dict[str, Any]:
    """Walk the graph, check every ref; each violation with its path from a root."""
    w = walk(view, roots, max_objects)
    violations: list[dict[str, Any]] = []
    dropped = [0]
    module = view.types.module if view.types else None
    canon = None
    if module is not None:
        canon = canonical_ids(module)

    def add(ref: int, problem: str, parent: int | None = None, slot: int | None = None) -> None:
        if len(violations) >= MAX_VIOLATIONS:
            dropped[0] += 1
            return
        path = path_to(view, w, parent) if parent is not None else path_to(view, w, ref)
        if parent is not None and slot is not None:
            path = path + [slot_label(view, parent, slot)]
        violations.append({"ref": ref, "problem": problem, "path": path})

    for p in w.problems:
        add(p["ref"], p["problem"])
    checked = 0
    if module is not None and canon is not None:
        # Roots with a declared type (globals, tables): the object must be of that type.
        for root in roots:
            h = w.headers.get(root.ref)
            if root.field_type is not None and h is not None and h.kind is not None:
                checked += 1  # (a root at no object is one of the walk's problems above)
                problem = _check_ref(view, module, canon, root.field_type, root.ref)
                if problem and len(violations) < MAX_VIOLATIONS:
                    violations.append({"ref": root.ref, "problem": problem, "path": [root.label]})
    for r, h in w.headers.items():
        if h.forwarded is not None:
            add(r, f"forwarding header (copied to {h.forwarded:#x}) outside a collection")
        if h.kind is None or not view.size_ok(h):
            continue
        t = view.type_of(h.shared_type)
        if t is None or module is None or canon is None:
            continue
        idx, comp, lay = t
        want = {"struct": "structref", "array": "arrayref"}.get(comp.kind)
        if want != h.kind:
            add(r, f"header kind {h.kind} but its type {idx} is a {comp.kind} type")
            continue
        if comp.kind == "struct":
            if h.size < lay.size:
                add(r, f"object size {h.size} is below its type's {lay.size} bytes")
                continue
            fields = [(f.storage, r + off) for f, off in zip(comp.fields, lay.offsets, strict=True)]
        else:
            st = comp.fields[0].storage
            if not isinstance(st, RefType):
                try:
                    n = view.u32(r + lay.length_offset)
                except ReadError:
                    continue
                if lay.elems_offset + n * lay.elem_size > (h.size or 0):
                    add(r, f"array length {n} runs past the object's {h.size} bytes")
                continue
            slots, why = view.ref_field_offsets(h)
            if why:
                continue  # reported by the walk
            fields = [(st, s) for s in slots]
        for st, slot in fields:
            if not isinstance(st, RefType):
                continue
            checked += 1
            try:
                raw = view.u32(slot)
            except ReadError:
                continue
            problem = _check_ref(view, module, canon, st, raw)
            if problem:
                add(raw, problem, r, slot)
    return {
        "objects": len(w.headers),
        "refs_checked": checked,
        "truncated": w.truncated,
        "violations": violations,
        "violations_not_listed": dropped[0],
    }


def _check_ref(
    view: HeapView, module: WasmModule, canon: list[int], st: RefType, raw: int
) -> str | None:
    top = heap_top(module.types, st.heap)
    if top in ("func", "cont"):
        return None
    if raw == 0:
        return None if st.nullable else f"null in a non-nullable {st} field"
    if raw & 1:
        if st.heap in ("any", "eq", "i31", "extern"):
            return None
        return f"i31 {raw >> 1} in a {st} field"
    if raw % 8 or raw + 8 > view.length:
        return f"ref {raw:#x} is outside the heap (length {view.length:#x}) or misaligned"
    try:
        h = view.header(raw)
    except ReadError as e:
        return f"ref {raw:#x}: header unreadable ({e})"
    if h.kind is None:
        return f"ref {raw:#x}: {h.kind_word:#010x} is not a GC object header"
    if isinstance(st.heap, int):
        t = view.type_of(h.shared_type)
        if t is None:
            return f"ref {raw:#x}: shared type {h.shared_type} is not one of the module's types"
        if not is_concrete_subtype(module, canon, t[0], st.heap):
            want = module.type_names.get(st.heap) or st.heap
            got = module.type_names.get(t[0]) or t[0]
            return f"ref {raw:#x} is a ${got}, not a subtype of the field's ${want}"
        return None
    t = view.type_of(h.shared_type)
    comp_kind = t[1].kind if t else None
    if not kind_matches_abstract(st.heap, h.kind, comp_kind):
        return f"ref {raw:#x}: a {h.kind} in a {st} field"
    return None
