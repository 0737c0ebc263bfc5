"""Suspended async fibers: wasm stacks that no thread is running.

Wasmtime runs an async call (`Func::call_async`, the C API's
`wasmtime_func_call_async`) on a fiber: an mmap'd stack with a guard page
below it. When the call waits on a pending host future the fiber suspends:
its frames stay on that stack and no thread's registers point into it.

What a suspended fiber looks like (docs/format.md §6, "Suspended fibers", has
the links to Wasmtime's source):
  - The top of the stack holds two words: at top-8 the address of the
    resume-result cell while the fiber runs, 0 while it is suspended; at
    top-16 the stack pointer to resume from (the fiber's own saved SP while
    it is suspended). So a suspended fiber's live stack is [saved SP, top).
  - On suspension Wasmtime swaps the store's `VMStoreContext` exit/entry
    fields back to what they were before the fiber ran; the suspended
    activation's own values (last exit pc, exit trampoline FP, entry FP,
    entry SP, trap handler) move into the `EntryStoreContext` of the oldest
    activation on the fiber: a Rust struct on the fiber stack that also
    holds the `*const VMStoreContext` of its store. Nested activations on
    one fiber keep the outer activation's exit state in the inner one's
    `EntryStoreContext` the same way.
So the store context does NOT record where a suspended fiber's frames are;
the record sits on the fiber stack, next to a pointer to its store context.
The struct is not `repr(C)`: its fields are found by what they must be, all
within a few words of each other (WINDOW):
  - an exit pc X: a return address into a wasm function;
  - an exit trampoline FP T inside the live stack whose frame record returns
    to X ([T+8] == X; before Wasmtime 37 the recorded FP is the wasm frame's
    own FP);
  - an entry FP E inside the live stack where the frame-pointer walk from
    (X, [T]) must end: E is the FP of the activation's array-to-wasm
    trampoline.
A candidate is accepted only when that walk is clean and ends exactly at E.
Its store context is one of the record's other words (see suspended.py).

Cost: one read of the top page of each candidate region (an anonymous
read-write mapping no thread's SP is in, not continuing a read-write mapping
below it); a region whose top is not a suspended fiber's costs nothing more
(its top page is searched for a damaged fiber's exit record: no more reads).
The live part of a suspended fiber is read once (bounded by the region and
MAX_LIVE), usually inside that same page.
"""

import bisect
import struct
from collections.abc import Callable
from typing import NamedTuple

from .discover import ImageRegistry
from .errors import ReadError, StackMapsError
from .frames import Activation, ActivationEnd, ActivationSource
from .runtime import store_layout_for
from .target import MemoryCache, Region, Target, ThreadState
from .walk import walk_chain

TOP_READ = 4096  # one page: the top-of-stack words, and where a damaged top is searched
MAX_LIVE = 8 * 1024 * 1024
WINDOW = 12  # words each side of an exit pc: the whole EntryStoreContext (~12 words)
MAX_REGIONS = 100_000
# Return-address-like words looked at per stack: a real one has a few per wasm frame; a
# hostile one full of them must not cost minutes (the innermost ones come first).
MAX_EXIT_CANDIDATES = 20_000


class DataRegions:
    """Is an address in read-write, non-executable memory? Binary search over the map (a
    process with hundreds of fiber stacks has thousands of mappings)."""

    def __init__(self, regions: list[Region] | None):
        rs = sorted(regions or [], key=lambda r: r.start)
        self.known = bool(rs)
        self.starts = [r.start for r in rs]
        self.regions = rs

    def __call__(self, v: int) -> bool:
        if v < 0x10000 or v >= 1 << 57 or v % 8:
            return False
        if not self.known:
            return True
        i = bisect.bisect_right(self.starts, v) - 1
        if i < 0:
            return False
        r = self.regions[i]
        return v < r.end and r.perms.startswith("rw") and "x" not in r.perms


class SavedExit(NamedTuple):
    """One saved activation record found on a fiber stack."""

    at: int  # address of the exit pc word
    exit_pc: int
    exit_fp: int  # as recorded: the exit trampoline's FP (37+) or the wasm frame's
    wasm_fp: int  # FP of the innermost wasm frame
    entry_fp: int
    others: tuple[int, ...]  # the record's other words: its store context is among them


class FiberFind(NamedTuple):
    region: Region
    saved_sp: int | None  # None: the top of the stack is not a suspended fiber's
    activations: list[tuple[SavedExit, Activation]]
    note: str | None


