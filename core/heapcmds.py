"""`stackmap module/obj/heap/gcroot/verify`: the heap inspector commands, and the typed
`object` records of bt/frame/report.

The store is the one of the selected frame (else the selected thread's first
located heap, else any). Its roots are the heap refs in the stack maps of
every wasm activation, on every thread, tied to the same store context.
Globals and tables are not read yet: every result says so.
"""

from __future__ import annotations

from typing import NamedTuple

from . import heapgraph
from .errors import StackMapsError
from .gctypes import header_layout
from .heaprender import heap_lines, obj_lines, verify_lines
from .heapview import DEFAULT_ELEMENTS, HeapView, read_type_map
from .instances import stack_ranges, store_instances
from .modfind import (
    LoadedModule,
    ModuleError,
    check_against_images,
    load_module,
    modules_from_command_line,
)
from .target import MemoryCache

SUBCOMMANDS = {
    "module": "the wasm module used to type GC objects (FILE: .wasm or .wat)",
    "obj": "a GC object's type, fields and elements (REF as 'bt' prints it)",
    "heap": "objects reachable from the store's roots, with a histogram by type",
    "gcroot": "paths from the roots to a GC object",
    "verify": "check every reachable ref: in the heap, a valid header, the declared type",
}
NOT_READ = ["globals", "tables"]  # root sets a debugger could read but this tool does not yet


class _State:
    """Per-session: modules the user gave, and the command-line module (cached)."""

    def __init__(self):
        self.user: list[LoadedModule] = []
        self.cmdline_key: tuple | None = None
        self.cmdline: tuple[list[LoadedModule], str] = ([], "")


def state(session) -> _State:
    st = getattr(session, "_heap_state", None)
    if st is None:
        st = _State()
        session._heap_state = st
    return st


def add_parsers(sub, int_type) -> None:
    s = sub.add_parser(
        "module",
        help=SUBCOMMANDS["module"],
        description="Use FILE as the wasm module of the process for object types and field "
        "names (a .wasm, or .wat text compiled with the wasmtime Python package). Without FILE: "
        "the modules known and whether they match the code images.",
    )
    s.add_argument("file", nargs="?")
    s.add_argument("--clear", action="store_true", help="forget the modules given before")
    s = sub.add_parser("obj", help=SUBCOMMANDS["obj"], description=SUBCOMMANDS["obj"] + ".")
    s.add_argument("ref", type=int_type, help="heap index, e.g. 0x70")
    s.add_argument("--depth", type=int_type, default=1, help="levels of refs to decode (1)")
    s.add_argument("--elements", type=int_type, default=DEFAULT_ELEMENTS, help="array elements")
    s.add_argument("--json", action="store_true", help="one JSON document")
    s = sub.add_parser(
        "heap",
        help=SUBCOMMANDS["heap"],
        description="Objects reachable from every root of the store a debugger can read, "
        "with a histogram by type (count, bytes); with the copying collector, also the "
        "unreachable objects still in its active space.",
    )
    s.add_argument("--stat", action="store_true", help="the histogram only")
    s.add_argument("--json", action="store_true", help="one JSON document")
    s.add_argument("--max-objects", type=int_type, default=heapgraph.DEFAULT_MAX_OBJECTS)
    s = sub.add_parser("gcroot", help=SUBCOMMANDS["gcroot"], description=SUBCOMMANDS["gcroot"])
    s.add_argument("ref", type=int_type)
    s.add_argument("--max-paths", type=int_type, default=10)
    s.add_argument("--json", action="store_true", help="one JSON document")
    s = sub.add_parser("verify", help=SUBCOMMANDS["verify"], description=SUBCOMMANDS["verify"])
    s.add_argument("--json", action="store_true", help="one JSON document")
    s.add_argument("--max-objects", type=int_type, default=heapgraph.DEFAULT_MAX_OBJECTS)


# -- the store of the selected frame ----------------------------------------------------


class Context(NamedTuple):
    view: HeapView
    roots: list[heapgraph.Root]
    heap: object  # gcheap.Heap
    notes: list[str]  # what was not read, which module was used or why none


