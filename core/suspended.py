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
from .errors import ReadError
from .fibers import FiberFind, SavedExit, find_suspended
from .frames import Activation
from .regions import DataRegions
from .runtime import vmctx_store
from .stackread import Seek
from .storeheap import (
    StoreHeap,
    activation_major,
    check_store,
    decode_in_store,
    heap_refs,
    not_located,
)
from .target import MemoryCache, Region, Target, ThreadState
from .walk import number_frames

VMCTX_SLACK_BELOW = 4096  # the innermost frame's spill area and the exit trampoline below it
MAX_VMCTX_PROBES = 256


def _data_pointer(v: int, data: DataRegions, stack: Region) -> bool:
    return data(v) and not stack.start <= v < stack.end


def _prove_store(
    mem: MemoryCache, target: Target, saved: SavedExit, act: Activation, find: "_Ctx"
) -> tuple[int, int, int] | None:
    """(store context, vmctx, where) when a vmctx in the activation's frames points at one of
    the saved record's words, else None."""
    cands = {w for w in saved.others if _data_pointer(w, find.regions, find.region)}
    if not cands:
        return None
    # The wasm frames' own spill slots first (they keep their vmctx argument), then the
    # exit trampoline and host frames below the innermost one.
    inner = act.frames[0].fp
    spans = [(inner, act.frames[-1].fp + 16)]
    if find.region.start <= inner < find.region.end:
        spans.append((max(find.region.start, inner - VMCTX_SLACK_BELOW), inner))
    else:  # Pulley: the frames are on the interpreter's stack; the host frames on the fiber
        spans.append((max(find.region.start, saved.at - VMCTX_SLACK_BELOW), saved.at))
    little = target.little_endian
    seen: set[int] = set()
    for lo, hi in spans:
        try:
            data = mem.read(lo, hi - lo)
        except ReadError:
            continue
        for i in range(0, len(data) - 7, 8):
            v = int.from_bytes(data[i : i + 8], "little" if little else "big")
            if v in seen or v in cands or not _data_pointer(v, find.regions, find.region):
                continue
            seen.add(v)
            if len(seen) > MAX_VMCTX_PROBES:
                return None
            hit = vmctx_store(mem.read, v, little)
            if hit is not None and hit[1] in cands:
                return hit[1], v, lo + i
    return None


class _Ctx:
    """What one suspended stack's store tie needs."""

    def __init__(self, find: FiberFind, regions: DataRegions):
        self.region = find.region
        self.regions = regions


def _tie(
    mem: MemoryCache,
    target: Target,
    finder: gcheap._Finder,
    saved: SavedExit,
    act: Activation,
    ctx: _Ctx,
) -> dict:
    """The activation's store tie: store context, vmctx, `heap`, and (for report.py)
    `heap_note` and the decoded `objects`."""
    proof = _prove_store(mem, target, saved, act, ctx)
    rec: dict = {"store_context": None, "vmctx": None, "record": saved.at}
    found_in = "fiber exit record"
    if proof is not None:
        store, vmctx, found_at = proof
        rec.update(store_context=store, vmctx=vmctx, found_at=found_at)
        rec["store_note"] = (
            f"store context {store:#x} from the saved exit record at {saved.at:#x}, "
            f"confirmed by vmctx {vmctx:#x} at {found_at:#x}"
        )
        got = decode_in_store(finder, act, store, vmctx, saved.at, found_in)
    else:
        got = _unproven(finder, saved, act, ctx, rec)
    if got is not None:
        rec.update(heap=got.finding, heap_note=got.note, objects=got.objects)
    return rec


def _unproven(
    finder: gcheap._Finder, saved: SavedExit, act: Activation, ctx: _Ctx, rec: dict
) -> StoreHeap | None:
    """No vmctx confirms the store: use a candidate only if it is the one whose heap
    explains every ref; two such give `heap ambiguous`."""
    refs = sorted({r for _, _, r in heap_refs(act)})
    if not refs:
        return None
    major = activation_major(act)
    layout, _ = gcheap.layout_for(major)
    if layout is None:
        return decode_in_store(finder, act, 0, None, saved.at, "")  # the version note
    good = []
    why = "no store context candidate in the saved exit record"
    for w in saved.others:
        if not _data_pointer(w, ctx.regions, ctx.region):
            continue
        hb, bad = check_store(finder, w, None, refs, layout)
        if hb is not None:
            good.append((w, hb))
        else:
            why = bad or why
    if not good:
        return not_located("GC heap not located: " + why)
    if len(good) > 1:
        return not_located(
            "heap ambiguous: store contexts "
            + ", ".join(f"{w:#x} (heap {hb[0]:#x})" for w, hb in good)
            + " each explain every live ref and nothing in the frames decides"
        )
    store = good[0][0]
    rec["store_context"] = store
    rec["store_note"] = (
        f"store context {store:#x} from the saved exit record at {saved.at:#x}: no vmctx "
        f"in the frames confirms it; the only candidate whose heap holds every live ref"
    )
    return decode_in_store(finder, act, store, None, saved.at, "fiber exit record")


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
    finds = find_suspended(Seek(mem, target, registry, max_depth), regions, threads)
    if not finds:
        return []
    finder = gcheap._Finder(target, mem, regions)
    data = DataRegions(regions)
    out = []
    for find in finds:
        ctx = _Ctx(find, data)
        number_frames([act for _, act in find.activations], None)
        acts = [
            (act, _tie(mem, target, finder, saved, act, ctx)) for saved, act in find.activations
        ]
        out.append(SuspendedStack(find.region, find.saved_sp, find.note, acts))
    return out
