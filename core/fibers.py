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

Where the tops are: the end of each candidate mapping, or a page end inside a
mapping the kernel merged with the one above it (fibertops.py, bounded).
Cost: one read of the top page of each candidate mapping; a mapping whose top
is not a suspended fiber's is searched for a damaged fiber's exit record in
that page (no more reads), then for tops inside it (fibertops.py). The live
part of a suspended fiber is read once (bounded by MAX_LIVE), usually inside
its top page.
"""

from collections.abc import Callable
from typing import NamedTuple

from .discover import ImageRegistry
from .errors import ReadError, StackMapsError
from .fibertops import (
    MAX_LIVE,
    InnerTop,
    TopScan,
    candidate_regions,
    merged_candidates,
    suspended_top,
)
from .frames import Activation, ActivationEnd, ActivationSource
from .regions import DataRegions
from .runtime import store_layout_for
from .stackread import Seek
from .stackread import words as to_words
from .target import MemoryCache, Region, ThreadState
from .walk import walk_chain

TOP_READ = 4096  # one page: the top-of-stack words, and where a damaged top is searched
WINDOW = 12  # words each side of an exit pc: the whole EntryStoreContext (~12 words)
# Return-address-like words looked at per stack: a real one has a few per wasm frame; a
# hostile one full of them must not cost minutes (the innermost ones come first).
MAX_EXIT_CANDIDATES = 20_000


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


class _Candidate(NamedTuple):
    at: int  # address of the exit pc word
    exit_pc: int
    exit_fp: int
    wasm_fp: int
    near: tuple[int, ...]  # the words around it: the rest of the record


class StackWords(NamedTuple):
    """The words read at `base` of a stack whose live part is [lo, hi)."""

    words: tuple[int, ...]
    base: int
    lo: int
    hi: int


def find_saved_exits(
    stack: StackWords,
    registry: ImageRegistry,
    trampoline_fp: bool,
    read_word: Callable[[int], int | None] | None = None,
    fp_ok: Callable[[int], bool] | None = None,
    pulley: bool | None = None,
) -> list[_Candidate]:
    """Candidate saved activation records among the stack's words: an exit pc with an exit
    FP next to it in the live stack [lo, hi) whose frame record
    returns to it. The entry FP is checked by the walk (_walk_saved). `read_word` reads
    that frame record when it is not among `words` (Pulley: the record is on the
    interpreter's stack, the words on the thread's native stack); `fp_ok` then says which
    FPs may be on that stack instead of [lo, hi). `pulley` keeps only exit pcs in Pulley
    (True) or native (False) images."""
    out = []
    tlo, thi = registry.lo, registry.hi
    words, base, lo, hi = stack
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
    seek: Seek,
    cand: _Candidate,
    lo: int,
    hi: int,
    walks: dict[tuple[int, int], Activation | None],
) -> tuple[SavedExit, Activation] | None:
    """The activation of a candidate record: the walk from its exit must end at an entry
    trampoline whose FP is one of the record's words."""
    key = (cand.exit_pc, cand.wasm_fp)
    if key not in walks:
        mem, target, registry, depth = seek
        w = walk_chain(mem, target, registry, cand.exit_pc, cand.wasm_fp, False, None, depth)
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
    seek: Seek, stack: StackWords, trampoline: bool, data: DataRegions | None = None
) -> list[tuple[SavedExit, Activation]]:
    """Accepted (record, activation) pairs, innermost first, one per activation."""
    found: dict[int, tuple[SavedExit, Activation]] = {}
    walks: dict[tuple[int, int], Activation | None] = {}
    for cand in find_saved_exits(stack, seek.registry, trampoline, pulley=False):
        got = _walk_saved(seek, cand, stack.lo, stack.hi, walks)
        if got is None:
            continue
        key = got[0].entry_fp  # one activation per entry trampoline: keep the longest walk
        if key not in found or len(got[1].frames) > len(found[key][1].frames):
            found[key] = got
    if data is not None and any(img.pulley for img in seek.registry):
        from .pulley import suspended_pulley  # pulley.py uses this module

        for got in suspended_pulley(seek, stack, data):
            found.setdefault(got[0].entry_fp, got)
    return sorted(found.values(), key=lambda p: p[1].frames[0].fp)


