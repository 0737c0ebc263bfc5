"""Suspended fiber stacks as report records: each tied to its own store, objects decoded there.

A suspended activation's saved exit record (see fibers.py) holds a pointer to
its store's `VMStoreContext` among its other words. Which word it is is
proven, not guessed: a `VMContext` found in the activation's own frames
(wasm functions spill their vmctx argument) must point at that same store
context. Only then is the store's GC heap read (`gc_heap` at the version's
offset in the store context) and every live heap ref checked against it
before any object is decoded. When nothing in the frames confirms the store,
a candidate whose heap explains every ref is used only if it is the only one
(with a note saying so); two that explain them equally give `heap ambiguous`.
"""

from typing import NamedTuple

from . import gcheap
from .discover import ImageRegistry
from .errors import ReadError, StackMapsError
from .fibers import FiberFind, SavedExit, find_suspended
from .runtime import vmctx_store
from .target import MemoryCache, Region, Target, ThreadState
from .walk import Activation, Slot, WasmFrame

VMCTX_SLACK_BELOW = 4096  # the innermost frame's spill area and the exit trampoline below it
MAX_VMCTX_PROBES = 256


def _data_pointer(v: int, regions: list[Region] | None, stack: Region) -> bool:
    if v < 0x10000 or v >= 1 << 57 or v % 8 or stack.start <= v < stack.end:
        return False
    if not regions:
        return True
    for r in regions:
        if r.start <= v < r.end:
            return r.perms.startswith("rw") and "x" not in r.perms
    return False


def _prove_store(
    mem: MemoryCache, target: Target, saved: SavedExit, act: Activation, find: "_Ctx"
) -> tuple[int, int, int] | None:
    """(store context, vmctx, where) when a vmctx in the activation's frames points at one of
    the saved record's words, else None."""
    cands = {w for w in saved.others if _data_pointer(w, find.regions, find.region)}
    if not cands:
        return None
    lo = max(find.region.start, act.frames[0].fp - VMCTX_SLACK_BELOW)
    hi = act.frames[-1].fp + 16
    try:
        data = mem.read(lo, hi - lo)
    except ReadError:
        return None
    little = target.little_endian
    seen: set[int] = set()
    for i in range(0, len(data) - 7, 8):
        v = int.from_bytes(data[i : i + 8], "little" if little else "big")
        if v in seen or v in cands or not _data_pointer(v, find.regions, find.region):
            continue
        seen.add(v)
        if len(seen) > MAX_VMCTX_PROBES:
            break
        hit = vmctx_store(mem.read, v, little)
        if hit is not None and hit[1] in cands:
            return hit[1], v, lo + i
    return None


class _Ctx:
    """What one suspended stack's store tie needs."""

    def __init__(self, find: FiberFind, regions: list[Region] | None):
        self.region = find.region
        self.regions = regions


def _heap_refs(act: Activation) -> list[tuple[WasmFrame, Slot, int]]:
    """(frame, slot, heap index) of every live heap ref of the activation."""
    out = []
    for f in act.frames:
        for s in f.slots:
            if s.ref is not None and s.ref.kind == "heap" and s.ref.value is not None:
                out.append((f, s, s.ref.value))
    return out


def _major(act: Activation) -> int | None:
    for f in act.frames:
        try:
            return f.image.engine.major
        except StackMapsError:
            continue
    return None


def _store_heap(
    finder: gcheap._Finder, store: int, vmctx: int | None, layout: gcheap.Layout
) -> tuple[int, int] | None:
    try:
        if layout.heap_in == "vmctx":
            if vmctx is None:
                return None
            hb = finder.mem.read(vmctx + layout.heap_offset, 16)
        else:
            hb = finder.mem.read(store + layout.heap_offset, 16)
    except ReadError:
        return None
    return finder.u64(hb, 0), finder.u64(hb, 8)


