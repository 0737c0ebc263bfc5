"""Which store each wasm activation runs in, established from the runtime's own records.

Two stores running the same module lay their GC objects out alike, so a heap
ref that validates in some store's heap proves nothing about which store its
frame belongs to. What does prove it (docs/format.md §6):

  - The store context's activation records: `last_wasm_exit_pc` and the wasm
    FP of the last exit (37+: `*(last_wasm_exit_trampoline_fp)`) are the return
    address and FP of the innermost wasm frame of the store's newest activation
    that called the host, and `last_wasm_entry_fp` is the FP of the entry
    trampoline that activation started from. Frame pointers are stack
    addresses: two live activations never share one.
  - For older activations of the same store (host -> wasm -> host -> wasm in
    one store) the runtime saved those three values, with a pointer to the
    store context, in an `EntryStoreContext` on the host stack between the two
    activations. Its field order is the compiler's (not `repr(C)`): it is found
    by looking, in that gap only, for a window of words holding this very
    activation's exit pc, exit FP and entry FP next to a candidate store context.

Candidate store contexts come from `VMContext` pointers (magic + store context
pointer) in each activation's own frames (from the thread's SP for the
innermost activation) and, failing that, the thread's stack. A candidate found
for one activation may serve another only through that other activation's own
record match. An activation no record matches is tied to the one store context
of its own frames whose heap explains its refs (said so); two such that explain
its refs equally make it `heap ambiguous`.

Costs: one store-context read per distinct candidate, an index of their
records, and per activation a scan of its own frames: O(frames), not O(stack).
"""

import bisect
import struct
from collections.abc import Callable, Iterator
from typing import NamedTuple

from .abi import PAGE_SIZE
from .errors import ReadError
from .frames import Activation, WasmFrame
from .runtime import (
    VMCTX_STORE_OFFSET,
    StoreContextState,
    read_store_context,
    store_layout_for,
)
from .target import MemoryCache, Region, ThreadState

FRAME_SLACK_BELOW = 4096  # host frames under the innermost wasm frame (libcalls take vmctx)
FRAME_SLACK_ABOVE = 1024  # the entry trampoline's caller
THREAD_SCAN = 256 * 1024
MAX_PROBES = 2048
SAVED_WINDOW = 128  # an EntryStoreContext's words lie within this many bytes
MAX_GAP = 1 << 20  # host frames between two activations searched for saved records


class Candidate(NamedTuple):
    store_context: int
    vmctx: int | None
    found_at: int | None  # where the vmctx pointer was
    found_in: str  # "wasm frames" | "thread stack"


class Tie(NamedTuple):
    """The store of one activation, or why there is none."""

    store_context: int | None
    proof: str | None  # what established it (None: not established)
    by_records: bool  # the runtime's records match this activation's frames
    candidate: Candidate | None  # the vmctx that led there, when one did
    records: StoreContextState | None
    ambiguous: tuple[int, ...] = ()  # store contexts that explain the refs equally
    note: str | None = None  # why not established, or what was doubtful


Explains = Callable[[Candidate], tuple[bool, int, str | None]]


def _is_trampoline(fr: WasmFrame) -> bool:
    return fr.function is not None and not fr.function.is_wasm


