"""`stackmap module/obj/heap/gcroot/verify`: the heap inspector commands.

The store, its roots and the typed view of its heap come from core/heapctx.py;
the graph walks from core/heapgraph.py; text from core/heaprender.py.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import heapgraph
from .errors import StackMapsError
from .heapctx import Context, context, modules, state
from .heaprender import heap_lines, obj_lines, verify_lines
from .heapverify import verify
from .heapview import DEFAULT_ELEMENTS, HeapView
from .modfind import ModuleError, check_against_images, load_module

if TYPE_CHECKING:
    from .render import Style
    from .session import Session
    from .target import Target

SUBCOMMANDS = {
    "module": "the wasm module used to type GC objects (FILE: .wasm or .wat)",
    "obj": "a GC object's type, fields and elements (REF as 'bt' prints it)",
    "heap": "objects reachable from the store's roots, with a histogram by type",
    "gcroot": "paths from the roots to a GC object",
    "verify": "check every reachable ref: in the heap, valid header, declared type",
}


def add_parsers(sub: argparse._SubParsersAction, int_type: Callable[[str], int]) -> None:
    s = sub.add_parser(
        "module",
        help=SUBCOMMANDS["module"],
        description="Use FILE as the wasm module of the process for object types and field "
        "names (a .wasm, or .wat text compiled with the wasmtime Python package). Without FILE: "
        "the modules known and whether they match the code images.",
    )
    s.add_argument("file", nargs="?", help="a .wasm, or a .wat (needs the wasmtime package)")
    s.add_argument("--clear", action="store_true", help="forget the modules given before")
    s = sub.add_parser("obj", help=SUBCOMMANDS["obj"], description=SUBCOMMANDS["obj"] + ".")
    s.add_argument("ref", nargs="+", help="heap index as 'bt' prints it: 0x70 or heap 0x70")
    s.add_argument("--depth", type=int_type, default=1, help="levels of refs to decode (1)")
    s.add_argument("--elements", type=int_type, default=DEFAULT_ELEMENTS, help="array elements")
    s.add_argument("--json", action="store_true", help="one JSON document")
    s = sub.add_parser(
        "heap",
        help=SUBCOMMANDS["heap"],
        description="Objects reachable from every root of the store a debugger can read, "
        "with a histogram by type (count, bytes); with the copying and null collectors, "
        "also the unreachable objects still in their bump-allocated space.",
    )
    s.add_argument("--stat", action="store_true", help="the histogram only")
    s.add_argument("--json", action="store_true", help="one JSON document")
    s.add_argument(
        "--max-objects",
        type=int_type,
        default=heapgraph.DEFAULT_MAX_OBJECTS,
        help="objects to walk at most (default %(default)s)",
    )
    _picture_options(s)
    s = sub.add_parser("gcroot", help=SUBCOMMANDS["gcroot"], description=SUBCOMMANDS["gcroot"])
    s.add_argument("ref", nargs="+", help="heap index as 'bt' prints it: 0x70 or heap 0x70")
    s.add_argument("--max-paths", type=int_type, default=10, help="paths at most (default 10)")
    _picture_options(s)
    s.add_argument("--json", action="store_true", help="one JSON document")
    s = sub.add_parser("verify", help=SUBCOMMANDS["verify"], description=SUBCOMMANDS["verify"])
    s.add_argument("--json", action="store_true", help="one JSON document")
    s.add_argument(
        "--max-objects",
        type=int_type,
        default=heapgraph.DEFAULT_MAX_OBJECTS,
        help="objects to walk at most (default %(default)s)",
    )


def _picture_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--dot", metavar="FILE", help="write the graph from the roots as Graphviz")
    s.add_argument("--svg", metavar="FILE", help="render it to SVG (needs Graphviz's dot)")


# -- commands -----------------------------------------------------------------------------


def run(session: Session, args: argparse.Namespace, target: Target, style: Style) -> str:
    from .report import to_json

    if args.sub == "module":
        return cmd_module(session, args, target)
    if args.sub in ("obj", "gcroot"):
        args.ref = parse_ref(args.ref)
    ctx = context(session, target)
    v = ctx.view
    base = {"schema": 1, "heap": {"base": v.base, "length": v.length, "collector": v.collector}}
    base["notes"] = ctx.notes
    base["root_sets"] = ctx.root_sets
    if args.sub == "obj":
        obj = v.describe(args.ref, max(0, args.depth), max(0, args.elements))
        if args.json:
            return to_json({**base, "object": obj})
        return "\n".join(obj_lines(obj, ctx.notes))
    if args.sub in ("heap", "gcroot") and (args.dot or args.svg):
        from . import dot, dotheap

        w = heapgraph.walk(v, ctx.roots, max(1, getattr(args, "max_objects", dot.MAX_OBJECTS)))
        ref = args.ref if args.sub == "gcroot" else None
        p = dotheap.path(w, ref) if ref is not None else None
        if ref is not None and p is None:
            raise StackMapsError(f"heap {ref:#x}: not reachable from the {len(ctx.roots)} roots")
        title = f"gcroot heap {ref:#x}" if ref is not None else "heap from the roots"
        names = dotheap.frame_names(session.collect(target).threads)
        text = dot.to_dot(dotheap.graph(v, w, names), p, title)
        return dotheap.write(text, args.dot, args.svg)
    if args.sub == "heap":
        w = heapgraph.walk(v, ctx.roots, max(1, args.max_objects))
        doc = {**base, **_heap_doc(v, ctx, w, not args.stat)}
        return to_json(doc) if args.json else "\n".join(heap_lines(doc, args.stat))
    if args.sub == "gcroot":
        paths, trunc = heapgraph.root_paths(v, ctx.roots, args.ref, max(1, args.max_paths))
        doc = {**base, "ref": args.ref, "paths": paths, "truncated": trunc}
        if args.json:
            return to_json(doc)
        if not paths:
            return f"heap {args.ref:#x}: not reachable from the {len(ctx.roots)} roots read"
        return "\n".join(" -> ".join(p + [f"heap {args.ref:#x}"]) for p in paths)
    res = verify(v, ctx.roots, max(1, args.max_objects))
    doc = {**base, "roots": len(ctx.roots), **res}
    return to_json(doc) if args.json else "\n".join(verify_lines(doc))


def parse_ref(words: list[str]) -> int:
    """`0x70`, `heap 0x70` or `112`: a heap index (even, non-zero: i31 and null are not)."""
    text = " ".join(words).strip()
    if text.startswith("heap "):
        text = text[5:].strip()
    try:
        r = int(text, 0)
    except ValueError:
        raise StackMapsError(
            f"not a heap ref: {text[:40]!r} (give it as bt prints it: 0x70)"
        ) from None
    if r <= 0 or r & 1 or r >= 1 << 32:
        raise StackMapsError(f"{r:#x} is not a heap index (null, i31 or out of range)")
    return r


def _heap_doc(v: HeapView, ctx: Context, w: heapgraph.Walk, with_objects: bool) -> dict[str, Any]:
    from .heapspace import unreachable_in_active_space

    doc: dict[str, Any] = {
        "roots": len(ctx.roots),
        "objects": len(w.headers),
        "bytes": sum(h.size or 0 for h in w.headers.values()),
        "truncated": w.truncated,
        "stat": heapgraph.histogram(w, v),
        "problems": w.problems[:100],
    }
    doc["unreachable"] = unreachable_in_active_space(v, ctx.heap, w)
    if with_objects:
        doc["root_list"] = [
            {"label": r.label, "ref": r.ref, "address": r.address} for r in ctx.roots[:10000]
        ]
        doc["object_list"] = [
            {"ref": r, "kind": h.kind, "type_index": h.shared_type, "size": h.size}
            for r, h in list(w.headers.items())[:10000]
        ]
    return doc


def cmd_module(session: Session, args: argparse.Namespace, target: Target) -> str:
    st = state(session)
    if args.clear:
        st.user.clear()
    if args.file:
        try:
            lm = load_module(args.file, "user")
        except ModuleError as e:
            raise StackMapsError(str(e)) from None
        st.user.insert(0, lm)
        m = lm.module
        return (
            f"module {args.file}: {len(m.types)} types, {m.imported_funcs} imported + "
            f"{m.defined_funcs} defined functions, {len(m.type_names)} type names"
        )
    mods, notes = modules(session, target)
    session.discover(target)
    lines = [
        f"{lm.path} ({lm.source}): " + check_against_images(lm.module, session.registry)[1]
        for lm in mods
    ]
    return "\n".join(lines + notes) if lines or notes else "no module known"