def candidate_regions(regions: list[Region] | None, threads: list[ThreadState]) -> list[Region]:
    """Anonymous read-write regions that no thread is running on and that do not continue
    a read-write mapping right below them (a fiber stack sits on a guard page; LLDB does
    not list such a page at all, GDB and core files list it without write permission)."""
    if not regions:
        return []
    rs = sorted(regions, key=lambda r: r.start)
    sps = sorted(t.sp for t in threads if t.sp)
    out = []
    for k, r in enumerate(rs):
        if r.path or not r.perms.startswith("rw") or "x" in r.perms or r.end - r.start < 4096:
            continue
        below = rs[k - 1] if k else None
        if below is not None and below.end == r.start and below.perms.startswith("rw"):
            continue
        i = bisect.bisect_left(sps, r.start)
        if i < len(sps) and sps[i] < r.end:
            continue  # a thread runs on it: the thread's walk reports its frames
        out.append(r)
        if len(out) >= MAX_REGIONS:
            break
    return out


def _words(data: bytes, little: bool) -> tuple[int, ...]:
    n = len(data) // 8
    return struct.unpack(("<" if little else ">") + f"{n}Q", data[: n * 8])


class _Candidate(NamedTuple):
    at: int  # address of the exit pc word
    exit_pc: int
    exit_fp: int
    wasm_fp: int
    near: tuple[int, ...]  # the words around it: the rest of the record