class StoreTies:
    """Candidates and records of the store contexts seen in one stop, and the tie of each
    activation to one of them."""

    def __init__(self, mem: MemoryCache, regions: list[Region] | None, little_endian: bool):
        self.mem = mem
        self.regions = sorted(regions or [], key=lambda r: r.start) or None
        self._starts = [r.start for r in self.regions or []]
        self._own: dict[tuple[int, int], list[Candidate]] = {}
        self.e = "<" if little_endian else ">"
        self.little = little_endian
        self.magics = {
            m if little_endian else m[::-1]: off for m, off in VMCTX_STORE_OFFSET.items()
        }
        self._vmctx: dict[int, int | None] = {}  # vmctx -> store context (None: not one)
        self._records: dict[tuple[int, int], StoreContextState | None] = {}
        self.unreadable: dict[int, str] = {}  # store context -> why its records are unreadable

    # -- memory ---------------------------------------------------------------------------
    def data_pointer(self, v: int) -> bool:
        if v < 0x10000 or v >= 1 << 57 or v % 8:
            return False
        if self.regions is None:
            return True
        i = bisect.bisect_right(self._starts, v) - 1
        if i < 0 or v >= self.regions[i].end:
            return False
        perms = self.regions[i].perms
        return not perms or (perms[:2] == "rw" and "x" not in perms)

    def words(self, lo: int, hi: int) -> Iterator[tuple[int, int]]:
        """(address, value) of the readable 8-aligned words in [lo, hi), page by page."""
        lo -= lo % 8
        pos = lo
        page = PAGE_SIZE
        while pos < hi:
            n = min(page - pos % page, hi - pos)
            n -= n % 8
            if n <= 0:
                break
            try:
                data = self.mem.read(pos, n)
            except ReadError:
                pos += n
                continue
            for i, v in enumerate(struct.unpack(self.e + f"{n // 8}Q", data)):
                yield pos + 8 * i, v
            pos += n

    def store_of_vmctx(self, v: int) -> int | None:
        """The store context a VMContext at `v` points at (magic checked), else None."""
        if v in self._vmctx:
            return self._vmctx[v]
        store = None
        try:
            head = self.mem.read(v, 24)
            off = self.magics.get(head[:4])
            if off is not None:
                s = struct.unpack_from(self.e + "Q", head, off)[0]
                # A VMContext's store pointer that leads nowhere readable is still this
                # vmctx's store: kept, so that its note says so (records() fails).
                store = s if s and s % 8 == 0 and s < 1 << 57 else None
        except ReadError:
            store = None
        self._vmctx[v] = store
        return store

    def records(self, store: int, major: int) -> StoreContextState | None:
        """The store context's activation records (None when unreadable or not covered)."""
        layout = store_layout_for(major)
        if layout is None:
            return None
        key = (store, layout.entry_fp)
        if key not in self._records:
            try:
                st = read_store_context(self.mem.read, store, layout, self.little)
            except ReadError as e:
                self.unreadable[store] = str(e)
                st = None
            self._records[key] = st
        return self._records[key]

    def exit_wasm_fp(self, st: StoreContextState) -> int | None:
        """FP of the innermost wasm frame of the last exit (0/None when there is none)."""
        if not st.exit_pc or not st.exit_fp:
            return None
        if not st.layout.exit_fp_is_trampoline:
            return st.exit_fp
        return self.mem.try_u64(st.exit_fp)

    # -- candidates -------------------------------------------------------------------------
    def scan(self, lo: int, hi: int, where: str, limit: int = MAX_PROBES) -> list[Candidate]:
        """Candidates from the VMContext pointers in [lo, hi), one per store context."""
        out: dict[int, Candidate] = {}
        seen: set[int] = set()
        for addr, v in self.words(lo, hi):
            if v in seen or not self.data_pointer(v):
                continue
            seen.add(v)
            if len(seen) > limit:
                break
            store = self.store_of_vmctx(v)
            if store is not None and store not in out:
                out[store] = Candidate(store, v, addr, where)
        return list(out.values())

    def own_candidates(self, thread: ThreadState, act: Activation, first: bool) -> list[Candidate]:
        key = (id(act), first)
        if key not in self._own:
            self._own[key] = self._own_candidates(thread, act, first)
        return self._own[key]

    def _own_candidates(self, thread: ThreadState, act: Activation, first: bool) -> list[Candidate]:
        fps = [fr.fp for fr in act.frames]
        lo = min(fps) - FRAME_SLACK_BELOW
        sp = thread.sp
        if first and sp is not None and sp <= min(fps) and min(fps) - sp <= 1 << 20:
            lo = min(lo, sp)
        return self.scan(lo, max(fps) + FRAME_SLACK_ABOVE, "wasm frames")

    def stack_candidates(self, thread: ThreadState) -> list[Candidate]:
        if thread.sp is None:
            return []
        return self.scan(thread.sp, thread.sp + THREAD_SCAN, "thread stack")

    # -- proofs ------------------------------------------------------------------------------
    def record_match(self, act: Activation, st: StoreContextState) -> str | None:
        """How the store context's current records match this activation, else None."""
        frames = act.frames
        wasm_fp = self.exit_wasm_fp(st)
        exit_ok = wasm_fp is not None and any(
            fr.pc == st.exit_pc and fr.fp == wasm_fp for fr in frames[:3]
        )
        entry_ok = bool(st.entry_fp) and any(
            fr.fp == st.entry_fp and _is_trampoline(fr) for fr in frames[-2:]
        )
        if exit_ok and entry_ok:
            return "the store's last exit and entry records match its frames"
        if exit_ok:
            return "the store's last exit record matches its frames"
        if entry_ok and not act.frames[0].innermost and wasm_fp is not None:
            # Entered here but its last exit is elsewhere: records of a newer state.
            return None
        if entry_ok:
            return "the store's last entry record matches its entry trampoline"
        return None

    def saved_match(self, act: Activation, newer: Activation, stores: set[int]) -> int | None:
        """A store context whose saved records (an EntryStoreContext in the host frames
        between `newer` and `act`) hold this activation's exit pc, exit FP and entry FP."""
        frames = act.frames
        if len(frames) < 2 or not _is_trampoline(frames[-1]):
            return None
        lo, hi = newer.frames[-1].fp, frames[0].fp
        if not lo < hi or hi - lo > MAX_GAP:
            return None
        entry = frames[-1].fp
        hits = list(self.words(lo, hi))
        where: dict[int, list[int]] = {}
        for a, v in hits:
            where.setdefault(v, []).append(a)
        for fr in frames[:3]:
            for a_pc in where.get(fr.pc, ()):
                near = {v for a, v in hits if abs(a - a_pc) <= SAVED_WINDOW}
                if entry not in near:
                    continue
                # The exit FP: the wasm frame's own (before 37) or the exit trampoline's,
                # whose frame record holds the wasm frame's FP and returns to its pc.
                fp_ok = fr.fp in near or any(
                    t % 8 == 0 and self.mem.try_u64(t) == fr.fp and self.mem.try_u64(t + 8) == fr.pc
                    for t in near
                    if fr.fp - MAX_GAP < t < fr.fp
                )
                found = [v for v in near if v in stores]
                if fp_ok and len(found) == 1:
                    return found[0]
        return None

    def tie(
        self,
        thread: ThreadState,
        acts: list[Activation],
        n: int,
        major: int,
        pool: list[Candidate],
        explains: Explains | None,
    ) -> Tie:
        """The store of activation `n` of a thread (`acts` innermost first).

        `pool`: every candidate seen in the stop; `explains(candidate)` says whether
        (and how well) that store's heap explains the activation's heap refs.
        """
        act = acts[n]
        own = self.own_candidates(thread, act, n == 0)
        stores = {c.store_context: c for c in pool}
        for c in own:
            stores.setdefault(c.store_context, c)
        proven: dict[int, str] = {}
        for store in stores:
            st = self.records(store, major)
            if st is not None:
                how = self.record_match(act, st)
                if how:
                    proven[store] = how
        if not proven and n > 0:
            saved = self.saved_match(act, acts[n - 1], set(stores))
            if saved is not None:
                proven[saved] = (
                    "the exit/entry records its store saved for the nested call match its frames"
                )
        if len(proven) == 1:
            ((store, how),) = proven.items()
            own_c = next((c for c in own if c.store_context == store), None)
            return Tie(store, how, True, own_c or stores[store], self.records(store, major))
        if len(proven) > 1:
            names = ", ".join(f"{s:#x} ({h})" for s, h in sorted(proven.items()))
            return Tie(
                None, None, False, None, None, tuple(sorted(proven)),
                f"heap ambiguous: the records of several store contexts match this "
                f"activation: {names}",
            )  # fmt: skip
        return self._by_heap(thread, own, explains)

    def _by_heap(self, thread: ThreadState, own: list[Candidate], explains: Explains | None) -> Tie:
        """No record matches: the store of the activation's own vmctx, when one explains."""
        why_no_records = "no store context's exit/entry records match its frames"
        bad = [
            f"{s:#x} ({w})"
            for s, w in self.unreadable.items()
            if s in {c.store_context for c in own}
        ]
        if bad:
            why_no_records += "; unreadable store context " + ", ".join(bad)
        cands = own or self.stack_candidates(thread)
        cands = [c for c in cands if c.store_context not in self.unreadable] or cands
        if not cands:
            return Tie(None, None, False, None, None, (), why_no_records)
        if explains is None:  # nothing to decide with: no heap refs
            if len(cands) == 1:
                c = cands[0]
                return Tie(c.store_context, "the vmctx in its frames only", False, c, None, (),
                           why_no_records)  # fmt: skip
            return Tie(None, None, False, None, None, (), why_no_records)
        scored = [(explains(c), c) for c in cands]
        full = [c for (ok, _, _), c in scored if ok]
        if len(full) == 1:
            c = full[0]
            return Tie(
                c.store_context,
                f"the vmctx {c.vmctx:#x} found at {c.found_at:#x} ({c.found_in}) whose heap "
                f"explains every ref",
                False, c, None, (), why_no_records,
            )  # fmt: skip
        if len(full) > 1:
            names = ", ".join(
                f"{c.store_context:#x} (vmctx {c.vmctx:#x} at {c.found_at:#x})" for c in full
            )
            return Tie(
                None, None, False, None, None, tuple(c.store_context for c in full),
                f"heap ambiguous: {len(full)} store contexts explain every ref equally and "
                f"{why_no_records}: {names}",
            )  # fmt: skip
        return Tie(None, None, False, None, None, (), why_no_records)
