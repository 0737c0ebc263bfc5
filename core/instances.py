"""The instances (VMContexts) of a store, for their `type_ids` arrays.

The store tie (core/stores.py) may be established without a VMContext (from
the store context's activation records). Typing objects needs an instance of
the module: its VMContext starts with the magic `core` and holds the store
context pointer at +8. Wasm functions spill their vmctx argument in their
frames, so the wasm frames' stack (and the thread's stack above SP) hold one.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from .errors import ReadError
from .frames import Activation
from .gcheap import Heap
from .target import MemoryCache, ThreadState

STACK_SCAN = 256 * 1024
MAX_PROBES = 4096
MAX_INSTANCES = 16


def store_instances(
    mem: MemoryCache, store_context: int, ranges: list[tuple[int, int]], little: bool = True
) -> list[int]:
    """VMContexts of core instances of the store, found in the stack `ranges`."""
    e = "<" if little else ">"
    magic = b"core" if little else b"eroc"
    found: list[int] = []
    probed: set[int] = set()
    for lo, hi in ranges:
        lo -= lo % 8
        pos = lo
        while pos < hi and len(probed) < MAX_PROBES and len(found) < MAX_INSTANCES:
            n = min(MemoryCache.PAGE - pos % MemoryCache.PAGE, hi - pos)
            try:
                data = mem.read(pos, n)
            except ReadError:
                pos += n
                continue
            for (v,) in struct.iter_unpack(e + "Q", data[: len(data) - len(data) % 8]):
                if v in probed or v % 8 or not 0x10000 <= v < 1 << 57:
                    continue
                probed.add(v)
                try:
                    head = mem.read(v, 16)
                except ReadError:
                    continue
                if head[:4] == magic and struct.unpack_from(e + "Q", head, 8)[0] == store_context:
                    if v not in found:
                        found.append(v)
            pos += n
    return found


def stack_ranges(
    collected: Iterable[tuple[ThreadState, list[Activation]]],
    store_context: int,
    heaps: dict[tuple[int, int], Heap],
) -> list[tuple[int, int]]:
    """Where to look: each activation of the store, from its innermost FP (or the thread's
    SP) to 1 KiB above its outermost FP; then the thread's stack from SP up."""
    out = []
    for t, acts in collected:
        mine = False
        for n, act in enumerate(acts):
            h = heaps.get((t.num, n))
            if h is None or h.store_context != store_context or not act.frames:
                continue
            mine = True
            fps = [f.fp for f in act.frames]
            lo = min(fps) - 4096
            if n == 0 and t.sp is not None and 0 <= min(fps) - t.sp <= 1 << 20:
                lo = min(lo, t.sp)
            out.append((lo, max(fps) + 1024))
        if mine and t.sp is not None:
            out.append((t.sp, t.sp + STACK_SCAN))
    return out
