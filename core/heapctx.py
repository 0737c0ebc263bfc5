"""The store of the selected frame for the heap commands: its roots, a typed heap view.

The store is the one of the selected frame (else the selected thread's first
located heap, else any). Its roots are the heap refs in the stack maps of
every wasm activation tied to the same store context, on every thread, and
of suspended fiber stacks tied to it (core/suspended.py), and the GC refs in
the globals and tables of its instances found on those stacks
(core/instroots.py); every result says which root sets were read and which
not. The module typing the objects comes
from the user or the command line (core/modfind.py); its type-ids are read
from an instance of the store (core/instances.py, core/typemap.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from . import heapgraph
from .errors import StackMapsError
from .gcheap import Heap
from .gctypes import header_layout
from .heapview import HeapView
from .instances import stack_ranges, store_instances
from .instroots import store_roots
from .modfind import (
    LoadedModule,
    ModuleError,
    check_against_images,
    load_module,
    modules_from_command_line,
)
from .target import MemoryCache
from .typemap import TypeMap, read_type_map

if TYPE_CHECKING:
    from .frames import Activation
    from .gcheap import HeapReport
    from .image import WasmtimeImage
    from .session import Session
    from .suspended import SuspendedStack
    from .target import Target, ThreadState

    Threads = list[tuple[ThreadState, list[Activation]]]

# Root sets a debugger cannot read reliably: host-held refs (`Rooted`, `ManuallyRooted`,
# `OwnedRooted`) live in the store's Rust structures, whose layout is not repr(C).
NOT_READ = ["host-held refs (Rooted/ManuallyRooted)"]


class _State:
    """Per-session: modules the user gave, and the command-line module (cached)."""

    def __init__(self) -> None:
        self.user: list[LoadedModule] = []
        self.cmdline_key: tuple[Any, Any] | None = None
        self.cmdline: tuple[list[LoadedModule], str] = ([], "")


def state(session: Session) -> _State:
    st = getattr(session, "_heap_state", None)
    if st is None:
        st = _State()
        setattr(session, "_heap_state", st)  # noqa: B010 (per-session state, not a Session field)
    return st


# -- the store of the selected frame ----------------------------------------------------


class Context(NamedTuple):
    view: HeapView
    roots: list[heapgraph.Root]
    heap: Heap
    notes: list[str]  # which root sets were read or not, which module was used or why none
    root_sets: dict[str, list[str]]  # {"read": [...], "not_read": [...]}


def modules(session: Session, target: Target) -> tuple[list[LoadedModule], list[str]]:
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


def type_map_for(
    session: Session,
    target: Target,
    heap: Heap,
    images: list[WasmtimeImage],
    root_refs: Iterable[int],
    view: HeapView,
    vmctxs: list[int],
) -> tuple[TypeMap | None, list[str]]:
    """(TypeMap or None, notes): the first candidate module that matches the images and
    whose type-ids, read from one of the store's instances, agree with the root objects."""
    mods, notes = modules(session, target)
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


def _disagreeing(view: HeapView, refs: Iterable[int]) -> str | None:
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


def _vmctxs(
    session: Session | None, target: Target, heap: Heap, collected: Threads, rep: HeapReport
) -> list[int]:
    """The store's instances: the heap's own VMContext, then those found on its stacks."""
    vmctxs = [heap.vmctx] if heap.vmctx else []
    if session is not None:
        found = store_instances(
            MemoryCache(target),
            heap.store_context,
            stack_ranges(collected, heap.store_context, rep.heaps),
            getattr(target, "little_endian", True),
        )
        vmctxs += [v for v in found if v not in vmctxs]
    return vmctxs


def _view_for(
    session: Session,
    target: Target,
    rep: HeapReport,
    key: tuple[int, int],
    images: list[WasmtimeImage],
    root_refs: Sequence[int],
    collected: Threads,
    vmctxs: list[int] | None = None,
) -> tuple[HeapView, list[str]]:
    heap = rep.heaps[key]
    collector = rep.activations[key].collector
    hl = header_layout(collector, heap.major)
    view = HeapView(target, heap.base, heap.length, collector, hl, heap.layout.kind_mask)
    notes = []
    if collector is None:
        notes.append("collector unknown: object sizes and fields cannot be decoded")
    if vmctxs is None:
        vmctxs = _vmctxs(session, target, heap, collected, rep)
    tm, tnotes = type_map_for(session, target, heap, images, root_refs, view, vmctxs)
    if tm is None:
        view.type_note = tnotes[-1] if tnotes else "no module"
    return view, notes + tnotes


