"""A thread's newest activation from its store's exit record, as Wasmtime's backtrace starts.

A thread stopped in a host call holds a pointer to a `VMContext` of the calling
store near the top of its native stack (the host call's frames take it as an
argument). Its store context records the last exit from wasm (exit pc, exit FP:
the exit trampoline's, 37+, whose saved FP is the wasm frame's) and the entry
trampoline's FP. A walk from that exit which ends exactly at the entry FP is
the activation the thread is in a host call from, proven by the runtime's own
records, with its store.

Used for Pulley (its frames are on the interpreter's stack: no walk of the
thread reaches them; pulley.py) and, with the stack scan off, for native code
whose frames the debugger's unwinder did not reach (LLDB stops unwinding in a
Python embedder's interpreter loop): older activations then come from the
records saved above this one's entry (runtime_walk.py).
"""

from collections.abc import Iterator
from typing import NamedTuple

from .discover import ImageRegistry
from .errors import ReadError, StackMapsError
from .frames import Activation, ActivationEnd, ActivationSource
from .regions import DataRegions
from .runtime import StoreContextState, read_store_context, store_layout_for, vmctx_store
from .stackread import Seek, span_above, words_above
from .target import MemoryCache, Region, Target, ThreadState

NATIVE_SCAN = 64 * 1024  # bytes of a thread's native stack searched for a vmctx, from its SP
MAX_PROBES = 1024
OWN_STACK = 8 * 1024 * 1024  # a native exit's wasm FP lies this far above the thread's SP at most


class StoreExit(NamedTuple):
    store_context: int
    vmctx: int
    found_at: int  # native stack address holding the vmctx pointer
    state: StoreContextState
    wasm_fp: int  # the innermost wasm frame's FP from the exit record


def images_major(registry: ImageRegistry, pulley: bool) -> int | None:
    """The Wasmtime major of the registry's Pulley (or native) images, None without any."""
    major = None
    for img in registry:
        try:
            if bool(img.pulley) == pulley:
                major = img.engine.major
        except StackMapsError:
            continue
    return major


def stores_on_stack(
    target: Target, mem: MemoryCache, thread: ThreadState, regions: list[Region] | None
) -> dict[int, tuple[int, int]]:
    """store context -> (vmctx, where) for the VMContext pointers in the top of the stack."""
    lo, words = words_above(mem, regions, thread.sp, NATIVE_SCAN, target.little_endian)
    found: dict[int, tuple[int, int]] = {}
    seen: set[int] = set()
    data_pointer = DataRegions(regions)
    for i, v in enumerate(words):
        if v in seen or not data_pointer(v):
            continue
        if len(seen) >= MAX_PROBES:
            break
        seen.add(v)
        hit = vmctx_store(mem.read, v, target.little_endian)
        if hit is not None and hit[1] not in found:
            found[hit[1]] = (v, lo + 8 * i)
    return found


def store_exits(
    seek: Seek, thread: ThreadState, regions: list[Region] | None, pulley: bool
) -> Iterator[StoreExit]:
    """The exit records of the stores the top of the thread's stack leads to whose exit pc is
    in a Pulley (or native) image, one per entry FP."""
    mem, target, registry, _ = seek
    layout = store_layout_for(images_major(registry, pulley))
    if layout is None or not thread.sp:
        return
    entries: set[int] = set()
    for store, (vmctx, where) in stores_on_stack(target, mem, thread, regions).items():
        try:
            st = read_store_context(mem.read, store, layout, target.little_endian)
            wasm_fp = mem.u64(st.exit_fp) if layout.exit_fp_is_trampoline else st.exit_fp
        except ReadError:
            continue
        img = registry.image_at(st.exit_pc)
        if img is None or bool(img.pulley) != pulley or st.entry_fp in entries:
            continue
        entries.add(st.entry_fp)
        yield StoreExit(store, vmctx, where, st, wasm_fp)


def native_exit_activations(
    seek: Seek, thread: ThreadState, regions: list[Region] | None
) -> list[Activation]:
    """The native activations the thread is in a host call from, from its stores' exit
    records: each walk must end exactly at its record's entry FP, at a trampoline."""
    from .walk import walk_chain  # walk.py asks for these

    out = []
    lo, hi = span_above(regions, thread.sp, OWN_STACK)
    mem, target, registry, max_depth = seek
    for ex in store_exits(seek, thread, regions, False):
        if not lo <= ex.wasm_fp < hi:
            continue  # another thread's (or a fiber's) exit
        act = walk_chain(
            mem, target, registry, ex.state.exit_pc, ex.wasm_fp, False, None, max_depth
        )
        last = act.frames[-1] if act.frames else None
        if (
            last is None
            or act.end is not ActivationEnd.LEFT_WASM
            or last.fp != ex.state.entry_fp
            or last.function is None
            or last.function.is_wasm
        ):
            continue
        out.append(Activation(act.frames, ActivationSource.RUNTIME, act.end))
    return out
