"""Graphviz pictures of the heap graph from the roots (`stackmap heap --dot`, `gcroot --dot`).

The writer works on a plain graph (`Graph`: roots, objects with typed fields,
edges given by the fields' targets) so that whoever walks the heap fills it in.
Frames become clusters holding their root slots, objects become `record`
nodes (a title row, then one row per field with a port its edge leaves from),
and a highlighted path (root -> objects -> REF) is drawn in red. Output is
bounded (`max_objects`) and every label is escaped: names come from the
inferior's module and may hold anything.
"""

import shutil
import subprocess
from typing import NamedTuple

from .errors import StackMapsError

MAX_OBJECTS = 2000
MAX_FIELDS = 32  # rows per object (arrays: the first elements)
HIGHLIGHT = "red"


class Field(NamedTuple):
    name: str  # "v", "next", "[3]"
    type: str | None  # "i32", "(ref null $node)"
    value: str  # "5", "heap 0x70", "null"
    target: int | None = None  # heap index of the object it refers to (an edge)


class Obj(NamedTuple):
    ref: int
    title: str  # "node", "structref type 3"
    size: int | None
    fields: list[Field]
    note: str | None = None  # e.g. a problem found there (drawn in the title row)


class RootSlot(NamedTuple):
    frame: str  # the cluster: "thread 1 frame #3 wasm[0]::function[1]::build"
    slot: str  # "SP+8", or a global's name
    target: int | None


class Graph(NamedTuple):
    roots: list[RootSlot]
    objects: dict[int, Obj]


class Path(NamedTuple):
    root: int  # index into Graph.roots
    refs: list[int]  # the objects from that root's target to REF, in order


def _esc(text: object, record: bool = False) -> str:
    """Text for a double-quoted dot label: no control characters; in a record label the
    characters that shape records are escaped too."""
    out = []
    for c in str(text):
        if not c.isprintable():
            out.append(f"\\\\x{ord(c):02x}")
        elif c in '"\\':
            out.append("\\" + c)
        elif record and c in "{}|<> ":
            out.append("\\" + c if c != " " else " ")
        else:
            out.append(c)
    return "".join(out)


def to_dot(
    g: Graph, path: Path | None = None, title: str = "", max_objects: int = MAX_OBJECTS
) -> str:
    on_path = set(path.refs) if path else set()
    edges_on_path: set[tuple[object, int]] = set()
    if path is not None and path.refs:
        edges_on_path.add((f"r{path.root}", path.refs[0]))
        edges_on_path.update(zip(path.refs, path.refs[1:], strict=False))
    # Objects on the path first, so that truncation never drops the highlighted path.
    order = [r for r in (path.refs if path else []) if r in g.objects]
    order += [r for r in g.objects if r not in on_path]
    shown = order[:max_objects]
    kept = set(shown)
    lines = [
        "digraph heap {",
        f'  graph [rankdir=LR, fontname="monospace", label="{_esc(title)}", labelloc=t];',
        '  node [fontname="monospace", fontsize=10];',
        '  edge [fontname="monospace", fontsize=9];',
    ]
    clusters: dict[str, list[int]] = {}
    for i, r in enumerate(g.roots):
        clusters.setdefault(r.frame, []).append(i)
    for n, (frame, idx) in enumerate(clusters.items()):
        lines.append(f"  subgraph cluster_{n} {{")
        lines.append(f'    label="{_esc(frame)}"; style=rounded; color=gray40;')
        for i in idx:
            hl = path is not None and path.root == i
            extra = f", color={HIGHLIGHT}, fontcolor={HIGHLIGHT}, penwidth=2" if hl else ""
            lines.append(f'    r{i} [shape=box, label="{_esc(g.roots[i].slot)}"{extra}];')
        lines.append("  }")
    for ref in shown:
        o = g.objects[ref]
        head = f"{o.title} @ {ref:#x}" + (f" ({o.size} bytes)" if o.size is not None else "")
        rows = [_esc(head, True) + (f"\\n{_esc(o.note, True)}" if o.note else "")]
        for k, f in enumerate(o.fields[:MAX_FIELDS]):
            typ = f": {f.type}" if f.type else ""
            rows.append(f"<f{k}> {_esc(f'{f.name}{typ} = {f.value}', True)}")
        if len(o.fields) > MAX_FIELDS:
            rows.append(_esc(f"... {len(o.fields) - MAX_FIELDS} more", True))
        style = ""
        if ref in on_path:
            style = f", color={HIGHLIGHT}, penwidth=2"
            if path is not None and ref == path.refs[-1]:
                style += ', style=filled, fillcolor="#ffe0e0"'
        elif o.note:
            style = ", color=orange"
        # rankdir=LR: a record without outer braces stacks its rows vertically.
        lines.append(f'  o{ref:x} [shape=record, label="{"|".join(rows)}"{style}];')
    for i, r in enumerate(g.roots):
        if r.target is not None and r.target in kept:
            hl = (f"r{i}", r.target) in edges_on_path and path is not None and path.root == i
            extra = f" [color={HIGHLIGHT}, penwidth=2]" if hl else ""
            lines.append(f"  r{i} -> o{r.target:x}{extra};")
    for ref in shown:
        for k, f in enumerate(g.objects[ref].fields[:MAX_FIELDS]):
            if f.target is None:
                continue
            if f.target in kept:
                hl = (ref, f.target) in edges_on_path
                extra = f" [color={HIGHLIGHT}, penwidth=2]" if hl else ""
                lines.append(f"  o{ref:x}:f{k} -> o{f.target:x}{extra};")
    if len(order) > len(shown):
        lines.append(
            f'  more [shape=note, label="{len(order) - len(shown)} more objects not drawn"];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_dot(text: str, path: str) -> None:
    try:
        with open(path, "w") as fh:
            fh.write(text)
    except OSError as e:
        raise StackMapsError(f"cannot write {path}: {e}") from e


def write_svg(text: str, path: str, timeout: float = 60) -> None:
    """Render with Graphviz's `dot` (StackMapsError when it is not installed or fails)."""
    dot = shutil.which("dot")
    if dot is None:
        raise StackMapsError("--svg needs Graphviz's 'dot' (apt-get install graphviz)")
    try:
        p = subprocess.run(
            [dot, "-Tsvg", "-o", path],
            input=text,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise StackMapsError(f"dot failed: {e}") from e
    if p.returncode != 0:
        raise StackMapsError(f"dot failed: {p.stderr.strip().splitlines()[-1:]}")