def _modules(session, target) -> tuple[list[LoadedModule], list[str]]:
    st = state(session)
    notes: list[str] = []
    info = target.process_info() or {}
    key = (info.get("pid"), info.get("core_file"))
    if key != st.cmdline_key:
        paths, where = modules_from_command_line(info, target.read_memory)
        loaded = []
        for p in paths:
            try:
                loaded.append(load_module(p, "command line"))
            except ModuleError as e:
                where += f"; {e}"
        st.cmdline_key, st.cmdline = key, (loaded, where)
    loaded, where = st.cmdline
    if not st.user and not loaded:
        notes.append(f"no module: {where}; give one with 'stackmap module FILE'")
    return st.user + loaded, notes


def type_map_for(session, target, heap, images, root_refs, view: HeapView, vmctxs):
    """(TypeMap or None, notes): the first candidate module that matches the images and
    whose type-ids, read from one of the store's instances, agree with the root objects."""
    mods, notes = _modules(session, target)
    if mods and not vmctxs:
        notes.append("no instance (VMContext) of the store found: types unknown")
        return None, notes
    for lm in mods:
        ok, why = check_against_images(lm.module, images)
        if not ok:
            notes.append(f"module {lm.path} does not match the code image: {why}")
            continue
        for vmctx in vmctxs:
            tm, why = read_type_map(
                target.read_memory, vmctx, heap.major, lm.module, lm.path, view.little
            )
            if tm is None:
                notes.append(f"module {lm.path}: {why}")
                continue
            view.types = tm
            view._layouts.clear()
            view._plans.clear()
            bad = _disagreeing(view, root_refs)
            if not bad:
                return tm, [f"types from {lm.path} ({lm.source}), {tm.source}"]
            notes.append(f"module {lm.path}: its types do not fit the objects ({bad})")
            view.types = None
            view._layouts.clear()
            view._plans.clear()
    return None, notes


def _disagreeing(view: HeapView, refs) -> str | None:
    for r in list(refs)[:256]:
        try:
            h = view.header(r)
        except StackMapsError:
            continue
        t = view.type_of(h.shared_type)
        if t is None or h.kind is None:
            continue
        want = {"struct": "structref", "array": "arrayref"}.get(t[1].kind)
        if want != h.kind:
            return f"object {r:#x} is a {h.kind}, its mapped type {t[0]} a {t[1].kind}"
        if t[1].kind == "struct" and h.size is not None and h.size < t[2].size:
            return f"object {r:#x} has {h.size} bytes, type {t[0]} needs {t[2].size}"
    return None


def _view_for(
    session, target, rep, key, images, root_refs, collected
) -> tuple[HeapView, list[str]]:
    heap = rep.heaps[key]
    collector = rep.activations[key].get("collector")
    hl = header_layout(collector, heap.major)
    view = HeapView(target, heap.base, heap.length, collector, hl, heap.layout.kind_mask)
    notes = []
    if collector is None:
        notes.append("collector unknown: object sizes and fields cannot be decoded")
    vmctxs = [heap.vmctx] if heap.vmctx else []
    if session is not None:
        found = store_instances(
            MemoryCache(target),
            heap.store_context,
            stack_ranges(collected, heap.store_context, rep.heaps),
            view.little,
        )
        vmctxs += [v for v in found if v not in vmctxs]
    tm, tnotes = type_map_for(session, target, heap, images, root_refs, view, vmctxs)
    if tm is None:
        view.type_note = tnotes[-1] if tnotes else "no module"
    return view, notes + tnotes


def context(session, target) -> Context:
    got = session.collect(target, None, True)
    collected, rep = got.threads, got.heap
    if not rep.heaps:
        notes = sorted({a.get("note", "") for a in rep.activations.values()} - {""})
        raise StackMapsError(
            "no GC heap located"
            + (f": {notes[0]}" if notes else " (no wasm frame holds a heap ref)")
        )
    key = _selected_key(target, collected, rep)
    heap = rep.heaps[key]
    roots, images, skipped = [], {}, 0
    for t, acts in collected:
        for n, act in enumerate(acts):
            h2 = rep.heaps.get((t.num, n))
            refs = [(f, s) for f in act.frames for s in f.slots if s.ref and s.ref.kind == "heap"]
            if h2 is None or h2.store_context != heap.store_context:
                skipped += bool(refs)
                continue
            for f, s in refs:
                images[id(f.image)] = f.image
                label = f"thread {t.num} frame #{f.level} SP+{s.offset}"
                roots.append(heapgraph.Root(label, s.ref.value))
    view, notes = _view_for(
        session, target, rep, key, list(images.values()), [r.ref for r in roots], collected
    )
    notes.insert(0, f"root sets not read: {', '.join(NOT_READ)}")
    if skipped:
        notes.append(f"{skipped} activation(s) with heap refs not tied to this store")
    return Context(view, roots, heap, notes)