def _live(
    mem: MemoryCache, lo: int, top: int, have: bytes, have_at: int, little: bool
) -> StackWords | None:
    """The words of [lo, top) from `have` (bytes at `have_at`) when it holds them, else one
    read; None if they cannot be read."""
    if have_at <= lo and top <= have_at + len(have):
        data = have[lo - have_at : top - have_at]
    else:
        try:
            data = mem.read(lo, top - lo)
        except ReadError:
            return None
    return StackWords(to_words(data, little), lo, lo, top)


def _at_end(
    seek: Seek, scan: TopScan, r: Region, trampoline: bool, data: DataRegions
) -> FiberFind | None:
    """The fiber whose top is the end of mapping `r`, from its top words, or from a saved
    exit record in its top page when those words are damaged."""
    mem, little = seek.mem, seek.target.little_endian
    n = min(TOP_READ, r.end - r.start)
    n -= n % MemoryCache.PAGE
    try:
        top = mem.read_pages(r.end - n, n)  # one read, exactly the top of the mapping
    except ReadError:
        return None
    top_words = to_words(top, little)
    saved_sp, running = top_words[-2], top_words[-1]
    if suspended_top(r.start, r.end, saved_sp, running):
        start = max(saved_sp, r.end - MAX_LIVE)
        if start < r.end - n and not scan.take_live(r.end - start):
            return None  # out of budget: a live part beyond the top page is not searched
        live = _live(mem, start, r.end, top, r.end - n, little)
        acts = _activations(seek, live, trampoline, data) if live is not None else []
        return FiberFind(r, saved_sp, acts, None) if acts else None
    # Not a suspended fiber's top: a damaged one still shows by its saved exit record.
    base = r.end - n
    acts = _activations(seek, StackWords(top_words, base, base, r.end), trampoline, data)
    if not acts:
        return None
    note = (
        f"the top of this stack does not hold a suspended fiber's saved stack pointer "
        f"(top-16: {saved_sp:#x}, top-8: {running:#x}; expected an address inside "
        f"{r.start:#x}..{r.end:#x} and 0): garbage, or not a Wasmtime fiber; "
        f"frames found from a saved wasm exit record in its top page"
    )
    return FiberFind(r, None, acts, note)


def _inside(
    seek: Seek, scan: TopScan, r: Region, trampoline: bool, data: DataRegions
) -> list[FiberFind]:
    """Fibers whose top is a page end inside the merged mapping `r`. Where two candidate
    tops explain the same activation (a top-like pair of words in a live part), the one
    whose saved SP is highest wins: the real one is the SP the fiber suspended at, right
    under its frames."""
    finds: list[FiberFind] = []
    top: InnerTop
    for top in scan.inner_tops(r):
        live = _live(
            seek.mem,
            top.live_from,
            top.stack.end,
            top.live or b"",
            top.live_from,
            seek.target.little_endian,
        )
        acts = _activations(seek, live, trampoline, data) if live is not None else []
        if not acts:
            continue
        entries = {s.entry_fp for s, _ in acts}
        clash = [f for f in finds if entries & {s.entry_fp for s, _ in f.activations}]
        if any((f.saved_sp or 0) >= top.saved_sp for f in clash):
            continue
        finds = [f for f in finds if f not in clash]
        finds.append(FiberFind(top.stack, top.saved_sp, acts, None))
    return finds


def find_suspended(
    seek: Seek, regions: list[Region] | None, threads: list[ThreadState]
) -> list[FiberFind]:
    """Every suspended fiber stack holding wasm frames, lowest address first: at the end of
    each candidate mapping, then inside the mappings where that found none (fibertops.py)."""
    mem, target, registry, _ = seek
    if not registry.hi:
        return []
    trampoline = exit_is_trampoline(registry)
    data = DataRegions(regions)
    scan = TopScan(mem)
    out = []
    rest = []
    for r in candidate_regions(regions, threads):
        got = _at_end(seek, scan, r, trampoline, data)
        if got is not None:
            out.append(got)
        else:
            rest.append(r)
    for r in merged_candidates(regions, rest):
        out += _inside(seek, scan, r, trampoline, data)
    return sorted(out, key=lambda f: f.region.start)
