"""Wasm frames interpreted by Pulley, found from the store context's exit FP/PC.

Under Pulley (`wasmtime run --target pulley64`, an engine configured for a
Pulley target) wasm is bytecode run by an interpreter: no thread's registers
point at it, and its frames live on the interpreter's own stack (host memory
allocated by Wasmtime, not the thread's stack). They are still ordinary frame
records: Pulley's `push_frame` pushes the return address then the caller's
FP, with the host's pointer size and byte order (`pulley/src/interp.rs`:
`size_of::<usize>()`, native-endian stores; a Pulley image only runs on a
host of its pointer width and byte order), so [FP] is the caller's FP and
[FP + pointer size] the return address, a bytecode address in the image's
`.text`. Stack maps are keyed by those return addresses as for native code.

Where they are: when interpreted wasm calls the host, the exit trampoline
records in the store's `VMStoreContext` its own FP (the wasm frame's FP is at
*exit_fp; before Wasmtime 37 exit_fp is the wasm FP) and the return address
into wasm (exit pc), and the entry trampoline's FP (entry fp). A thread
stopped in that host call holds a pointer to a `VMContext` of the store on
its native stack (the host-call frames take it as an argument). So: scan the
top of each thread's native stack for words pointing at a VMContext (magic,
then its store context), and keep the store contexts whose exit pc is in a
Pulley image's `.text` and whose chain from the exit FP walks cleanly to the
entry FP. That store context is then the proven store of those frames.

While interpreted wasm runs (not in a host call) these fields are stale, and
the walk is only as good as the chain check: a stale chain that still walks
cleanly to the entry FP would be shown.

Older activations of the thread (host -> Pulley -> host -> Pulley): entering
wasm again saved the older one's exit pc, exit FP and entry FP, with its store
context, in an `EntryStoreContext` on the native stack between the two host
calls. They are found as on a suspended fiber (fibers.find_saved_exits: the
words around a return address into wasm), with the frame record of the exit
FP read on the interpreter's stack (above the newer activations' frames: the
interpreter keeps one stack), and accepted when the walk reaches the recorded
entry FP and the record names a store context a vmctx on this stack leads to.
"""

from typing import Literal, NamedTuple

from . import gcheap
from .discover import ImageRegistry
from .errors import ReadError, StackMapsError
from .fibers import SavedExit, StackWords, find_saved_exits
from .fibertops import MAX_LIVE
from .frames import Activation, ActivationEnd, ActivationSource, WasmFrame
from .gcref import SlotKind
from .regions import DataRegions
from .runtime import store_layout_for
from .stackread import Seek, words_above
from .storeexits import images_major, store_exits, stores_on_stack
from .storeheap import decode_in_store
from .target import MemoryCache, Region, Target, ThreadState
from .walk import MAX_FRAME_BYTES, _read_slots, number_frames

NESTED_SCAN = (
    512 * 1024
)  # bytes of a thread's native stack searched for the saved records of older Pulley activations
PULLEY_STACK = 64 * 1024 * 1024  # older activations lie this far above the newest at most


class PulleyActivation(NamedTuple):
    activation: Activation
    store_context: int
    vmctx: int
    found_at: int  # native stack address holding the vmctx pointer


def walk_pulley(
    mem: MemoryCache,
    target: Target,
    registry: ImageRegistry,
    pc: int,
    fp: int,
    entry_fp: int,
    max_depth: int,
) -> Activation | None:
    """Frames from (pc, fp) to the entry trampoline's frame at `entry_fp`; None unless the
    chain gets there cleanly through Pulley code."""
    ptr = target.pointer_size
    order: Literal["little", "big"] = "little" if target.little_endian else "big"
    frames: list[WasmFrame] = []
    callee_fp = None
    while True:
        img = registry.image_at(pc)
        if img is None or not img.pulley or len(frames) >= max_depth:
            return None
        frame = WasmFrame(pc, fp, img, False)
        if frame.text_offset is not None:
            try:
                frame.entry = img.lookup(frame.text_offset)
            except StackMapsError as e:
                frame.error = str(e)
        if frame.entry is not None and callee_fp is not None:
            if callee_fp + 2 * ptr != fp - frame.entry.frame_size:
                frame.note = (
                    f"callee frame record at {callee_fp:#x} does not sit at SP-{2 * ptr} "
                    f"(SP={fp - frame.entry.frame_size:#x}): frame pointer suspect"
                )
        frames.append(frame)
        if fp == entry_fp:
            break
        try:
            rec = mem.read(fp, 2 * ptr)
        except ReadError:
            return None
        next_fp = int.from_bytes(rec[:ptr], order)
        pc = int.from_bytes(rec[ptr:], order)
        if not fp < next_fp <= fp + MAX_FRAME_BYTES or next_fp > entry_fp:
            return None
        callee_fp, fp = fp, next_fp
    last = frames[-1].function
    if last is None or last.is_wasm or not any(f.is_wasm_function for f in frames):
        return None  # an activation is entered through a trampoline
    _read_slots(mem, frames)
    return Activation(frames, ActivationSource.PULLEY, ActivationEnd.STORE_ENTRY)


def pulley_activations(
    seek: Seek, thread: ThreadState, regions: list[Region] | None
) -> list[PulleyActivation]:
    """The Pulley activations a thread is in a host call from, each with its store."""
    mem, target, registry, max_depth = seek
    out = []
    seen_entry: set[int] = set()
    for ex in store_exits(seek, thread, regions, True):
        st = ex.state
        act = walk_pulley(mem, target, registry, st.exit_pc, ex.wasm_fp, st.entry_fp, max_depth)
        if act is not None:
            seen_entry.add(st.entry_fp)
            out.append(PulleyActivation(act, ex.store_context, ex.vmctx, ex.found_at))
    if out:
        top = max(pa.activation.frames[-1].fp for pa in out)
        stores = stores_on_stack(target, mem, thread, regions)
        for pa in _older(target, registry, mem, thread, regions, top, stores, max_depth):
            if pa.activation.frames[-1].fp not in seen_entry:
                seen_entry.add(pa.activation.frames[-1].fp)
                out.append(pa)
    return sorted(out, key=lambda pa: pa.activation.frames[0].fp)  # innermost first


