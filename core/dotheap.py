"""`stackmap heap --dot/--svg` and `stackmap gcroot REF --dot/--svg`: the heap graph as Graphviz.

Fills core/dot.py's plain graph from the heap inspector's walk (core/heapgraph.py)
and typed view (core/heapview.py): a root slot per `thread T frame #N SP+OFF`
label (one cluster per frame), every object the walk reached with its type name
and typed fields (arrays: their first elements), an edge per ref field to an
object that was reached, and for `gcroot` the walk's first (shortest) path from
a root to REF.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .frames import Activation
    from .heapgraph import Walk
    from .heapview import HeapView
    from .target import ThreadState

from . import dot
from .errors import StackMapsError

ELEMENTS = 16  # array elements drawn per array


def _value_text(v: dict) -> str:
    val = v.get("value")
    if isinstance(val, float):
        return f"{val:g}"
    return str(val)


def _object(view: HeapView, r: int) -> dot.Obj:
    d = view.describe(r, depth=0, elements=ELEMENTS)
    t = d.get("type") or {}
    name = t.get("name") or (
        f"{d.get('kind')} type {d['type_index']}"
        if d.get("type_index") is not None
        else str(d.get("kind"))
    )
    fields: list[dot.Field] = []
    for f in d.get("fields") or []:
        target = f.get("raw") if f.get("ref_kind") == "heap" else None
        label = f["name"] if f.get("name") else str(f["index"])
        fields.append(dot.Field(label, f.get("type"), _value_text(f), target))
    if "elements" in d:
        name += f"[{d.get('length')}]"
        for i, e in enumerate(d["elements"]):
            target = e.get("raw") if e.get("ref_kind") == "heap" else None
            fields.append(dot.Field(f"[{i}]", d.get("element_type"), _value_text(e), target))
    if not fields and d.get("payload"):
        fields.append(dot.Field("payload", None, d["payload"]))
    note = d.get("error") or (
        f"forwarded to {d['forwarded']:#x}" if d.get("forwarded") is not None else None
    )
    return dot.Obj(r, name, d.get("size"), fields, note)


def frame_names(collected: Iterable[tuple[ThreadState, list[Activation]]]) -> dict[str, str]:
    """{"thread T frame #N": function name} of the walked threads (root labels lack it)."""
    return {
        f"thread {t.num} frame #{f.level}": f.function_name or "??"
        for t, acts in collected
        for a in acts
        for f in a.frames
    }


def graph(
    view: HeapView,
    walk: Walk,
    names: dict[str, str] | None = None,
    max_objects: int = dot.MAX_OBJECTS,
) -> dot.Graph:
    roots = []
    for root in walk.roots:
        frame, _, slot = root.label.rpartition(" ")
        frame = frame or root.label
        if names and frame in names:
            frame = f"{frame} {names[frame]}"
        roots.append(dot.RootSlot(frame, slot, root.ref))
    objects = {}
    for r in list(walk.headers)[:max_objects]:
        objects[r] = _object(view, r)
    return dot.Graph(roots, objects)


def path(walk: Walk, ref: int, limit: int = 4096) -> dot.Path | None:
    """The walk's first path from a root to `ref` (a shortest one), or None."""
    refs = [ref]
    cur = ref
    for _ in range(limit):
        e = walk.reached.get(cur)
        if e is None:
            return None
        parent, _slot = e
        if parent < 0:
            return dot.Path(-1 - parent, list(reversed(refs)))
        refs.append(parent)
        cur = parent
    return None


def write(text: str, dot_file: str | None, svg_file: str | None) -> str:
    """Write the picture where asked; the line saying so."""
    done = []
    if dot_file:
        dot.write_dot(text, dot_file)
        done.append(dot_file)
    if svg_file:
        dot.write_svg(text, svg_file)
        done.append(svg_file)
    if not done:
        raise StackMapsError("nothing to write")
    return f"graph written to {' and '.join(done)}"