def find_saved_exits(
    words: tuple[int, ...],
    base: int,
    lo: int,
    hi: int,
    registry: ImageRegistry,
    trampoline_fp: bool,
    read_word: Callable[[int], int | None] | None = None,
    fp_ok: Callable[[int], bool] | None = None,
    pulley: bool | None = None,
) -> list[_Candidate]:
    """Candidate saved activation records among `words` (the 8-byte words at `base`...):
    an exit pc with an exit FP next to it in the live stack [lo, hi) whose frame record
    returns to it. The entry FP is checked by the walk (_walk_saved). `read_word` reads
    that frame record when it is not among `words` (Pulley: the record is on the
    interpreter's stack, the words on the thread's native stack); `fp_ok` then says which
    FPs may be on that stack instead of [lo, hi). `pulley` keeps only exit pcs in Pulley
    (True) or native (False) images."""
    out = []
    tlo, thi = registry.lo, registry.hi
    end = base + 8 * len(words)

    def in_stack(v: int) -> bool:
        return fp_ok(v) if fp_ok is not None else lo <= v < hi

    def word_at(a: int) -> int | None:
        if read_word is not None:
            return read_word(a)
        return words[(a - base) // 8] if base <= a < end and a % 8 == base % 8 else None

    hits = [i for i, x in enumerate(words) if tlo <= x < thi]  # the one pass over all
    for i in hits[:MAX_EXIT_CANDIDATES]:
        x = words[i]
        img = registry.image_at(x)
        if img is None:
            continue
        off = img.text_offset(x)
        fn = img.function_at(off) if off is not None else None
        if fn is None or not fn.is_wasm or (pulley is not None and bool(img.pulley) != pulley):
            continue
        near = words[max(0, i - WINDOW) : i + WINDOW + 1]
        for t in near:
            if t % 8 or not in_stack(t):
                continue
            if trampoline_fp:
                if word_at(t + 8) != x:
                    continue
                wasm_fp = word_at(t)
                if wasm_fp is None or not in_stack(wasm_fp):
                    continue
            else:
                wasm_fp = t
            out.append(_Candidate(base + 8 * i, x, t, wasm_fp, near))
    return out


def _walk_saved(
    mem: MemoryCache,
    target: Target,
    registry: ImageRegistry,
    cand: _Candidate,
    lo: int,
    hi: int,
    max_depth: int,
    walks: dict[tuple[int, int], Activation | None],
) -> tuple[SavedExit, Activation] | None:
    """The activation of a candidate record: the walk from its exit must end at an entry
    trampoline whose FP is one of the record's words."""
    key = (cand.exit_pc, cand.wasm_fp)
    if key not in walks:
        w = walk_chain(mem, target, registry, cand.exit_pc, cand.wasm_fp, False, None, max_depth)
        last = w.frames[-1].function if w.frames else None
        ok = (
            w.end is ActivationEnd.LEFT_WASM
            and last is not None
            and not last.is_wasm  # an activation is entered through a trampoline
            and all(lo <= f.fp < hi for f in w.frames)
        )
        walks[key] = (
            Activation(w.frames, ActivationSource.FIBER, ActivationEnd.ENTRY_TRAMPOLINE)
            if ok
            else None
        )
    act = walks[key]
    if act is None:
        return None
    entry_fp = act.frames[-1].fp
    if entry_fp == cand.exit_fp or entry_fp not in cand.near:
        return None
    if cand.exit_fp <= cand.at < entry_fp + 16:
        # The record lives in host frames outside the activation it describes; words
        # inside its span are its own frame records (a recursion repeats return addresses).
        return None
    others = tuple(w for w in cand.near if w not in (cand.exit_pc, cand.exit_fp, entry_fp))
    saved = SavedExit(cand.at, cand.exit_pc, cand.exit_fp, cand.wasm_fp, entry_fp, others)
    return saved, act


def exit_is_trampoline(registry: ImageRegistry) -> bool:
    majors = set()
    for img in registry:
        try:
            majors.add(img.engine.major)
        except StackMapsError:
            continue
    lay = store_layout_for(max((m for m in majors if m is not None), default=None))
    return True if lay is None else lay.exit_fp_is_trampoline


def _activations(
    mem: MemoryCache,
    target: Target,
    registry: ImageRegistry,
    words: tuple[int, ...],
    base: int,
    lo: int,
    hi: int,
    max_depth: int,
    trampoline: bool,
    data: "DataRegions | None" = None,
) -> list[tuple[SavedExit, Activation]]:
    """Accepted (record, activation) pairs, innermost first, one per activation."""
    found: dict[int, tuple[SavedExit, Activation]] = {}
    walks: dict[tuple[int, int], Activation | None] = {}
    for cand in find_saved_exits(words, base, lo, hi, registry, trampoline, pulley=False):
        got = _walk_saved(mem, target, registry, cand, lo, hi, max_depth, walks)
        if got is None:
            continue
        key = got[0].entry_fp  # one activation per entry trampoline: keep the longest walk
        if key not in found or len(got[1].frames) > len(found[key][1].frames):
            found[key] = got
    if data is not None and any(img.pulley for img in registry):
        from .pulley import suspended_pulley  # pulley.py uses this module

        for got in suspended_pulley(mem, target, registry, words, base, lo, hi, max_depth, data):
            found.setdefault(got[0].entry_fp, got)
    return sorted(found.values(), key=lambda p: p[1].frames[0].fp)


def find_suspended(
    target: Target,
    registry: ImageRegistry,
    mem: MemoryCache,
    regions: list[Region] | None,
    threads: list[ThreadState],
    max_depth: int,
) -> list[FiberFind]:
    """Every suspended fiber stack holding wasm frames, lowest address first."""
    if not registry.hi:
        return []
    little = target.little_endian
    trampoline = exit_is_trampoline(registry)
    data_regions = DataRegions(regions)
    out = []
    for r in candidate_regions(regions, threads):
        n = min(TOP_READ, r.end - r.start)
        n -= n % MemoryCache.PAGE
        try:
            top = mem.read_pages(r.end - n, n)  # one read, exactly the top of the mapping
        except ReadError:
            continue
        top_words = _words(top, little)
        saved_sp, running = top_words[-2], top_words[-1]
        if running == 0 and r.start <= saved_sp < r.end - 16 and saved_sp % 8 == 0:
            start = max(saved_sp, r.end - MAX_LIVE)
            if start < r.end - n:
                try:
                    data = mem.read(start, r.end - start)
                except ReadError:
                    continue
                words, base = _words(data, little), start
            else:
                words = top_words[(start - (r.end - n)) // 8 :]
                base = start
            acts = _activations(
                mem,
                target,
                registry,
                words,
                base,
                start,
                r.end,
                max_depth,
                trampoline,
                data_regions,
            )
            if acts:
                out.append(FiberFind(r, saved_sp, acts, None))
            continue
        # Not a suspended fiber's top: a damaged one still shows by its saved exit record.
        base = r.end - n
        acts = _activations(
            mem, target, registry, top_words, base, base, r.end, max_depth, trampoline, data_regions
        )
        if acts:
            note = (
                f"the top of this stack does not hold a suspended fiber's saved stack pointer "
                f"(top-16: {saved_sp:#x}, top-8: {running:#x}; expected an address inside "
                f"{r.start:#x}..{r.end:#x} and 0): garbage, or not a Wasmtime fiber; "
                f"frames found from a saved wasm exit record in its top page"
            )
            out.append(FiberFind(r, None, acts, note))
    return out