def _tie(
    mem: MemoryCache,
    target: Target,
    finder: gcheap._Finder,
    saved: SavedExit,
    act: Activation,
    ctx: _Ctx,
) -> dict:
    """The activation's store and heap record; decodes its objects into the frames' slots."""
    pairs = _heap_refs(act)
    refs = sorted({r for _, _, r in pairs})
    major = _major(act)
    layout, key = gcheap.layout_for(major)
    proof = _prove_store(mem, target, saved, act, ctx)
    rec: dict = {"store_context": None, "vmctx": None, "record": saved.at}
    if proof is not None:
        store, vmctx, found_at = proof
        rec.update(store_context=store, vmctx=vmctx, found_at=found_at)
        rec["store_note"] = (
            f"store context {store:#x} from the saved exit record at {saved.at:#x}, "
            f"confirmed by vmctx {vmctx:#x} at {found_at:#x}"
        )
    if not refs:
        return rec
    if layout is None:
        rec["heap"] = {
            "located": False,
            "note": f"GC heap not located: Wasmtime {major} is not "
            "covered by the heap layout table (32 and later)",
        }
        return rec
    if proof is not None:
        options = [(rec["store_context"], rec["vmctx"])]
    else:
        options = [(w, None) for w in saved.others if _data_pointer(w, ctx.regions, ctx.region)]
    good = []
    why = "no store context candidate in the saved exit record"
    for store, vmctx in options:
        hb = _store_heap(finder, store, vmctx, layout)
        if hb is None:
            why = f"store context {store:#x} is unreadable"
            continue
        chk = gcheap._check_heap(finder, hb[0], hb[1], refs, layout)
        if chk.ok:
            good.append((store, vmctx, hb))
        else:
            why = f"store context {store:#x}: {chk.why}"
    if len(good) != 1:
        note = (
            "heap ambiguous: store contexts "
            + ", ".join(f"{g[0]:#x} (heap {g[2][0]:#x})" for g in good)
            + " each explain every live ref and nothing in the frames decides"
            if good
            else "GC heap not located: " + why
        )
        rec["heap"] = {"located": False, "note": note}
        rec["heap_note"] = note
        return rec
    store, vmctx, (base, length) = good[0]
    if proof is None:
        rec["store_context"] = store
        rec["store_note"] = (
            f"store context {store:#x} from the saved exit record at {saved.at:#x}: no vmctx "
            f"in the frames confirms it; the only candidate whose heap holds every live ref"
        )
    heap = gcheap.Heap(
        base, length, vmctx or 0, store, saved.at, "fiber exit record", major or 0, layout
    )
    heads = {}
    for r in refs:
        try:
            head = finder.object_bytes(base, r, length)
        except ReadError:
            continue
        if len(head) >= 24:
            heads[r] = head
    collector = gcheap._choose_collector(finder, heap, heads) if heads else None
    rec["heap"] = {
        "located": True,
        "base": base,
        "length": length,
        "vmctx": vmctx,
        "store_context": store,
        "found_at": saved.at,
        "found_in": "fiber exit record",
        "collector": collector,
        "wasmtime_major": major,
        "layout_from": key,
    }
    rec["heap_note"] = (
        f"GC heap {base:#x}..{base + length:#x} ({collector or 'unknown'} collector), "
        f"store context {store:#x} (saved exit record at {saved.at:#x})"
    )
    rec["objects"] = {
        (id(f), s.offset): gcheap.decode_object(finder, heap, r, collector) for f, s, r in pairs
    }
    return rec


class SuspendedStack(NamedTuple):
    """A suspended fiber stack with wasm frames; each activation with its store tie: a dict
    (store_context, vmctx, record, store_note, heap, heap_note, objects keyed by
    (id(frame), slot offset)) that report.suspended_records turns into JSON records."""

    region: Region
    saved_sp: int | None
    note: str | None
    activations: list[tuple[Activation, dict]]


def suspended_stacks(
    target: Target,
    registry: ImageRegistry,
    mem: MemoryCache,
    regions: list[Region] | None,
    threads: list[ThreadState],
    max_depth: int,
) -> list[SuspendedStack]:
    """Every suspended fiber stack with wasm frames, each activation tied to its store."""
    finds = find_suspended(target, registry, mem, regions, threads, max_depth)
    if not finds:
        return []
    finder = gcheap._Finder(target, mem, regions)
    out = []
    for find in finds:
        ctx = _Ctx(find, regions)
        level = 0
        acts = []
        for n, (saved, act) in enumerate(find.activations):
            for f in act.frames:
                f.level, f.thread, f.activation = level, None, n
                level += 1
            acts.append((act, _tie(mem, target, finder, saved, act, ctx)))
        out.append(SuspendedStack(find.region, find.saved_sp, find.note, acts))
    return out