def context(session: Session, target: Target) -> Context:
    got = session.collect(target, None, True)
    collected, rep = got.threads, got.heap
    if not rep.heaps:
        notes = sorted({a.note or "" for a in rep.activations.values()} - {""})
        raise StackMapsError(
            "no GC heap located"
            + (f": {notes[0]}" if notes else " (no wasm frame holds a heap ref)")
        )
    key = _selected_key(target, collected, rep)
    heap = rep.heaps[key]
    roots: list[heapgraph.Root] = []
    images: dict[int, WasmtimeImage] = {}
    skipped = 0
    for t, acts in collected:
        for n, act in enumerate(acts):
            h2 = rep.heaps.get((t.num, n))
            refs = [
                (f, s, s.ref.value)
                for f in act.frames
                for s in f.slots
                if s.ref and s.ref.kind == "heap" and s.ref.value is not None
            ]
            if h2 is None or h2.store_context != heap.store_context:
                skipped += bool(refs)
                continue
            for f, s, value in refs:
                images[id(f.image)] = f.image
                label = f"thread {t.num} frame #{f.level} SP+{s.offset}"
                roots.append(heapgraph.Root(label, value))
    roots += _suspended_roots(got.suspended or [], heap.store_context, images)
    stack_roots = len(roots)
    vmctxs = _vmctxs(session, target, heap, collected, rep)
    view, notes = _view_for(
        session, target, rep, key, list(images.values()), [r.ref for r in roots], collected, vmctxs
    )
    mods, _ = modules(session, target)
    fitting = [lm for lm in mods if check_against_images(lm.module, list(images.values()))[0]]
    iroots, read_sets, inotes = store_roots(
        target.read_memory, vmctxs, fitting, heap.major, view.little
    )
    roots += iroots
    sets = {
        "read": [f"wasm stacks: {stack_roots} heap ref slot(s)", *read_sets],
        "not_read": [*(n for n in inotes if " not read" in n), *NOT_READ],
    }
    if not read_sets:
        sets["not_read"].insert(0, "globals, tables")
    notes.insert(0, "root sets read: " + "; ".join(sets["read"]))
    notes.insert(1, "root sets not read: " + "; ".join(sets["not_read"]))
    notes += [n for n in inotes if " not read" not in n]
    if skipped:
        notes.append(f"{skipped} activation(s) with heap refs not tied to this store")
    return Context(view, roots, heap, notes, sets)


def _suspended_roots(
    stacks: list[SuspendedStack], store_context: int, images: dict[int, WasmtimeImage]
) -> list[heapgraph.Root]:
    """Heap refs of suspended fiber stacks tied to the same store (core/suspended.py)."""
    out = []
    for st in stacks:
        for act, info in st.activations:
            if info.get("store_context") != store_context:
                continue
            for f in act.frames:
                for s in f.slots:
                    if s.ref is not None and s.ref.kind == "heap" and s.ref.value is not None:
                        images[id(f.image)] = f.image
                        label = (
                            f"suspended stack {st.region.start:#x} frame #{f.level} SP+{s.offset}"
                        )
                        out.append(heapgraph.Root(label, s.ref.value))
    return out


def _selected_key(target: Target, collected: Threads, rep: HeapReport) -> tuple[int, int]:
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


# -- the bt/frame/report hook ------------------------------------------------------------


def enrich(session: Session, target: Target, collected: Threads, rep: HeapReport | None) -> None:
    """Give every decoded heap-slot object its `type` and `fields` (depth 1)."""
    if rep is None or not rep.objects:
        return
    views: dict = {}
    images = {id(f.image): f.image for _, acts in collected for a in acts for f in a.frames}
    for (tnum, level, _off), obj in rep.objects.items():
        key = _act_key(collected, tnum, level)
        if key is None or key not in rep.heaps or obj.error is not None:
            continue
        if key not in views:
            heap = rep.heaps[key]
            refs = [o.address - heap.base for o in rep.objects.values()]
            refs = [r for r in refs if 0 < r < heap.length]
            views[key] = _view_for(
                session, target, rep, key, list(images.values()), refs, collected
            )
        view, _notes = views[key]
        full = view.describe(obj.address - view.base, depth=0, elements=0)
        typed = obj.typed = {"type": full.get("type")}
        if "fields" in full:
            typed["fields"] = full["fields"]
        if "element_type" in full:
            typed["element_type"] = full["element_type"]
        if full.get("type") is None:
            typed["type_note"] = full.get("type_note") or full.get("error") or view.type_note


def _act_key(collected: Threads, tnum: int, level: int) -> tuple[int, int] | None:
    for t, acts in collected:
        if t.num != tnum:
            continue
        for n, act in enumerate(acts):
            if any(f.level == level for f in act.frames):
                return (tnum, n)
    return None
