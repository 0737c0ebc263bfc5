"""Activations reached from the runtime's own records that no walk of the thread reached.

Wasmtime's backtrace does not scan stacks: it starts from the store context's
last exit record (the exit pc and, 37+, the exit trampoline's FP whose saved FP
is the innermost wasm frame's) and walks to the entry FP; older activations of
the same store come from the `EntryStoreContext` each newer entry saved on the
host stack, in the frames just above its entry trampoline (see core/stores.py).
This module does the same for a stopped thread, from the store contexts the
stop has seen:

  1. each store context's current exit record whose wasm FP lies in the thread's
     stack and which no activation covers: walked, and kept only when the walk
     ends exactly at the record's entry FP, at an entry trampoline;
  2. above each activation's entry trampoline (SAVED_SPAN bytes of its caller's
     frames), a saved record (core/fibers.py's `find_saved_exits`: an exit pc
     into wasm, an exit FP whose frame returns to it, an entry FP), walked and
     checked the same way; repeated for what that finds.

What is found is labelled `"source": "runtime"`, and so is an activation the stack
scan found where a record leads (the same frames, the same entry FP): the scan is
the fallback for what no record reaches. The debugger's own frames keep their label.
"""

import struct

from .discover import ImageRegistry
from .errors import ReadError
from .fibers import WINDOW, exit_is_trampoline
from .frames import ActivationSource
from .runtime import StoreContextState
from .stores import StoreTies
from .target import MemoryCache, Region, Target, ThreadState
from .walk import DEFAULT_MAX_DEPTH, MAX_STACK_SCAN, Activation, number_frames, walk_chain

SAVED_SPAN = 4096  # an entry's EntryStoreContext sits in the frames just above its trampoline


def _stack_of(thread: ThreadState, regions: list[Region] | None) -> tuple[int, int]:
    for r in regions or []:
        if r.start <= thread.sp < r.end:
            return thread.sp, r.end
    return thread.sp, thread.sp + MAX_STACK_SCAN


def _valid(act: Activation, entry_fp: int | None) -> bool:
    if not act.frames or act.end != "left wasm code":
        return False
    last = act.frames[-1]
    if last.function is None or last.function.is_wasm:
        return False
    return entry_fp is None or last.fp == entry_fp


def _saved_records(
    target: Target,
    registry: ImageRegistry,
    mem: MemoryCache,
    entry: int,
    lo: int,
    hi: int,
    trampoline_fp: bool,
) -> list[tuple[int, int, int]]:
    """(exit pc, wasm FP, entry FP) of the saved records in the SAVED_SPAN bytes above an
    entry trampoline's frame: an exit pc X into a wasm function, within WINDOW words of it
    an exit FP T in the stack whose frame returns to X ([T+8] == X; the wasm FP is [T],
    or T itself before Wasmtime 37) and an entry FP above it."""
    base = entry + 16
    n = max(0, min(SAVED_SPAN, hi - base)) // 8
    try:
        data = mem.read(base, 8 * n)
    except ReadError:
        return []
    words = struct.unpack(("<" if target.little_endian else ">") + f"{n}Q", data)
    out = []
    for i, x in enumerate(words):
        if not registry.lo <= x < registry.hi:
            continue
        img = registry.image_at(x)
        off = img.text_offset(x) if img is not None else None
        fn = img.function_at(off) if img is not None and off is not None else None
        if fn is None or not fn.is_wasm:
            continue
        near = words[max(0, i - WINDOW) : i + WINDOW + 1]
        for t in near:
            if not lo <= t < hi or t % 8 or (t <= base + 8 * i < t + 16):
                continue
            if trampoline_fp:
                if mem.try_u64(t + 8) != x:
                    continue
                wasm_fp = mem.try_u64(t)
            else:
                wasm_fp = t
            if wasm_fp is None or not lo <= wasm_fp < hi:
                continue
            out += [(x, wasm_fp, e) for e in near if wasm_fp < e < hi and e % 8 == 0]
    return out


def runtime_activations(
    target: Target,
    registry: ImageRegistry,
    mem: MemoryCache,
    regions: list[Region] | None,
    thread: ThreadState,
    acts: list[Activation],
    records: list[StoreContextState],
    ties: StoreTies,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> list[Activation]:
    """The thread's activations reached from `records` (store contexts' current records)
    and the saved records above its activations' entries, that `acts` do not hold.
    `acts` is extended (and scan finds relabelled) in place, innermost first."""
    if thread.sp is None:
        return []
    lo, hi = _stack_of(thread, regions)
    covered = {f.fp for a in acts for f in a.frames}
    owner = {f.fp: i for i, a in enumerate(acts) for f in a.frames}
    found: list[Activation] = []
    relabelled = False

    def take(act: Activation) -> None:
        found.append(Activation(act.frames, ActivationSource.RUNTIME, act.end))
        covered.update(f.fp for f in act.frames)

    def reached(pc: int, wasm_fp: int, entry_fp: int) -> None:
        """The runtime's record (pc, wasm FP, entry FP) leads here: walk it, or say that
        the stack scan's activation there is the one the runtime records."""
        nonlocal relabelled
        i = owner.get(wasm_fp)
        if i is not None:
            a = acts[i]
            if a.source == ActivationSource.SCAN and a.frames[-1].fp == entry_fp:
                acts[i] = Activation(a.frames, ActivationSource.RUNTIME, a.end)
                relabelled = True
            return
        act = walk_chain(mem, target, registry, pc, wasm_fp, False, None, max_depth)
        if _valid(act, entry_fp) and not covered & {f.fp for f in act.frames}:
            take(act)

    for st in records:
        wasm_fp = ties.exit_wasm_fp(st)
        if wasm_fp is None or not lo <= wasm_fp < hi:
            continue
        if registry.image_at(st.exit_pc) is None:
            continue
        reached(st.exit_pc, wasm_fp, st.entry_fp)
    tramp = exit_is_trampoline(registry)
    queue = list(acts) + found
    seen_entries: set[int] = set()
    while queue:
        entry = queue.pop().frames[-1].fp
        if entry in seen_entries or not lo <= entry < hi:
            continue
        seen_entries.add(entry)
        for x, wasm_fp, e in _saved_records(target, registry, mem, entry, lo, hi, tramp):
            n = len(found)
            reached(x, wasm_fp, e)
            if len(found) > n:
                queue.append(found[-1])
    if found:
        acts.extend(found)
        acts.sort(key=lambda a: a.frames[0].fp)
    if found or relabelled:
        number_frames(acts, thread.num)
    return found