def _selected_key(target, collected, rep):
    sel_t = target.selected_thread()
    sel = target.selected_frame()
    for t, acts in collected:
        if t.num != sel_t:
            continue
        for n, act in enumerate(acts):
            if sel is not None and any(f.pc == sel.pc for f in act.frames):
                if (t.num, n) in rep.heaps:
                    return (t.num, n)
        for n in range(len(acts)):
            if (t.num, n) in rep.heaps:
                return (t.num, n)
    return next(iter(rep.heaps))


# -- commands -----------------------------------------------------------------------------


def run(session, args, target, style) -> str:
    from .report import to_json

    if args.sub == "module":
        return cmd_module(session, args, target)
    ctx = context(session, target)
    v = ctx.view
    base = {"schema": 1, "heap": {"base": v.base, "length": v.length, "collector": v.collector}}
    base["notes"] = ctx.notes
    if args.sub == "obj":
        obj = v.describe(args.ref, max(0, args.depth), max(0, args.elements))
        if args.json:
            return to_json({**base, "object": obj})
        return "\n".join(obj_lines(obj, ctx.notes))
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
    res = heapgraph.verify(v, ctx.roots, max(1, args.max_objects))
    doc = {**base, "roots": len(ctx.roots), **res}
    return to_json(doc) if args.json else "\n".join(verify_lines(doc))


def _heap_doc(v: HeapView, ctx: Context, w, with_objects: bool) -> dict:
    from .heapspace import unreachable_in_active_space

    doc: dict = {
        "roots": len(ctx.roots),
        "objects": len(w.headers),
        "bytes": sum(h.size or 0 for h in w.headers.values()),
        "truncated": w.truncated,
        "stat": heapgraph.histogram(w, v),
        "problems": w.problems[:100],
    }
    doc["unreachable"] = unreachable_in_active_space(v, ctx.heap, w)
    if with_objects:
        doc["object_list"] = [
            {"ref": r, "kind": h.kind, "type_index": h.shared_type, "size": h.size}
            for r, h in list(w.headers.items())[:10000]
        ]
    return doc


def cmd_module(session, args, target) -> str:
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
    mods, notes = _modules(session, target)
    session.discover(target)
    lines = [
        f"{lm.path} ({lm.source}): " + check_against_images(lm.module, session.registry)[1]
        for lm in mods
    ]
    return "\n".join(lines + notes) if lines or notes else "no module known"


# -- the bt/frame/report hook ------------------------------------------------------------


def enrich(session, target, collected, rep) -> None:
    """Give every decoded heap-slot object its `type` and `fields` (depth 1)."""
    if rep is None or not rep.objects:
        return
    views: dict = {}
    images = {id(f.image): f.image for _, acts in collected for a in acts for f in a.frames}
    for (tnum, level, _off), obj in rep.objects.items():
        key = _act_key(collected, tnum, level)
        if key is None or key not in rep.heaps or "error" in obj:
            continue
        if key not in views:
            heap = rep.heaps[key]
            refs = [o["address"] - heap.base for o in rep.objects.values()]
            refs = [r for r in refs if 0 < r < heap.length]
            views[key] = _view_for(
                session, target, rep, key, list(images.values()), refs, collected
            )
        view, _notes = views[key]
        full = view.describe(obj["address"] - view.base, depth=0, elements=0)
        obj["type"] = full.get("type")
        if "fields" in full:
            obj["fields"] = full["fields"]
        if "element_type" in full:
            obj["element_type"] = full["element_type"]
        if full.get("type") is None:
            obj["type_note"] = full.get("type_note") or full.get("error") or view.type_note


def _act_key(collected, tnum, level):
    for t, acts in collected:
        if t.num != tnum:
            continue
        for n, act in enumerate(acts):
            if any(f.level == level for f in act.frames):
                return (tnum, n)
    return None