def _older(
    target: Target,
    registry: ImageRegistry,
    mem: MemoryCache,
    thread: ThreadState,
    regions: list[Region] | None,
    above: int,
    stores: dict[int, tuple[int, int]],
    max_depth: int,
) -> list[PulleyActivation]:
    """Older Pulley activations: from saved exit records on the native stack whose exit FP
    lies above `above` (the newest activation's entry FP) on the interpreter's stack."""
    lo, words = words_above(mem, regions, thread.sp, NESTED_SCAN, target.little_endian)
    layout = store_layout_for(images_major(registry, True))
    trampoline = True if layout is None else layout.exit_fp_is_trampoline
    found: dict[int, PulleyActivation] = {}
    stack = StackWords(words, lo, above + 1, above + PULLEY_STACK)
    for c in find_saved_exits(stack, registry, trampoline, mem.try_u64):
        img = registry.image_at(c.exit_pc)
        if img is None or not img.pulley:
            continue
        store = next((w for w in c.near if w in stores), None)
        if store is None:
            continue  # no store context a vmctx leads to: no proof
        for e in sorted({w for w in c.near if c.wasm_fp < w < above + PULLEY_STACK}):
            if e in found:
                break
            act = walk_pulley(mem, target, registry, c.exit_pc, c.wasm_fp, e, max_depth)
            if act is not None:
                found[e] = PulleyActivation(act, store, stores[store][0], c.at)
                break
    return sorted(found.values(), key=lambda pa: pa.activation.frames[0].fp)


def add_pulley_activations(
    target: Target,
    registry: ImageRegistry,
    mem: MemoryCache,
    collected: list[tuple[ThreadState, list[Activation]]],
    regions: list[Region] | None,
    max_depth: int,
) -> list[tuple[int, int, PulleyActivation]]:
    """Put each thread's Pulley activations first in its activation list (they are below the
    host call the thread is in) and renumber its frames; returns (thread, index, activation)."""
    found = []
    for i, (thread, acts) in enumerate(collected):
        pas = pulley_activations(Seek(mem, target, registry, max_depth), thread, regions)
        if not pas:
            continue
        # The stack scan may have found the same frames too (the interpreter's stack can sit in
        # the mapping it scans): those come from the store context now.
        fps = {f.fp for pa in pas for f in pa.activation.frames}
        acts = [pa.activation for pa in pas] + [
            a for a in acts if not any(f.fp in fps for f in a.frames)
        ]
        number_frames(acts, thread.num)
        collected[i] = (thread, acts)
        found += [(thread.num, n, pa) for n, pa in enumerate(pas)]
    return found


def without(
    collected: list[tuple[ThreadState, list[Activation]]],
    found: list[tuple[int, int, PulleyActivation]],
) -> list[tuple[ThreadState, list[Activation]]]:
    """`collected` with the Pulley activations emptied (their store is known: nothing to
    search for), indices kept."""
    if not found:
        return collected
    mine = {id(pa.activation) for _, _, pa in found}
    return [
        (t, [Activation([], a.source, a.end) if id(a) in mine else a for a in acts])
        for t, acts in collected
    ]


def apply_heaps(
    rep: gcheap.HeapReport, mem: MemoryCache, found: list[tuple[int, int, PulleyActivation]]
) -> None:
    """Decode each Pulley activation's objects in its own store's heap, into the report."""
    finder = rep.finder
    if finder is None:
        return
    for num, n, pa in found:
        got = decode_in_store(
            finder, pa.activation, pa.store_context, pa.vmctx, pa.found_at, "thread stack"
        )
        if got is None:
            continue
        rep.activations[(num, n)] = got.finding
        if got.heap is not None:
            rep.heaps[(num, n)] = got.heap
        for f in pa.activation.frames:
            if any(s.ref is not None and s.ref.kind is SlotKind.HEAP for s in f.slots):
                rep.frame_notes[(num, f.level)] = got.note or ""
            for s in f.slots:
                obj = got.objects.get((id(f), s.offset))
                if obj is not None:
                    rep.objects[(num, f.level, s.offset)] = obj


def suspended_pulley(
    seek: Seek, stack: StackWords, data: DataRegions
) -> list[tuple[SavedExit, Activation]]:
    """Suspended Pulley activations: the saved exit record is on the fiber stack, but the
    exit and entry FPs are on the interpreter's own stack (read-write memory elsewhere)."""
    mem, target, registry, max_depth = seek

    def elsewhere(v: int) -> bool:
        return data(v) and not stack.lo <= v < stack.hi

    out = []
    cands = find_saved_exits(stack, registry, True, mem.try_u64, fp_ok=elsewhere, pulley=True)
    for c in cands:
        for e in sorted({w for w in c.near if c.wasm_fp < w < c.wasm_fp + MAX_LIVE}):
            act = walk_pulley(mem, target, registry, c.exit_pc, c.wasm_fp, e, max_depth)
            if act is not None:
                others = tuple(w for w in c.near if w not in (c.exit_pc, c.exit_fp, e))
                saved = SavedExit(c.at, c.exit_pc, c.exit_fp, c.wasm_fp, e, others)
                out.append((saved, Activation(act.frames, ActivationSource.FIBER, act.end)))
                break
    return out
